"""Index stage, beside the crawl: a second process that indexes what the crawl stores.

whoosh is pure Python and, on a big crawl, costs about as much CPU as everything else put
together; run after the crawl, in the crawl's own interpreter, it serialises the whole pipeline
on one core. ``IndexFollower`` moves it to a child process that reads the store (SQLite in WAL
mode: a reader never blocks the crawl's writes) and applies finished batches of changed articles
to the index while the crawl goes on, on the second core.

It starts only once a crawl has stored a batch of changes not yet indexed (``index.batch_size``),
so a small crawl never pays the start-up of a process. It commits a whole batch or more (up to
four, when that much waits) of articles whose page has been fetched, in change order, and
leaves the store's index watermark to the sync at the end of the run, which skips what the
child already indexed (same content hash) and applies the rest; so a crash anywhere (of the
crawl, of the child, or both) loses nothing.
The child exits when asked, after its current batch, and on its own when its parent dies.

The child is a ``python`` running ``main`` here with the settings on its stdin, not a
``multiprocessing`` child: a spawned one re-imports the caller's ``__main__``, which re-runs any
script that calls ``run_once`` without an ``if __name__ == "__main__"`` guard.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from contextlib import closing
from itertools import islice
from typing import IO

import index as search_index
from pipeline.config import Settings
from pipeline.store import Store
from pipeline.sync import WATERMARK_KEY, index_dir

__all__ = ["IndexFollower"]

logger = logging.getLogger(__name__)

#: Seconds between the child's looks at the store when it has no whole batch to apply.
POLL_SECONDS = 0.5
#: The child's program: ``main`` below (``-m pipeline.follow`` would import this module twice).
_CHILD = "import sys; from pipeline.follow import main; sys.exit(main(sys.argv[1:]))"
#: A commit takes up to this many batches when that much is waiting.
_MAX_BATCHES = 4
#: Pages between the crawl's cheap checks of whether the child is worth starting.
_CHECK_EVERY = 32


class IndexFollower:
    """Start, feed and stop the index child process of one crawl (``run_once`` drives it).

    Call ``poke()`` after each page from the crawl's thread: it starts the child once a batch
    of changes is waiting. Call ``stop()`` before the final sync; it waits for the child's
    current batch and returns how many documents the child wrote.
    """

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.enabled = settings.index.during_crawl
        self._pokes = 0
        self._process: subprocess.Popen[str] | None = None

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
        process = self._process
        if process is None:
            return 0
        try:
            out, _ = process.communicate("stop\n")  # closes its stdin too
        except (BrokenPipeError, ValueError):  # it died: the final sync repairs
            out = ""
            process.wait()
        if process.returncode != 0:
            logger.warning(
                "the index process ended with %s; the final sync catches up", process.returncode
            )
        self._process = None
        try:
            return int(out.split()[-1])
        except (IndexError, ValueError):
            return 0


def _follow(settings: Settings, stop: threading.Event) -> int:
    """Apply whole batches of the store's changes until ``stop`` is set; return how many."""
    written: dict[str, str] = {}  # id -> content hash this process indexed
    with Store(settings.storage.dir) as store:
        cursor = int(store.get_meta(WATERMARK_KEY, "0") or 0)
        while not stop.is_set():
            cursor, more = _apply_batch(store, settings, cursor, written)
            if not more:
                stop.wait(POLL_SECONDS)  # no whole batch yet: look again soon, or stop
    return len(written)


def _apply_batch(
    store: Store, settings: Settings, cursor: int, written: dict[str, str]
) -> tuple[int, bool]:
    """Apply the fetched articles changed after ``cursor`` if a whole batch waits (up to four).

    Returns:
        The new cursor, and whether a whole batch was there (more may wait).
    """
    size = settings.index.batch_size
    # Articles known only from a listing card wait for their page: indexing them twice (card,
    # then page a moment later) doubled the work of a first crawl, which lists before it reads.
    with closing(store.records.iter_articles(since_seq=cursor, fetched_only=True)) as changed:
        batch = list(islice(changed, size * _MAX_BATCHES))
    if len(batch) < size:
        return cursor, False
    # A record listed again changes (new seq) with the same content: already indexed.
    todo = [r for r in batch if written.get(r["id"]) != r["content_hash"]]
    started = time.perf_counter()
    # One commit for all of it: a whoosh commit (segment flush, merges) cost ~40% of the
    # child's time at one per batch, and the backlog only grows while the crawl is faster.
    search_index.apply_changes(index_dir(settings), todo, batch_size=max(len(todo), 1))
    written.update((r["id"], r["content_hash"]) for r in todo)
    logger.debug(
        "indexed %s of %s changes in %.2fs", len(todo), len(batch), time.perf_counter() - started
    )
    return int(batch[-1]["seq"]), True


def _watch_stdin(stream: IO[str], stop: threading.Event) -> None:
    """Set ``stop`` on a line or on end of file: the crawl asked, or it died (its end closed)."""
    stream.readline()
    stop.set()


def main(argv: list[str]) -> int:
    """The child's entry point: settings on the first stdin line, then anything means stop."""
    logging.basicConfig(
        level=int(argv[0]) if argv else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    stop = threading.Event()
    written = 0
    try:
        settings = Settings.model_validate_json(sys.stdin.readline())
        threading.Thread(target=_watch_stdin, args=(sys.stdin, stop), daemon=True).start()
        written = _follow(settings, stop)
    except Exception as exc:  # noqa: BLE001 - the child's one catch-all: the final sync catches up
        logger.warning("indexing beside the crawl stopped: %s; the final sync catches up", exc)
    sys.stdout.write(f"{written}\n")  # the protocol's answer: documents written
    sys.stdout.flush()
    return 0
