"""Index stage, part 2: keep the whoosh index in step with the record store.

Takes export-contract record dicts (from ``store``/``run``) and upserts, deletes or rebuilds the
index at a path; hands back ``IndexStats``. One writer at a time (an OS file lock on
``crawldex.lock`` in the index path, held for a whole ``apply_changes`` or ``rebuild``); every
batch is one whoosh commit; ``rebuild`` builds a new generation and publishes it atomically (see
``index.layout``); a lock held by another process becomes a ``SearchIndexError`` that says what
to do. What a crash leaves half-done is found and repaired by ``pipeline.sync`` against the store.
"""

from __future__ import annotations

import gc
import logging
import shutil
import time
from bisect import bisect_right
from collections.abc import Callable, Collection, Container, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from whoosh import fields, index, writing
from whoosh.filedb.filestore import FileStorage

from index.codec import Codec
from index.layout import (
    current_generation,
    new_generation,
    open_generation,
    publish,
    read_index,
    remove_old_generations,
)
from index.merge import tiered
from index.pool import use_grouped_pool
from index.schema import (
    SCHEMA_VERSION,
    build_schema,
    is_indexable,
    record_to_document,
    write_version,
)
from index.segment import Writer
from pipeline.errors import SearchIndexError

logger = logging.getLogger(__name__)

T = TypeVar("T")
V = TypeVar("V")

#: Records per commit: whoosh commits are slow (segment writes, merges), documents are cheap.
DEFAULT_BATCH_SIZE = 500
#: Writer processes of a rebuild: 1 indexes in this process; more fork (or spawn) whoosh
#: sub-writers that analyze documents in parallel, each writing its own segment.
DEFAULT_PROCS = 1
#: Memory (MB, whoosh's own estimate) a writer's posting pool may hold before it spills a sorted
#: run to disk; per writer process. Bounds a writer's memory whatever the number of documents.
DEFAULT_LIMIT_MB = 64
#: Documents per job a multiprocess writer hands to one of its processes (whoosh's default).
_JOB_SIZE = 100
#: The writers' lock file in the index path (an OS lock; see ``write_lock``).
LOCK_FILE = "crawldex.lock"
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
        unchanged: records left as they were, the index already holding their content hash.
    """

    added: int
    updated: int
    deleted: int
    seconds: float
    unchanged: int = 0


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


@contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """Hold the writers' lock of the index at ``path`` (created if missing) for the block.

    One lock for the whole index path, not whoosh's per-generation one, so that a writer can
    never commit into a generation a concurrent rebuild is about to retire.

    Raises:
        SearchIndexError: another process (or writer) holds it, or it cannot be created.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        lock = FileStorage(str(path)).lock(LOCK_FILE)
        acquired = lock.acquire(blocking=False)
    except OSError as exc:
        raise SearchIndexError(f"cannot lock the search index in {path}: {exc}") from exc
    if not acquired:
        raise _lock_busy(path)
    try:
        yield
    finally:
        lock.release()


def _create_generation(path: Path) -> tuple[Path, Any]:
    """Create an empty, unpublished generation in ``path``; return it and its whoosh index."""
    generation = new_generation(path)
    try:
        # No mmap, as in ``_open_live``: see ``index.layout.open_generation``.
        ix = FileStorage(str(generation), supports_mmap=False).create_index(build_schema())
        write_version(generation)
    except _WHOOSH_ERRORS as exc:
        shutil.rmtree(generation, ignore_errors=True)
        raise SearchIndexError(
            f"cannot create a search index in {generation}: {exc}; check the directory's "
            "permissions and free space"
        ) from exc
    return generation, ix


def _open_live(path: Path) -> tuple[Any, bool]:
    """Open the live generation of ``path``, creating one if there is none; (index, created).

    Call with the write lock held.
    """
    generation = current_generation(path)
    if generation is None:
        generation, ix = _create_generation(path)
        publish(path, generation)
        logger.info("created search index in %s", path)
        return ix, True
    try:
        return open_generation(generation, mmap=False), False
    except _WHOOSH_ERRORS as exc:
        raise SearchIndexError(
            f"cannot open the search index in {path}: {exc}; run `crawldex reindex` to rebuild "
            "it from the store"
        ) from exc


@contextmanager
def _writing(
    ix: Any, path: Path, *, procs: int = 1, limit_mb: int = DEFAULT_LIMIT_MB
) -> Iterator[Any]:
    """Yield a whoosh writer; commit when the block ends, cancel if it raises.

    With ``procs`` > 1 it is whoosh's multiprocessing writer, each process adding its own
    segment (``multisegment``: no final merge of their postings in this process).
    This is the one place whoosh write errors happen, so the one place they are translated.
    """
    options: dict[str, Any] = {"limitmb": limit_mb, "codec": Codec()}
    if procs > 1:
        options.update(procs=procs, multisegment=True, batchsize=_JOB_SIZE)
    try:
        # one process: whoosh's SegmentWriter, adding text fields a field at a time
        writer = ix.writer(**options) if procs > 1 else Writer(ix, **options)
    except index.LockError as exc:
        raise _lock_busy(path) from exc
    except _WHOOSH_ERRORS as exc:
        raise SearchIndexError(f"cannot write the search index in {path}: {exc}") from exc
    use_grouped_pool(writer, limit_mb)
    try:
        yield writer
    except BaseException:
        writer.cancel()
        raise
    try:
        writer.commit(mergetype=tiered)
    except _WHOOSH_ERRORS as exc:
        raise SearchIndexError(
            f"committing to the search index in {path} failed: {exc}; "
            "run `crawldex reindex` to rebuild it from the store"
        ) from exc
    finally:
        # whoosh's readers (the writer's searcher, merged-away segments) sit in reference
        # cycles holding file buffers; free them now rather than at some later collection.
        gc.collect()


def open_or_create(path: Path) -> IndexInfo:
    """Open the index at ``path``, creating an empty one if there is none.

    Args:
        path: the index path (created with its parents if missing).

    Returns:
        What was found or made.

    Raises:
        SearchIndexError: the index has another schema version, cannot be created, or another
            process is writing it.
    """
    with write_lock(path):
        ix, created = _open_live(path)
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


class _IndexedHashes:
    """The ``content_hash`` column of a writer's searcher, read by document number."""

    def __init__(self, searcher: Any) -> None:
        leaves = searcher.reader().leaf_readers()
        self._leaves = [leaf for leaf, _offset in leaves]
        self._offsets = [offset for _leaf, offset in leaves]
        self._columns: dict[int, Any] = {}

    def __getitem__(self, docnum: int) -> str:
        i = bisect_right(self._offsets, docnum) - 1
        column = self._columns.get(i)
        if column is None:
            # Per segment: whoosh's multi-segment column reader misnumbers documents when a
            # segment lacks the column (see ``_id_columns``).
            column = self._columns[i] = self._leaves[i].column_reader("content_hash")
        return str(column[docnum - self._offsets[i]])


class _DocumentNumbers:
    """The live document number of each record id of a batch (None: not in the index).

    One lookup per id (``update_document`` would look it up again), none at all while the
    index is empty (the first sync of a new store). A term lookup is ~55 us for an id the index
    lacks (most of a crawl's) with ten segments, where reading one id from each segment's id
    column is ~0.4 us: a batch with more than one id per ``_SCAN_RATIO`` documents reads the
    columns once instead.
    """

    def __init__(self, searcher: Any, ids: Collection[str]) -> None:
        self._searcher = searcher
        documents = searcher.doc_count_all()
        self._found: dict[str, int] | None = None  # None: a lookup per id
        if not documents:
            self._found = {}
        elif len(ids) * _SCAN_RATIO >= documents:
            self._found = _live_numbers(searcher, ids)

    def get(self, record_id: str) -> int | None:
        if self._found is not None:
            return self._found.get(record_id)
        found: int | None = self._searcher.document_number(id=record_id)
        return found


#: Documents per id in a batch below which reading the id columns beats a lookup per id.
_SCAN_RATIO = 100


def _live_numbers(searcher: Any, ids: Container[str]) -> dict[str, int]:
    """``{id: document number}`` of the live documents whose id is in ``ids`` (a set or a
    dict: one test a document), from each segment's id column (ids are unique among live
    documents)."""
    found: dict[str, int] = {}
    for leaf, offset in searcher.reader().leaf_readers():
        deletions = leaf.has_deletions()
        for docnum, record_id in enumerate(leaf.column_reader("id")):
            if record_id in ids and not (deletions and leaf.is_deleted(docnum)):
                found[record_id] = offset + docnum
    return found


def _write_batch(
    ix: Any, path: Path, records: list[Mapping[str, Any]], delete_ids: list[str], limit_mb: int
) -> tuple[int, int, int, int]:
    """Apply one batch in one commit; return (added, updated, deleted, unchanged)."""
    added = updated = deleted = unchanged = 0
    # A later version of the same id in one batch wins: uncommitted documents are invisible
    # to update_document's lookup, so duplicates would otherwise both be added.
    latest = {str(record["id"]): record for record in records}
    with _writing(ix, path, limit_mb=limit_mb) as writer:
        searcher = writer.searcher()  # cached by whoosh for the writer's lifetime
        docnums = _DocumentNumbers(searcher, latest)
        hashes = _IndexedHashes(searcher)
        for record_id, record in latest.items():
            docnum = docnums.get(record_id)
            indexable = is_indexable(record)
            if docnum is not None:
                # Same content hash, same document: a record changes (and comes back here) for
                # what the index does not hold, such as another listing page of its topic.
                content = record.get("content_hash")
                if indexable and content and hashes[docnum] == str(content):
                    unchanged += 1
                    continue
                writer.delete_document(docnum)
            if indexable:
                writer.add_document(**record_to_document(record))
                updated, added = (
                    (updated + 1, added) if docnum is not None else (updated, added + 1)
                )
            elif docnum is not None:
                deleted += 1
        for record_id in dict.fromkeys(delete_ids):
            deleted += writer.delete_by_term("id", record_id)
    return added, updated, deleted, unchanged


def apply_changes(
    path: Path,
    upserts: Iterable[Mapping[str, Any]],
    deletes: Iterable[str] = (),
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    limit_mb: int = DEFAULT_LIMIT_MB,
) -> IndexStats:
    """Upsert and delete documents by record id, committing once per batch.

    Records that are not articles or whose status is ``gone`` are removed from the index
    instead of upserted. A record whose ``content_hash`` the index already holds for its id is
    left as it is (``unchanged``): the hash stands for everything the index keeps of a record.
    Deletes are applied after all upserts.

    Args:
        path: the index directory (created if missing).
        upserts: export-contract record dicts.
        deletes: record ids to remove; unknown ids are ignored.
        batch_size: records (or ids) per whoosh commit.
        limit_mb: posting-pool memory of the writer before it spills to disk.

    Returns:
        Counts and time taken.

    Raises:
        SearchIndexError: another process is writing the index, the index has another schema
            version, or whoosh failed to write.
    """
    started = time.perf_counter()
    totals = [0, 0, 0, 0]
    with write_lock(path):
        ix, _ = _open_live(path)
        remove_old_generations(path)  # what a killed rebuild left behind
        for batch in _batches(upserts, batch_size):
            for i, n in enumerate(_write_batch(ix, path, batch, [], limit_mb)):
                totals[i] += n
        for id_batch in _batches((str(d) for d in deletes), batch_size):
            totals[2] += _write_batch(ix, path, [], id_batch, limit_mb)[2]
    added, updated, deleted, unchanged = totals
    stats = IndexStats(
        added, updated, deleted, seconds=time.perf_counter() - started, unchanged=unchanged
    )
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
    return set(indexed_hashes(path))


def indexed_hashes(path: Path) -> dict[str, str]:
    """Return ``{record id: content_hash}`` of every document ("" where the record had none).

    Read from two column files in one pass: cheap enough to compare with the store on every sync.

    Raises:
        SearchIndexError: the index has another schema version or cannot be read.
    """
    return _id_columns(path, str)


def indexed_digests(path: Path) -> dict[str, int]:
    """Return ``{record id: hash(content_hash)}``: ``indexed_hashes`` in about half the memory
    (12 against 22 MB at 100,000 documents), for comparing with the store's hashes in this
    process (``hash`` of a string differs between processes).

    Raises:
        SearchIndexError: the index has another schema version or cannot be read.
    """
    return _id_columns(path, hash)


def checksum(pairs: Iterable[tuple[str, str]]) -> tuple[int, int]:
    """``(count, sum)`` of ``(record id, content_hash)`` pairs: the sum of the ``hash`` of each
    pair joined in one string, modulo 2**64, so the same pairs in any order give the same
    checksum.

    ``indexed_checksum`` gives the index's: equal checksums say the index holds what the pairs
    say without a map of every document (12.7 MB at 100,000), unequal ones that it does not.
    Compare checksums made in this process only, as ``indexed_digests``' (``hash`` of a string
    differs between processes).
    """
    count = total = 0
    for record_id, content_hash in pairs:
        # one string, not a tuple: with a tuple's hash, two pairs with their hashes swapped
        # often summed the same (3 hash seeds of 5 in the test's "swapped" case)
        total += hash(f"{record_id}\0{content_hash}")
        count += 1
    return count, total % 2**64


def indexed_checksum(path: Path) -> tuple[int, int]:
    """``checksum`` of the index's ``(record id, content_hash)`` of every document, read from
    two column files in one pass, holding none of them.

    Raises:
        SearchIndexError: the index has another schema version or cannot be read.
    """

    def read(searcher: Any) -> tuple[int, int]:
        return checksum((str(i), str(h)) for i, h in _id_hash_pairs(searcher))

    # read, not mapped: every page of the two columns would count in RSS (10 MB at 100,000)
    return read_index(path, read, (0, 0), mmap=False)


def _id_columns(path: Path, value: Callable[[str], V]) -> dict[str, V]:
    """``{record id: value(content_hash)}`` of every document, from two column files."""

    def read(searcher: Any) -> dict[str, V]:
        return {record_id: value(hashed) for record_id, hashed in _id_hash_pairs(searcher)}

    return read_index(path, read, {}, mmap=False)  # as in ``indexed_checksum``


def _id_hash_pairs(searcher: Any) -> Iterator[tuple[Any, Any]]:
    """``(id, content_hash)`` column values of every live document, streamed."""
    # Per segment: whoosh's multi-segment column reader skips segments without the column
    # (all records without a hash) and then misnumbers documents.
    for leaf, _offset in searcher.reader().leaf_readers():
        ids = leaf.column_reader("id")
        hashes = leaf.column_reader("content_hash")
        for docnum in leaf.all_doc_ids():
            yield ids[docnum], hashes[docnum]


def _build(
    ix: Any, path: Path, records: Iterable[Mapping[str, Any]], procs: int, limit_mb: int
) -> int:
    """Write all indexable ``records`` into the new, empty index ``ix``; return how many.

    One writer and one commit: nothing reads an unpublished generation, so there is nothing to
    look up (ids are distinct in the store) and no segment to merge along the way. Memory stays
    bounded by ``limit_mb`` per process: whoosh spills sorted runs of postings to disk.

    Raises:
        SearchIndexError: the index holds another number of documents than were written (a
            sub-writer process died: whoosh's multiprocessing writer does not say so itself).
    """
    written = 0
    with _writing(ix, path, procs=procs, limit_mb=limit_mb) as writer:
        for record in records:
            if is_indexable(record):
                writer.add_document(**record_to_document(record))
                written += 1
    found = int(ix.doc_count())
    if found != written:
        raise SearchIndexError(
            f"rebuilding the search index in {path} wrote {written} documents but the index "
            f"holds {found}; run `crawldex reindex` again (with index.procs: 1 if it recurs)"
        )
    return found


def rebuild(
    path: Path,
    records: Iterable[Mapping[str, Any]],
    *,
    procs: int = DEFAULT_PROCS,
    limit_mb: int = DEFAULT_LIMIT_MB,
) -> IndexStats:
    """Build a new generation of the index at ``path`` from ``records`` and publish it atomically.

    Searches keep working during the build (on the live generation) and across the switch
    (see ``index.layout``). The writers' lock is held throughout, so changes from another
    process cannot be lost. This is also the remedy for an index of another schema version, a
    damaged one, and an index directory from before generations (moved into the new layout).

    Args:
        path: the index path (need not exist).
        records: every current export-contract record, each id once; gone ones and
            non-articles are skipped.
        procs: writer processes (see ``DEFAULT_PROCS``); the build commits once either way.
        limit_mb: posting-pool memory per writer process before it spills to disk.

    Returns:
        ``added`` is the number of documents in the new index; ``updated``/``deleted`` are 0.

    Raises:
        SearchIndexError: another process is writing the index, or building or publishing
            failed (the live index is then left as it was).
    """
    started = time.perf_counter()
    with write_lock(path):
        fresh, ix = _create_generation(path)
        try:
            count = _build(ix, fresh, records, procs, limit_mb)
            publish(path, fresh)
        except BaseException as exc:
            shutil.rmtree(fresh, ignore_errors=True)
            if isinstance(exc, OSError):
                raise SearchIndexError(
                    f"rebuilding the search index in {path} failed: {exc}"
                ) from exc
            raise
        remove_old_generations(path)
    stats = IndexStats(added=count, updated=0, deleted=0, seconds=time.perf_counter() - started)
    logger.info("rebuilt index %s: %s documents in %.1fs", path, count, stats.seconds)
    return stats


def clear_stale_lock(path: Path) -> bool:
    """Check the write-lock file a killed crawldex process may have left in ``path``.

    The writers' lock is whoosh's ``FileStorage`` lock: an OS lock on ``crawldex.lock``
    (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows), not the file's existence. The OS
    releases it when the holder dies, so a leftover file never blocks a writer and nothing needs
    deleting; deleting it could even let two writers in (one locking the old file, one a new
    one). So this only confirms the lock is free.

    Args:
        path: the index path.

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
