"""Date fields in the index: ``published`` to the second, ``first_seen`` to the millisecond.

One index of 120 articles with dates drawn at random (several sharing a second, some a
microsecond apart, across centuries' worth of tiers); hypothesis draws the bounds of a range and
the test compares what ``date_range`` finds in the real index with the dates themselves.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index import apply_changes, search
from index.layout import read_index
from index.schema import DATE_UNITS, CoarseDatetime, build_schema, date_range, in_units
from tests.index.conftest import _record

EPOCH = datetime(2020, 1, 1)
SPAN = timedelta(days=3 * 365)


def _dates(rng: random.Random, count: int) -> list[datetime]:
    """``count`` naive UTC datetimes with microseconds: spread out, and bunched in a few
    seconds and milliseconds (so that bounds fall inside a step that holds documents)."""
    span = int(SPAN.total_seconds() * 1e6)
    spread = [EPOCH + timedelta(microseconds=rng.randrange(span)) for _ in range(count // 2)]
    bunches = []
    for n, anchor in enumerate(rng.sample(spread, 6)):
        step = 1_000_000 if n % 2 else 1_000  # a second, or a millisecond
        base = anchor - timedelta(microseconds=anchor.microsecond % step)
        bunches += [base + timedelta(microseconds=rng.randrange(step)) for _ in range(count // 12)]
    return (spread + bunches)[:count]


@pytest.fixture(scope="module")
def dated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, datetime]]]:
    rng = random.Random(7)
    published, seen = _dates(rng, 120), _dates(rng, 120)
    records, truth = [], {}
    for n, (pub, first) in enumerate(zip(published, seen, strict=True), start=1):
        record = _record(
            n, title=f"Article {n}", text="words", site="a.example", topics=["T"],
            published_at=pub.replace(tzinfo=UTC).isoformat(),
        )  # fmt: skip
        record["first_seen_at"] = first.replace(tzinfo=UTC).isoformat()
        records.append(record)
        truth[record["id"]] = {"published": pub, "first_seen": first}
    path = tmp_path_factory.mktemp("dated") / "index"
    apply_changes(path, records, batch_size=50)  # three segments
    return path, truth


def _matching(path: Path, query: Any) -> set[str]:
    def read(searcher: Any) -> set[str]:
        return {searcher.stored_fields(n)["id"] for n in query.docs(searcher)}

    return read_index(path, read, set())


def _moments() -> st.SearchStrategy[datetime]:
    return st.datetimes(min_value=EPOCH - timedelta(days=30), max_value=EPOCH + SPAN)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(start=st.none() | _moments(), end=st.none() | _moments(), near=st.integers(0, 119))
@pytest.mark.parametrize("field", ["published", "first_seen"])
def test_ranges_are_whole_steps(dated, field, start, end, near):
    path, truth = dated
    unit = DATE_UNITS[field]
    moment = sorted(t[field] for t in truth.values())[near]
    if near % 3 == 0:  # a bound inside a step that holds documents (bunched: several)
        start = moment
    elif near % 3 == 1:
        end = moment
    found = _matching(path, date_range(field, start, end))
    low = None if start is None else in_units(start, unit)
    high = None if end is None else in_units(end, unit, ceil=True)
    expected = {
        rid
        for rid, t in truth.items()
        if (low is None or in_units(t[field], unit) >= low)
        and (high is None or in_units(t[field], unit) < high)
    }
    assert found == expected
    exact = {
        rid
        for rid, t in truth.items()
        if (start is None or t[field] >= start) and (end is None or t[field] < end)
    }
    assert exact <= found  # no document inside the span is ever left out


def test_new_since_takes_the_whole_millisecond(dated):
    path, truth = dated
    ordered = sorted(t["first_seen"] for t in truth.values())
    # a document first seen later in the same millisecond as another
    since = next(
        b for a, b in pairwise(ordered) if a != b and in_units(a, 1_000) == in_units(b, 1_000)
    )
    results = search(path, "*", limit=200, first_seen_since=since.replace(tzinfo=UTC))
    found = {hit.id for hit in results.hits}
    step = in_units(since, 1_000)
    assert found == {rid for rid, t in truth.items() if in_units(t["first_seen"], 1_000) >= step}
    assert {rid for rid, t in truth.items() if t["first_seen"] < since} & found  # same ms, earlier


def test_date_units_are_the_schemas():
    schema = build_schema()
    units = {name: f.unit for name, f in schema.items() if isinstance(f, CoarseDatetime)}
    assert units == DATE_UNITS


def test_sort_by_date_orders_published_to_the_second(dated):
    path, truth = dated
    results = search(path, "*", limit=200, sort="date")
    order = [truth[hit.id]["published"] for hit in results.hits]
    keys = [in_units(d, DATE_UNITS["published"]) for d in order]
    assert keys == sorted(keys, reverse=True)  # newest first, ties within a second allowed
    assert len(order) == len(truth)
