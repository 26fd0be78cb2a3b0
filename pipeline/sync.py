"""Index stage: keep the search index in step with the store, and repair it after a crash.

The store is the source of truth. Every record change has a ``seq``; the store remembers the last
``seq`` the index has applied (``index_seq``), written only after the index commit succeeded. A
crash between the two re-applies some changes (upserts are idempotent), never loses one.

After applying changes, every sync checks the whole index against the store: the ids and content
hashes of the index's documents against the store's active articles (two column reads, no
documents loaded). A document missing, stale (another hash) or extra is upserted or deleted, and
only those, so whatever a killed writer or a hand-edited index left behind is repaired by the
next run. A sync with nothing to apply skips the check when it would look at what the last check
found in agreement: no change in the store since, and the index's files as they were then
(``index.fingerprint``: any write, hand edit or half-done commit changes them). Only an index
that cannot be read at all (damaged, another schema version) is rebuilt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import index as search_index
from pipeline.config import Settings
from pipeline.errors import SearchIndexError
from pipeline.store import Store

__all__ = ["SyncReport", "index_dir", "sync_index"]

logger = logging.getLogger(__name__)

WATERMARK_KEY = "index_seq"
#: ``"<seq> <index fingerprint>"`` when the index was last found to agree with the store.
CHECKED_KEY = "index_checked"


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What bringing the index up to date did."""

    mode: str  # incremental | rebuild | none
    written: int
    deleted: int
    documents: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return asdict(self)


def index_dir(settings: Settings) -> Path:
    """Where the search index of a data directory lives."""
    return settings.storage.dir / "index"


def sync_index(
    store: Store,
    settings: Settings,
    *,
    rebuild: bool = False,
    batch_size: int | None = None,
    skip: Callable[[str, str, str], bool] | None = None,
) -> SyncReport:
    """Apply the store's changes since the last sync to the index, then repair any difference.

    Args:
        store: the open store.
        settings: for the index location and batch size.
        rebuild: rebuild from the whole store even when the index looks consistent.
        batch_size: records per index commit (default ``index.batch_size``).
        skip: ``skip(id, content_hash, status)`` is true for a changed record the caller knows
            the index already holds as it is (the crawl's index process); the check against
            the store after the changes still covers it.

    Returns:
        What was done: mode ``rebuild``, ``incremental`` (changes applied), ``repair``
        (differences found and fixed) or ``none``.

    Raises:
        SearchIndexError: the index cannot be written (another process writing it, disk full).
    """
    path = index_dir(settings)
    upto = store.max_seq()
    if not rebuild:
        try:
            return _sync_incrementally(
                store, settings, path, upto, batch_size or settings.index.batch_size, skip
            )
        except SearchIndexError as exc:  # a busy lock fails the rebuild too, and says so
            logger.warning("search index unreadable (%s); rebuilding it from the store", exc)
    stats = search_index.rebuild(
        path,
        store.records.iter_articles(),
        procs=settings.index.procs,
        limit_mb=settings.index.limit_mb,
    )
    store.set_meta(WATERMARK_KEY, str(upto))
    return SyncReport("rebuild", stats.added, 0, search_index.doc_count(path), stats.seconds)


def _sync_incrementally(
    store: Store,
    settings: Settings,
    path: Path,
    upto: int,
    batch_size: int,
    skip: Callable[[str, str, str], bool] | None = None,
) -> SyncReport:
    """Apply changes after the watermark, then check the index against the store and repair it."""
    watermark = int(store.get_meta(WATERMARK_KEY, "0") or 0)
    limit_mb = settings.index.limit_mb
    written = deleted = 0
    seconds = 0.0
    mode = "none"
    if upto > watermark:
        # Changes are applied again after a crash, and the index process of a crawl
        # (``pipeline.follow``) applies most of a crawl's changes before this sync sees them:
        # the index leaves those whose content hash it already holds.
        changed = store.records.iter_articles(since_seq=watermark, skip=skip)
        stats = search_index.apply_changes(path, changed, batch_size=batch_size, limit_mb=limit_mb)
        written, deleted, seconds = stats.added + stats.updated, stats.deleted, stats.seconds
        mode = "incremental"
    # Nothing to check when nothing changed on either side since the last check found them
    # agreeing: no change in the store (every change of an article's content or status has a
    # seq) and the index's files as they were. The checksums read 20,000 rows and two index
    # columns: 0.15 s of an unchanged 20k recrawl's ~6 s. The fingerprint is taken before the
    # check: a commit of another writer after it is not vouched for.
    state = search_index.fingerprint(path)
    checked = f"{upto} {state}" if state is not None else None
    if mode == "none" and checked is not None and store.get_meta(CHECKED_KEY) == checked:
        return SyncReport(mode, 0, 0, search_index.doc_count(path), 0.0)
    # Checksums first: while the index agrees with the store (nearly always) no map of every
    # document is built (12.7 MB at 100,000). Read after the writes: a writer and that map are
    # never both in memory.
    stale: list[str] = []
    extra: list[str] = []
    active = search_index.checksum(store.records.iter_active_article_hashes())
    if search_index.indexed_checksum(path) != active:
        stale, extra = _differences(store, search_index.indexed_digests(path))
    if stale or extra:
        logger.warning(
            "search index differs from the store: %s missing or stale, %s extra; repairing",
            len(stale),
            len(extra),
        )
        stats = search_index.apply_changes(
            path,
            store.records.articles_by_id(stale),
            extra,
            batch_size=batch_size,
            limit_mb=limit_mb,
        )
        written, deleted = written + stats.added + stats.updated, deleted + stats.deleted
        seconds += stats.seconds
        mode = "repair"
    with store.transaction():
        store.set_meta(WATERMARK_KEY, str(upto))
        if checked is not None and not (stale or extra):  # after a repair, the next sync looks
            store.set_meta(CHECKED_KEY, checked)
    return SyncReport(mode, written, deleted, search_index.doc_count(path), seconds)


def _differences(store: Store, have: dict[str, int]) -> tuple[list[str], list[str]]:
    """Ids to upsert (missing or stale in the index) and to delete (not active in the store).

    ``have`` is the index's ``{id: hash(content hash)}`` (consumed). The store's side is
    streamed against it, each match popped: one such dict of every article in memory, not two.
    """
    active = store.records.iter_active_article_hashes()
    stale = [i for i, h in active if have.pop(i, None) != hash(h)]
    return sorted(stale), sorted(have)
