"""The scratch spools: sitemap entries on disk, read back newest first, a batch kept whole or not
at all; URLs on disk, each counted once."""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.errors import StoreError
from pipeline.store import LastmodSpool, UrlSpool

T0 = datetime(2025, 11, 20, 12, 0, tzinfo=UTC)


def read_all(spool: LastmodSpool, size: int) -> list[tuple[str, datetime | None]]:
    return [entry for chunk in spool.newest_first(size) for entry in chunk]


def test_entries_come_back_newest_first_unknown_last_and_stable_among_equals():
    with closing(LastmodSpool()) as spool:
        spool.add([("a", T0), ("b", None), ("c", T0 + timedelta(days=1))])
        spool.add([("d", T0), ("e", T0 - timedelta(days=1)), ("f", None)])
        assert len(spool) == 6
        assert [loc for loc, _ in read_all(spool, 4)] == ["c", "a", "d", "e", "b", "f"]


def test_lastmod_comes_back_exactly_to_the_microsecond():
    odd = [T0 + timedelta(microseconds=1), datetime(1969, 7, 20, 20, 17, 40, 999_999, tzinfo=UTC)]
    with closing(LastmodSpool()) as spool:
        spool.add(("u", when) for when in odd)
        assert [when for _, when in read_all(spool, 10)] == odd
        assert all(when is not None and when.tzinfo == UTC for _, when in read_all(spool, 10))


def test_slices_are_of_the_size_asked_and_cover_everything_once():
    entries = [(f"u{i}", T0 - timedelta(minutes=i)) for i in range(2_500)]
    with closing(LastmodSpool()) as spool:
        spool.add(iter(entries))
        chunks = list(spool.newest_first(1_000))
        assert [len(c) for c in chunks] == [1_000, 1_000, 500]
        assert [e for c in chunks for e in c] == entries


def test_a_batch_that_fails_halfway_leaves_nothing_of_itself_behind():
    def broken():
        yield ("x", T0)
        yield ("y", T0)
        raise ValueError("the XML ended too soon")

    with closing(LastmodSpool()) as spool:
        spool.add([("kept", T0)])
        with pytest.raises(ValueError, match="too soon"):
            spool.add(broken())
        assert len(spool) == 1
        assert read_all(spool, 10) == [("kept", T0)]
        spool.add([("after", None)])  # the spool is still usable
        assert [loc for loc, _ in read_all(spool, 10)] == ["kept", "after"]


def test_a_spool_that_cannot_be_used_says_so_as_a_store_error():
    spool = LastmodSpool()
    spool.add([("a", T0)])
    spool.close()  # as good as a vanished file for SQLite: every statement now fails
    with pytest.raises(StoreError, match="sitemap spool cannot be written"):
        spool.add([("b", T0)])
    with pytest.raises(StoreError, match="sitemap spool cannot be read"):
        read_all(spool, 10)


def test_a_url_set_counts_each_url_once_within_and_across_batches():
    with closing(UrlSpool()) as seen:
        assert seen.add(["a", "b", "a"]) == 2
        assert seen.add(iter(["b", "c"])) == 1
        assert seen.add([]) == 0
        assert seen.add(f"u{i}" for i in range(3_000)) == 3_000
        assert seen.add(["a", "u2999", "c"]) == 0


def test_a_url_set_that_cannot_be_used_says_so_as_a_store_error():
    seen = UrlSpool()
    seen.close()
    with pytest.raises(StoreError, match="scratch URL set cannot be written"):
        seen.add(["a"])
