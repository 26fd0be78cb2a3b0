"""Index stage, beside the crawl: a second process that indexes what the crawl stores.

whoosh is pure Python and, on a big crawl, costs about as much CPU as everything else put
together; run after the crawl, in the crawl's own interpreter, it serialises the whole pipeline
on one core. ``IndexFollower`` moves it to a child process that reads the store (SQLite in WAL
mode: a reader never blocks the crawl's writes) and applies finished batches of changed articles
to the index while the crawl goes on, on the second core.

It starts only once a crawl has stored a batch of changes not yet indexed (``index.batch_size``),
so a small crawl never pays the start-up of a process. It commits a whole batch at a time of
articles whose page has been fetched, in change order (never more: a commit's memory grows with
its size, 218 against 134 MB of peak RSS for 8,000 records against 2,000), and
leaves the store's index watermark to the sync at the end of the run, which skips what the
child already indexed (same content hash) and applies the rest; so a crash anywhere (of the
crawl, of the child, or both) loses nothing.

At the end of the run the crawl asks the child to ``finish``: it runs that final sync itself
(``pipeline.sync.sync_index``) and sends back its report, so the backlog of a crawl faster than
the index is written by the process that already holds the index's caches, and the crawl
process never loads a whoosh writer (at 100k articles that sync had raised the crawl process's
peak memory by 90 MB). If the child cannot (it died, the index is locked), the crawl syncs in
its own process as before, and gets the error, if any, there.
The child exits when asked, and on its own when its parent dies. It runs in its own process
group: Ctrl-C at a terminal signals the foreground group, and stopping on it is the crawl's to
decide (it finishes its pages in flight, then asks the child to finish).

The child is a ``python`` running ``main`` here with the settings on its stdin, not a
``multiprocessing`` child: a spawned one re-imports the caller's ``__main__``, which re-runs any
script that calls ``run_once`` without an ``if __name__ == "__main__"`` guard.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from heapq import merge
from typing import IO, Any

import index as search_index
from pipeline import heap
from pipeline.config import Settings
from pipeline.store import Store
from pipeline.sync import WATERMARK_KEY, SyncReport, index_dir, sync_index

__all__ = ["Backlog", "IndexFollower", "IndexedRecords"]

logger = logging.getLogger(__name__)

#: Seconds between the child's looks at the store when it has no whole batch to apply.
POLL_SECONDS = 0.5
#: The child's program: ``main`` below (``-m pipeline.follow`` would import this module twice).
_CHILD = "import sys; from pipeline.follow import main; sys.exit(main(sys.argv[1:]))"
#: Pages between the crawl's cheap checks of whether the child is worth starting.
_CHECK_EVERY = 32


class IndexFollower:
    """Start, feed and stop the index child process of one crawl (``run_once`` drives it).

    Call ``poke()`` after each page from the crawl's thread: it starts the child once a batch
    of changes is waiting. At the end, ``finish()`` has the child run the final sync; ``stop()``
    only waits for its current batch.
    """

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.enabled = settings.index.during_crawl
        self._pokes = 0
        self._process: subprocess.Popen[str] | None = None
        self._finish_sent = False  # ``begin_finish`` sent it: ``_end`` sends nothing more

    @property
    def pid(self) -> int | None:
        """The child's process id, once started."""
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._process is not None and self._process.poll() is None

    def poke(self) -> None:
        """Start the child if it is not running and a whole batch of changes waits for it."""
        if not self.enabled or self._process is not None:
            return
        self._pokes += 1
        if self._pokes % _CHECK_EVERY:
            return
        watermark = int(self.store.get_meta(WATERMARK_KEY, "0") or 0)
        if self.store.max_seq() - watermark >= self.settings.index.batch_size:
            self.start()

    def start(self) -> None:
        """Start the child process now."""
        if self._process is not None:
            return
        level = str(logging.getLogger().getEffectiveLevel())
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _CHILD, level],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                process_group=0,  # not the terminal's foreground group: Ctrl-C is the crawl's
            )
            assert self._process.stdin is not None
            self._process.stdin.write(self.settings.model_dump_json() + "\n")
            self._process.stdin.flush()
        except OSError as exc:  # cannot start it, or it died at once: index after the crawl
            logger.warning("cannot index beside the crawl (%s); indexing after it instead", exc)
            self.enabled = False
            if self._process is not None:
                self._process.kill()
                self._process.wait()
                self._process = None
            return
        logger.info("indexing beside the crawl in process %s", self._process.pid)

    def stop(self) -> int:
        """Ask the child to finish its batch and exit; return the documents it wrote (0 if none).

        Safe to call when the child never started or already died.
        """
        return self._end("stop")[0]

    def finish(self) -> tuple[int, SyncReport | None]:
        """Have the child run the run's final sync (``sync_index``) and exit.

        Returns:
            The documents the child wrote beside the crawl, and the final sync's report; the
            report is None when there was no child or it could not sync: then the caller runs
            ``sync_index`` itself.
        """
        return self._end("finish")

    def begin_finish(self) -> None:
        """Ask the child to run the final sync now, without waiting for it: the crawl writes
        its change feed meanwhile. ``finish()`` collects the answer."""
        process = self._process
        if process is None or self._finish_sent:
            return
        self._finish_sent = True
        try:
            assert process.stdin is not None
            process.stdin.write("finish\n")
            process.stdin.flush()
        except (BrokenPipeError, ValueError):  # it died: finish() finds out, the crawl syncs
            pass

    def _end(self, command: str) -> tuple[int, SyncReport | None]:
        process = self._process
        if process is None:
            return 0, None
        sent, self._finish_sent = self._finish_sent, False
        try:
            # closes its stdin too
            out, _ = process.communicate(None if sent else command + "\n")
        except (BrokenPipeError, ValueError):  # it died: the final sync repairs
            out = ""
            process.wait()
        if process.returncode != 0:
            logger.warning(
                "the index process ended with %s; the final sync catches up", process.returncode
            )
        self._process = None
        return _answer(out)


def _answer(out: str) -> tuple[int, SyncReport | None]:
    """The child's last stdout line: documents written, and its sync's report (if it ran one)."""
    try:
        answer = json.loads(out.splitlines()[-1])
        sync = answer.get("sync")
        return int(answer["written"]), None if sync is None else SyncReport(**sync)
    except (IndexError, ValueError, KeyError, TypeError, AttributeError):
        return 0, None


class IndexedRecords:
    """What this process has committed to the index: each record's id and content hash.

    A record changes again with the same content when another listing page lists it: in a
    20k first crawl 30,000 of the 52,000 changes the index process read were such, each read
    from the store, decoded, looked up in the index and found unchanged (~0.15 ms of CPU). With
    this it skips them before reading them. Kept as two sorted arrays of 64-bit keys (an id's
    16 hex digits, the first 16 of its hash): 16 bytes a record, 1.6 MB at 100,000.

    Only a hint: should the index lose a record after this process wrote it (rebuilt or edited
    meanwhile), the final sync's check of every document against the store puts it back.
    """

    def __init__(self) -> None:
        self._ids = array("Q")
        self._hashes = array("Q")

    def __len__(self) -> int:
        return len(self._ids)

    def holds(self, record_id: str, content_hash: str, status: str) -> bool:
        """Whether this process left the record in the index with this content hash."""
        key, value = _key(record_id), _key(content_hash)
        if key is None or value is None or not search_index.is_indexable({"status": status}):
            return False
        at = bisect_left(self._ids, key)
        return at < len(self._ids) and self._ids[at] == key and self._hashes[at] == value

    def note(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Remember what a successful commit of ``records`` left in the index."""
        changes: dict[int, int | None] = {}
        for record in records:
            key = _key(str(record["id"]))
            if key is not None:
                indexed = search_index.is_indexable(record)
                changes[key] = _key(str(record.get("content_hash") or "")) if indexed else None
        kept = ((k, v) for k, v in zip(self._ids, self._hashes, strict=True) if k not in changes)
        ids, hashes = array("Q"), array("Q")
        for key, value in merge(kept, sorted(changes.items())):  # keys unique: no tie compares
            if value is not None:
                ids.append(key)
                hashes.append(value)
        self._ids, self._hashes = ids, hashes


def _key(hex_digits: str) -> int | None:
    """The first 16 hex digits as a 64-bit key; None if they are not hex."""
    try:
        return int(hex_digits[:16], 16) if hex_digits else None
    except ValueError:
        return None


@dataclass(slots=True)
class Backlog:
    """The changes the index process has looked at: up to which ``seq``, and the ids among
    them still to apply (in change order, each once)."""

    scanned: int
    pending: dict[str, None] = field(default_factory=dict)


def _follow(
    store: Store, settings: Settings, stop: threading.Event, indexed: IndexedRecords
) -> int:
    """Apply whole batches of the store's changes until ``stop`` is set; return how many
    documents were written."""
    written = 0
    backlog = Backlog(scanned=int(store.get_meta(WATERMARK_KEY, "0") or 0))
    while not stop.is_set():
        more, count = _apply_batch(store, settings, backlog, indexed)
        written += count
        if not more:
            stop.wait(POLL_SECONDS)  # no whole batch yet: look again soon, or stop
    return written


def _apply_batch(
    store: Store, settings: Settings, backlog: Backlog, indexed: IndexedRecords
) -> tuple[bool, int]:
    """Look at the fetched articles changed since ``backlog.scanned``, leaving out those
    ``indexed`` holds as they are, and apply a batch if a whole one waits.

    Returns:
        Whether a whole batch was there (more may wait), and how many documents were written.
    """
    size = settings.index.batch_size
    pending = backlog.pending
    # Articles known only from a listing card wait for their page: indexing them twice (card,
    # then page a moment later) doubled the work of a first crawl, which lists before it reads.
    # Each change is looked at once: what waits is remembered, not read again at each look.
    with closing(
        store.records.article_changes(since_seq=backlog.scanned, fetched_only=True)
    ) as changes:
        for seq, record_id, content_hash, status in changes:
            backlog.scanned = seq
            if not indexed.holds(record_id, content_hash, status):
                pending[record_id] = None
                if len(pending) >= size:
                    break
    if len(pending) < size:
        return False, 0
    # One commit for the batch (``index.batch_size`` records: a whoosh commit writes a segment,
    # and small ones are merged again and again). Read now, a record may be newer than its
    # change above: its next change finds it held.
    batch = list(store.records.articles_by_id(pending))
    stats = search_index.apply_changes(
        index_dir(settings), batch, batch_size=len(batch), limit_mb=settings.index.limit_mb
    )
    indexed.note(batch)
    pending.clear()
    logger.debug("indexed %s changes: %s", len(batch), stats)
    return True, stats.added + stats.updated


def _watch_stdin(stream: IO[str], stop: threading.Event, command: list[str]) -> None:
    """Set ``stop`` on a line (kept in ``command``) or on end of file (the crawl died)."""
    command.append(stream.readline().strip())
    stop.set()


def main(argv: list[str]) -> int:
    """The child's entry point: settings on the first stdin line, then ``stop`` or ``finish``.

    Answers with one JSON line on stdout: ``{"written": N, "sync": report-or-null}``.
    """
    logging.basicConfig(
        level=int(argv[0]) if argv else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    stop = threading.Event()
    command: list[str] = []
    written = 0
    sync: dict[str, object] | None = None
    try:
        settings = Settings.model_validate_json(sys.stdin.readline())
        heap.settle()
        threading.Thread(target=_watch_stdin, args=(sys.stdin, stop, command), daemon=True).start()
        indexed = IndexedRecords()
        with Store(settings.storage.dir) as store:
            written = _follow(store, settings, stop, indexed)
            if command == ["finish"]:
                report = sync_index(store, settings, skip=indexed.holds)
                sync = report.to_dict()
    except Exception as exc:  # noqa: BLE001 - the child's one catch-all: the crawl syncs instead
        logger.warning("indexing beside the crawl stopped: %s; the crawl syncs the index", exc)
    try:
        sys.stdout.write(json.dumps({"written": written, "sync": sync}) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # the crawl is gone: nobody to answer, and nothing lost
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
    return 0
