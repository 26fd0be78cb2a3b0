"""Index stage, part 2: keep the whoosh index in step with the record store.

Takes export-contract record dicts (from ``store``/``run``) and upserts, deletes or rebuilds the
index in a directory; hands back ``IndexStats``. whoosh allows one writer at a time (an OS file
lock on ``MAIN_WRITELOCK``) and a commit is not crash-safe, so: every batch is one commit,
``rebuild`` builds a fresh index beside the live one and swaps it in, and a lock held by another
process becomes a ``SearchIndexError`` that says what to do.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from whoosh import fields, index, writing
from whoosh.filedb.filestore import FileStorage

from index.schema import (
    SCHEMA_VERSION,
    build_schema,
    is_indexable,
    open_existing,
    read_index,
    record_to_document,
    write_version,
)
from pipeline.errors import SearchIndexError

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Records per commit: whoosh commits are slow (segment writes, merges), documents are cheap.
DEFAULT_BATCH_SIZE = 500
#: whoosh's write-lock file in an index directory (index name "MAIN" + "_WRITELOCK").
LOCK_FILE = "MAIN_WRITELOCK"
#: Errors whoosh raises while writing; translated to SearchIndexError in ``_writing``.
_WHOOSH_ERRORS: tuple[type[Exception], ...] = (
    index.IndexError,
    writing.IndexingError,
    fields.FieldConfigurationError,
    fields.UnknownFieldError,
    OSError,
)


@dataclass(frozen=True, slots=True)
class IndexStats:
    """What one ``apply_changes`` or ``rebuild`` did.

    Attributes:
        added: documents that were not in the index before.
        updated: documents replaced by a newer version of the same id.
        deleted: documents removed (explicit deletes and records whose status is ``gone``).
        seconds: wall-clock time taken.
    """

    added: int
    updated: int
    deleted: int
    seconds: float


@dataclass(frozen=True, slots=True)
class IndexInfo:
    """An index directory as ``open_or_create`` found or made it.

    Attributes:
        path: the index directory.
        schema_version: the schema version stamped beside the index.
        doc_count: searchable documents.
        created: True when this call created the index.
    """

    path: Path
    schema_version: int
    doc_count: int
    created: bool


def _lock_busy(path: Path) -> SearchIndexError:
    """Return the error for a write lock held by someone else."""
    return SearchIndexError(
        f"another crawldex process is writing the search index in {path}; wait for it to finish "
        "(or stop it) and run this command again. A lock left by a killed process frees itself."
    )


def _open_for_writing(path: Path) -> tuple[Any, bool]:
    """Open the index in ``path`` or create it (with its version stamp); return (index, created)."""
    try:
        ix = open_existing(path)
        if ix is not None:
            return ix, False
        path.mkdir(parents=True, exist_ok=True)
        ix = index.create_in(str(path), build_schema())
        write_version(path)
    except _WHOOSH_ERRORS as exc:
        raise SearchIndexError(
            f"cannot open or create the search index in {path}: {exc}; check the directory's "
            "permissions and free space, or run `crawldex reindex`"
        ) from exc
    logger.info("created search index in %s", path)
    return ix, True


@contextmanager
def _writing(ix: Any, path: Path) -> Iterator[Any]:
    """Yield a whoosh writer; commit when the block ends, cancel if it raises.

    This is the one place whoosh write errors happen, so the one place they are translated.
    """
    try:
        writer = ix.writer()
    except index.LockError as exc:
        raise _lock_busy(path) from exc
    except _WHOOSH_ERRORS as exc:
        raise SearchIndexError(f"cannot write the search index in {path}: {exc}") from exc
    try:
        yield writer
    except BaseException:
        writer.cancel()
        raise
    try:
        writer.commit()
    except _WHOOSH_ERRORS as exc:
        raise SearchIndexError(
            f"committing to the search index in {path} failed: {exc}; "
            "run `crawldex reindex` to rebuild it from the store"
        ) from exc


def open_or_create(path: Path) -> IndexInfo:
    """Open the index in ``path``, creating an empty one if there is none.

    Args:
        path: the index directory (created with its parents if missing).

    Returns:
        What was found or made.

    Raises:
        SearchIndexError: the index has another schema version, or cannot be created.
    """
    ix, created = _open_for_writing(path)
    try:
        count = ix.doc_count()
    except _WHOOSH_ERRORS as exc:
        raise SearchIndexError(f"cannot read the search index in {path}: {exc}") from exc
    return IndexInfo(path=path, schema_version=SCHEMA_VERSION, doc_count=count, created=created)


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Yield lists of up to ``size`` items."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _write_batch(
    ix: Any, path: Path, records: list[Mapping[str, Any]], delete_ids: list[str]
) -> tuple[int, int, int]:
    """Apply one batch in one commit; return (added, updated, deleted)."""
    added = updated = deleted = 0
    # A later version of the same id in one batch wins: uncommitted documents are invisible
    # to update_document's lookup, so duplicates would otherwise both be added.
    latest = {str(record["id"]): record for record in records}
    with _writing(ix, path) as writer:
        searcher = writer.searcher()  # cached by whoosh for the writer's lifetime
        for record_id, record in latest.items():
            exists = searcher.document_number(id=record_id) is not None
            if is_indexable(record):
                writer.update_document(**record_to_document(record))
                updated, added = (updated + 1, added) if exists else (updated, added + 1)
            elif exists:
                deleted += writer.delete_by_term("id", record_id)
        for record_id in dict.fromkeys(delete_ids):
            deleted += writer.delete_by_term("id", record_id)
    return added, updated, deleted


def apply_changes(
    path: Path,
    upserts: Iterable[Mapping[str, Any]],
    deletes: Iterable[str] = (),
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> IndexStats:
    """Upsert and delete documents by record id, committing once per batch.

    Records that are not articles or whose status is ``gone`` are removed from the index
    instead of upserted. Deletes are applied after all upserts.

    Args:
        path: the index directory (created if missing).
        upserts: export-contract record dicts.
        deletes: record ids to remove; unknown ids are ignored.
        batch_size: records (or ids) per whoosh commit.

    Returns:
        Counts and time taken.

    Raises:
        SearchIndexError: another process is writing the index, the index has another schema
            version, or whoosh failed to write.
    """
    started = time.perf_counter()
    ix, _ = _open_for_writing(path)
    totals = [0, 0, 0]
    for batch in _batches(upserts, batch_size):
        for i, n in enumerate(_write_batch(ix, path, batch, [])):
            totals[i] += n
    for id_batch in _batches((str(d) for d in deletes), batch_size):
        totals[2] += _write_batch(ix, path, [], id_batch)[2]
    added, updated, deleted = totals
    stats = IndexStats(added, updated, deleted, seconds=time.perf_counter() - started)
    logger.info("index %s: %s", path, stats)
    return stats


def doc_count(path: Path) -> int:
    """Return how many documents the index in ``path`` holds (0 if there is no index).

    Raises:
        SearchIndexError: the index has another schema version or cannot be read.
    """
    return read_index(path, lambda searcher: int(searcher.doc_count()), 0)


def indexed_ids(path: Path) -> set[str]:
    """Return the record ids in the index (empty if there is no index), to check against the store.

    Raises:
        SearchIndexError: the index has another schema version or cannot be read.
    """

    def read(searcher: Any) -> set[str]:
        reader = searcher.reader()
        column = reader.column_reader("id")
        return {column[docnum] for docnum in reader.all_doc_ids()}

    return read_index(path, read, set())


@contextmanager
def _live_lock(path: Path) -> Iterator[None]:
    """Hold the write lock of the index in ``path`` (if the directory exists) during a rebuild."""
    if not path.is_dir():
        yield
        return
    lock = FileStorage(str(path)).lock(LOCK_FILE)
    try:
        acquired = lock.acquire(blocking=False)
    except OSError as exc:
        raise SearchIndexError(f"cannot lock the search index in {path}: {exc}") from exc
    if not acquired:
        raise _lock_busy(path)
    try:
        yield
    finally:
        lock.release()


def _build(fresh: Path, records: Iterable[Mapping[str, Any]], batch_size: int) -> int:
    """Write all indexable ``records`` into a new index in ``fresh``; return its document count."""
    try:
        ix = index.create_in(str(fresh), build_schema())
        write_version(fresh)
    except _WHOOSH_ERRORS as exc:
        raise SearchIndexError(f"cannot create a new search index in {fresh}: {exc}") from exc
    for batch in _batches((r for r in records if is_indexable(r)), batch_size):
        _write_batch(ix, fresh, batch, [])
    return int(ix.doc_count())


def _swap(fresh: Path, path: Path) -> None:
    """Move ``fresh`` to ``path``: old index renamed away, new renamed in, old deleted."""
    if not path.exists():
        fresh.rename(path)
        return
    old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
    path.rename(old)
    try:
        fresh.rename(path)
    except OSError:
        old.rename(path)
        raise
    # Readers still holding files of the old index keep them open (POSIX); new readers that
    # find the directory missing between the two renames retry once (``read_index``).
    shutil.rmtree(old, ignore_errors=True)


def rebuild(
    path: Path, records: Iterable[Mapping[str, Any]], *, batch_size: int = DEFAULT_BATCH_SIZE
) -> IndexStats:
    """Build a new index from ``records`` beside ``path`` and swap it in atomically.

    Searches keep working during the build (on the old index) and across the swap. The live
    index's write lock is held throughout, so changes from another process cannot be lost.
    This is also the remedy for an index of another schema version or a damaged one.

    Args:
        path: the index directory (need not exist).
        records: every current export-contract record; gone ones and non-articles are skipped.
        batch_size: records per whoosh commit.

    Returns:
        ``added`` is the number of documents in the new index; ``updated``/``deleted`` are 0.

    Raises:
        SearchIndexError: another process is writing the index, or building or swapping failed
            (the live index is then left as it was).
    """
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _live_lock(path):
        fresh = Path(tempfile.mkdtemp(prefix=f".{path.name}.rebuild-", dir=path.parent))
        try:
            count = _build(fresh, records, batch_size)
            _swap(fresh, path)
        except OSError as exc:
            raise SearchIndexError(f"rebuilding the search index in {path} failed: {exc}") from exc
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
    stats = IndexStats(added=count, updated=0, deleted=0, seconds=time.perf_counter() - started)
    logger.info("rebuilt index %s: %s documents in %.1fs", path, count, stats.seconds)
    return stats


def clear_stale_lock(path: Path) -> bool:
    """Check the write-lock file a killed crawldex process may have left in ``path``.

    whoosh's ``FileStorage`` lock is an OS lock on ``MAIN_WRITELOCK`` (``fcntl.flock`` on
    POSIX, ``msvcrt.locking`` on Windows), not the file's existence. The OS releases it when
    the holder dies, so a leftover file never blocks a writer and nothing needs deleting;
    deleting it could even let two writers in (one locking the old file, one a new one). So
    this only confirms the lock is free.

    Args:
        path: the index directory.

    Returns:
        True if a lock file is present and free (left behind, harmless); False if there is none.

    Raises:
        SearchIndexError: a running process holds the lock.
    """
    if not (path / LOCK_FILE).exists():
        return False
    lock = FileStorage(str(path)).lock(LOCK_FILE)
    if not lock.acquire(blocking=False):
        raise _lock_busy(path)
    lock.release()
    logger.info("lock file in %s is not held by any process; writers can proceed", path)
    return True
