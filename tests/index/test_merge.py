"""The tiered merge policy: full tiers merge into one segment; nothing is lost on the way."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from index import apply_changes, doc_count, search
from index.layout import current_generation, open_generation
from index.merge import FANOUT, segments_to_merge, tier


@dataclass
class Segment:
    live: int

    def doc_count(self) -> int:
        return self.live


def test_tiers_are_decimal_digits_of_the_live_count() -> None:
    assert [tier(n) for n in (0, 1, 9, 10, 99, 100, 999, 1000, 123_456)] == [
        0, 1, 1, 2, 2, 3, 3, 4, 6
    ]  # fmt: skip


def test_a_tier_is_merged_when_it_fills_and_others_are_kept() -> None:
    big = [Segment(5000)]
    almost = [Segment(500 + n) for n in range(FANOUT - 1)]
    assert segments_to_merge(big + almost) == []
    full = [*almost, Segment(700)]
    assert segments_to_merge(big + full) == full
    # A mostly deleted segment sinks to the tier of its live documents and merges with them.
    assert segments_to_merge([Segment(40), *[Segment(30)] * (FANOUT - 1)], FANOUT) != []


def test_segments_stay_few_and_every_document_stays_searchable(
    tmp_path: Path, articles: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("index.merge.FANOUT", 3)
    path = tmp_path / "index"
    counts = []
    for start in range(0, len(articles), 2):  # one commit (one new segment) per two articles
        apply_changes(path, articles[start : start + 2])
        generation = current_generation(path)
        assert generation is not None
        ix = open_generation(generation, mmap=False)
        counts.append(len(ix._segments()))
        ix.close()
    indexed = [a for a in articles if a.get("status") != "gone" and a["kind"] == "article"]
    assert doc_count(path) == len(indexed)
    # A tier holding 3 segments is merged at the next commit: at most 3 per tier (here 1 and 2),
    # where one segment per commit would have made 20.
    assert max(counts) <= 2 * 3
    assert counts[-1] < len(counts)
    one = indexed[0]
    assert [hit.id for hit in search(path, f'id:"{one["id"]}"').hits] == [one["id"]]
