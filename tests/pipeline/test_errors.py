"""The exception tree's errors survive a pickle with their attributes: a fetch worker's errors
reach the crawl that way (``pipeline.workers``)."""

from __future__ import annotations

import pickle

import pytest

from pipeline.errors import (
    BadStatus,
    ConfigError,
    ExtractError,
    FetchError,
    FetchTimeout,
    PageSkipped,
    QuerySyntaxError,
    TooLarge,
)


@pytest.mark.parametrize(
    "error",
    [
        FetchError("boom", url="http://e.test/a", transient=True, reason="connect"),
        FetchTimeout("slow", url="http://e.test/a"),
        BadStatus("busy", url="http://e.test/a", status=503, retry_after=2.5),
        TooLarge("big", url="http://e.test/a"),
        PageSkipped("not_html", url="http://e.test/a", detail="image/png"),
        ExtractError("crashed", url="http://e.test/a", reason="extract_crashed"),
        ConfigError("bad key", path="config.yaml", key="crawl.delay"),
        QuerySyntaxError("bad query", position=3, hint="quote it"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_cross_from_a_worker_with_their_attributes(error):
    """A worker's errors reach the crawl pickled; ``Exception``'s own pickling would call the
    class with its message alone, which keyword-only arguments refuse."""
    copy = pickle.loads(pickle.dumps(error, pickle.HIGHEST_PROTOCOL))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)
