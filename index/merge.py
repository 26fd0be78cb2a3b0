"""Index stage: when whoosh merges segments (a tiered policy instead of ``MERGE_SMALL``).

Every commit of a batch adds a segment, and a commit may merge older segments into the new one,
rewriting their postings through whoosh's (pure Python) posting pool. whoosh's default policy
(``MERGE_SMALL``) merged the smallest segments once enough of them piled up, large ones
included, again and again: at 20,000 articles applied 1,000 at a time indexing cost 4.3 CPU ms
per document, against 1.9 at 5,000, and most of the difference was merging.

``tiered`` is the usual answer (Lucene's tiered and log merge policies): segments fall in tiers
by their live document count (1-9, 10-99, 100-999, ...); a tier that holds ``FANOUT`` segments
is merged, at the next commit, into that commit's segment (one of the next tier, usually). Each
document is rewritten about once per tier it climbs, and the index keeps at most ``FANOUT``
segments per tier. Deleted documents (an updated record deletes its old version) do not count,
so mostly-deleted segments sink to a lower tier and are merged, which purges them, sooner.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from whoosh.reading import SegmentReader

#: Segments of one tier that trigger its merge at the next commit.
FANOUT = 10


def tier(live_docs: int) -> int:
    """The tier of a segment with ``live_docs`` documents: its number of decimal digits."""
    return len(str(live_docs)) if live_docs > 0 else 0


def segments_to_merge(segments: list[Any], fanout: int | None = None) -> list[Any]:
    """The segments a commit should merge: every tier with ``fanout`` (default ``FANOUT``) or
    more segments."""
    fanout = FANOUT if fanout is None else fanout
    tiers: dict[int, list[Any]] = defaultdict(list)
    for segment in segments:
        tiers[tier(segment.doc_count())].append(segment)
    chosen = [s for members in tiers.values() if len(members) >= fanout for s in members]
    return chosen if len(chosen) > 1 else []


def tiered(writer: Any, segments: list[Any]) -> list[Any]:
    """whoosh merge policy: merge full tiers into the writer's new segment; keep the rest."""
    chosen = segments_to_merge(segments)
    for segment in chosen:
        reader = SegmentReader(writer.storage, writer.schema, segment)
        try:
            writer.add_reader(reader)
        finally:
            reader.close()
    merged = {id(s) for s in chosen}
    return [s for s in segments if id(s) not in merged]
