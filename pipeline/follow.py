"""Index stage, beside the crawl: a second process that indexes what the crawl stores.

whoosh is pure Python and, on a big crawl, costs about as much CPU as everything else put
together; run after the crawl, in the crawl's own interpreter, it serialises the whole pipeline
on one core. ``IndexFollower`` moves it to a child process that reads the store (SQLite in WAL
mode: a reader never blocks the crawl's writes) and applies finished batches of changed articles
to the index while the crawl goes on, on the second core.

It starts only once a crawl has stored a batch of changes not yet indexed (``index.batch_size``),
so a small crawl never pays the start-up of a process. It applies whole batches only, and
advances the store's index watermark (``pipeline.sync``'s ``index_seq``) after each commit, so
the sync at the end of the run has only the tail left, and a crash anywhere (of the crawl, of
the child, or both) loses nothing: the next sync re-applies from the watermark and repairs the
rest. The child exits when asked, after its current batch, and on its own when its parent dies.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from contextlib import closing, suppress
from itertools import islice
from multiprocessing.connection import Connection, wait
from typing import Any

import index as search_index
from pipeline.config import Settings
from pipeline.store import Store
from pipeline.sync import WATERMARK_KEY, index_dir

__all__ = ["IndexFollower"]

logger = logging.getLogger(__name__)

#: Seconds between the child's looks at the store when it has no full batch to apply.
POLL_SECONDS = 0.5
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
        self._process: Any = None
        self._conn: Connection | None = None

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._process is not None and self._process.is_alive()

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
        context = multiprocessing.get_context("spawn")  # no fork of a threaded, asyncio parent
        parent_end, child_end = context.Pipe()
        self._process = context.Process(
            target=_follow,
            args=(self.settings, child_end, logging.getLogger().getEffectiveLevel()),
            name="crawldex-index",
            daemon=True,
        )
        self._process.start()
        child_end.close()
        self._conn = parent_end
        logger.info("indexing beside the crawl in process %s", self._process.pid)

    def stop(self) -> int:
        """Ask the child to finish its batch and exit; return the documents it wrote (0 if none).

        Safe to call when the child never started or already died.
        """
        process, conn = self._process, self._conn
        if process is None or conn is None:
            return 0
        written = 0
        try:
            conn.send("stop")
            if conn.poll(None):
                written = int(conn.recv())
        except (EOFError, OSError, ValueError):  # the child died: the final sync repairs
            logger.warning("the index process ended early; the final sync catches up")
        process.join()
        conn.close()
        self._process = self._conn = None
        return written


def _follow(settings: Settings, conn: Connection, log_level: int) -> None:
    """The child: apply whole batches of the store's changes until told to stop."""
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    parent = multiprocessing.parent_process()
    watch: list[Any] = [conn] + ([parent.sentinel] if parent is not None else [])
    written = 0
    try:
        with Store(settings.storage.dir) as store:
            while True:
                if not _stop_requested(conn):
                    applied = _apply_batch(store, settings)
                    written += applied
                    if applied:
                        continue  # more may be waiting; the stop check runs between batches
                if wait(watch, timeout=POLL_SECONDS):
                    break  # stop asked, or the parent died (its sentinel is ready)
    except Exception as exc:  # noqa: BLE001 - the child's one catch-all: the final sync catches up
        logger.warning("indexing beside the crawl stopped: %s; the final sync catches up", exc)
    with suppress(OSError):  # the parent is gone
        conn.send(written)


def _stop_requested(conn: Connection) -> bool:
    try:
        return bool(conn.poll())
    except (EOFError, OSError):
        return True


def _apply_batch(store: Store, settings: Settings) -> int:
    """Apply the next whole batch of changed articles; return how many (0: no whole batch yet)."""
    size = settings.index.batch_size
    watermark = int(store.get_meta(WATERMARK_KEY, "0") or 0)
    with closing(store.records.iter_articles(since_seq=watermark)) as changed:
        batch = list(islice(changed, size))
    if len(batch) < size:
        return 0
    started = time.perf_counter()
    search_index.apply_changes(index_dir(settings), batch, batch_size=size)
    store.set_meta(WATERMARK_KEY, str(batch[-1]["seq"]))
    logger.debug("indexed %s changes in %.2fs", len(batch), time.perf_counter() - started)
    return len(batch)
