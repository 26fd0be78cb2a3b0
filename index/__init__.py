"""crawldex's full-text index: the only package that imports whoosh.

The index stage of the pipeline: records from the store go in through ``apply_changes`` (or
``rebuild``), analysts' queries come out of ``search`` as ``SearchResults``. See
``index.query`` for the query language. Every failure is a ``pipeline.errors.SearchIndexError``
(``QuerySyntaxError`` for a malformed query).
"""

from __future__ import annotations

import logging

from index.layout import fingerprint
from index.query import FIELD_ALIASES
from index.schema import SCHEMA_VERSION, is_indexable
from index.search import MARK_END, MARK_START, Hit, SearchResults, SortOrder, search
from index.writer import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_LIMIT_MB,
    DEFAULT_PROCS,
    IndexInfo,
    IndexStats,
    apply_changes,
    checksum,
    clear_stale_lock,
    doc_count,
    indexed_checksum,
    indexed_digests,
    indexed_hashes,
    indexed_ids,
    open_or_create,
    rebuild,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_LIMIT_MB",
    "DEFAULT_PROCS",
    "FIELD_ALIASES",
    "MARK_END",
    "MARK_START",
    "SCHEMA_VERSION",
    "Hit",
    "IndexInfo",
    "IndexStats",
    "SearchResults",
    "SortOrder",
    "apply_changes",
    "checksum",
    "clear_stale_lock",
    "doc_count",
    "fingerprint",
    "indexed_checksum",
    "indexed_digests",
    "indexed_hashes",
    "indexed_ids",
    "is_indexable",
    "open_or_create",
    "rebuild",
    "search",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
