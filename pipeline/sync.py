"""Index stage: keep the search index in step with the store.

The store is the source of truth. Every record change has a ``seq``; the store remembers the last
``seq`` the index has applied (``index_seq``), written only after the index commit succeeded. A
crash between the two re-applies some changes (upserts are idempotent), never loses one. When the
index disagrees with the store anyway (deleted by hand, a torn whoosh commit), it is rebuilt.
"""

from __future__ import annotations

import logging
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


def sync_index(store: Store, settings: Settings, *, rebuild: bool = False) -> SyncReport:
    """Apply the store's changes since the last sync to the index (or rebuild it).

    Args:
        store: the open store.
        settings: for the index location and batch size.
        rebuild: rebuild from the whole store even when the index looks consistent.

    Returns:
        What was done.

    Raises:
        SearchIndexError: the index cannot be written (another process writing it, disk full).
    """
    path = index_dir(settings)
    watermark = int(store.get_meta(WATERMARK_KEY, "0") or 0)
    upto = store.max_seq()
    active = store.records.counts().get("articles_active", 0)
    try:
        consistent = search_index.doc_count(path) == active if watermark >= upto else True
    except SearchIndexError as exc:
        logger.warning("search index unreadable (%s); rebuilding it from the store", exc)
        consistent = False
    if rebuild or not consistent or (watermark == 0 and upto > 0 and not path.exists()):
        stats = search_index.rebuild(
            path, store.records.iter_articles(), batch_size=settings.index.batch_size
        )
        store.set_meta(WATERMARK_KEY, str(upto))
        return SyncReport(
            "rebuild",
            stats.added + stats.updated,
            stats.deleted,
            search_index.doc_count(path),
            stats.seconds,
        )
    if upto <= watermark:
        return SyncReport("none", 0, 0, active, 0.0)
    stats = search_index.apply_changes(
        path,
        store.records.iter_articles(since_seq=watermark),
        (),
        batch_size=settings.index.batch_size,
    )
    store.set_meta(WATERMARK_KEY, str(upto))
    return SyncReport(
        "incremental",
        stats.added + stats.updated,
        stats.deleted,
        search_index.doc_count(path),
        stats.seconds,
    )
