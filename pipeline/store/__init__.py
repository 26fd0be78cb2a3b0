"""Store stage: the SQLite source of truth for records, the frontier queue and run history.

Hands on: records (``iter_articles``/``iter_topics``, in change order) to the index and export
stages. This package is the only importer of ``sqlite3``; ``Store`` bundles one connection with:

- ``queue``: ``SqliteFrontierQueue``, the persistent frontier (implements ``FrontierQueue``);
- ``records``: ``RecordTable``, articles and topics with card/page merge and change tracking;
- run history and the index watermark (the last change ``seq`` the search index has applied);
- ``history`` (field changes of articles), ``jobs`` (scheduled jobs' last/next runs),
  ``watches`` (saved searches and their matches), ``coverage`` (field presence per run);
- ``recrawl``: the recrawl policy's state (article refetch schedule, topic full walks);
- ``sitemaps``: each site's last complete reading of its sitemaps (files and accepted URLs).

``LastmodSpool`` and ``UrlSpool`` are scratch space beside it: a pass's sitemap URLs on disk,
read back newest first, and URLs a run counts once.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from time import monotonic
from types import TracebackType
from typing import Any

from pipeline.errors import StoreError
from pipeline.store.coverage import COVERAGE_FIELDS, CoverageTable
from pipeline.store.db import SCHEMA_VERSION, connect, transaction
from pipeline.store.history import HISTORY_FIELDS, HistoryTable
from pipeline.store.jobs import JobTable
from pipeline.store.lock import DirectoryLock
from pipeline.store.queue import SqliteFrontierQueue
from pipeline.store.records import ARTICLE_FIELDS, Change, RecordTable, merge_article, record_id
from pipeline.store.recrawl import ListingWalk, RecrawlTable, RefetchEntry
from pipeline.store.sitemaps import SitemapFile, SitemapTable
from pipeline.store.spool import LastmodSpool, UrlSpool
from pipeline.store.watches import WatchTable

logger = logging.getLogger(__name__)

#: After a group's commit (``Store.grouped``), blocks commit one by one for this long before the
#: next group begins: the write lock is free between them, while the crawl waits on the network,
#: so another writer (the scheduler recording a job, ``crawldex watch add``) gets in. A group
#: holds the lock from its first block to its commit, and SQLite's busy handler retries every
#: 100 ms at most: with no gap it found the lock free only by luck, in the microseconds between
#: a commit and the next group. Another process's one-row write during a 20k-page crawl waited
#: 2.7 s (median; up to 15.8 s) with no gap, 113 ms (up to 2.6 s) with 50 ms, 230 ms (up to
#: 0.94 s) with 100 ms, against 2.9 ms (up to 20 ms) with a commit a page.
GROUP_GAP = 0.1

__all__ = [
    "ARTICLE_FIELDS",
    "COVERAGE_FIELDS",
    "HISTORY_FIELDS",
    "SCHEMA_VERSION",
    "Change",
    "DirectoryLock",
    "LastmodSpool",
    "ListingWalk",
    "RecordTable",
    "RecrawlTable",
    "RefetchEntry",
    "SitemapFile",
    "SitemapTable",
    "SqliteFrontierQueue",
    "Store",
    "UrlSpool",
    "merge_article",
    "record_id",
    "store_path",
]

STORE_FILE = "crawldex.sqlite3"


def store_path(data_dir: Path) -> Path:
    """The database file inside a data directory."""
    return data_dir / STORE_FILE


class Store:
    """The SQLite store of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.path = store_path(data_dir)
        self._conn = connect(self.path)
        self.queue = SqliteFrontierQueue(self._conn)
        self.records = RecordTable(self._conn)
        # Unattended operation (issue 6): history, scheduled jobs, watches, field coverage.
        self.history = HistoryTable(self._conn)
        self.jobs = JobTable(self._conn)
        self.watches = WatchTable(self._conn)
        self.coverage = CoverageTable(self._conn)
        # Recrawl policy: refetch intervals of article pages, full walks of topic listings.
        self.recrawl = RecrawlTable(self._conn)
        # Sitemaps: what a pass whose sitemaps all answer 304 queues without reading them.
        self.sitemaps = SitemapTable(self._conn)
        # the open group transaction (``grouped``): when it began, how many blocks it holds
        self._group_since: float | None = None
        self._group_blocks = 0
        self._group_ended = float("-inf")

    def close(self) -> None:
        """Close the connection (checkpointing the WAL), committing an open group first."""
        try:
            self.commit_group()
        finally:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one atomic transaction; inside an open group (``grouped``), a
        savepoint of it: atomic on its own, committed with the group."""
        try:
            if self._group_since is None:
                with transaction(self._conn):
                    yield
            else:
                with self._savepoint():
                    yield
        except sqlite3.OperationalError as exc:
            raise self._write_error(exc) from exc

    @contextmanager
    def grouped(self) -> Iterator[None]:
        """Writes that are atomic on their own but may wait for a later commit
        (``commit_group``), with those of other blocks: a crawl's pages, claims and 304s.

        A COMMIT for every page was 3 % of a 20k-page crawl's CPU. What a crash loses is the
        group since its last commit: pages it claimed go back to the queue, and those it had
        claimed before stay in flight, so the next run fetches them again. For ``GROUP_GAP``
        after a group's commit, blocks commit one by one, letting other writers in.
        """
        # within the gap no group begins, and ``transaction`` commits the block on its own
        if (
            self._group_since is None
            and not self._conn.in_transaction
            and monotonic() - self._group_ended >= GROUP_GAP
        ):
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise self._write_error(exc) from exc
            self._group_since = monotonic()
        with self.transaction():
            yield
        if self._group_since is not None:
            self._group_blocks += 1

    def group_due(self, *, blocks: int, seconds: float) -> bool:
        """Whether the open group holds ``blocks`` blocks or began ``seconds`` ago."""
        since = self._group_since
        return since is not None and (
            self._group_blocks >= blocks or monotonic() - since >= seconds
        )

    def commit_group(self) -> None:
        """Commit the open group transaction, if any."""
        if self._group_since is None:
            return
        self._end_group()
        if not self._conn.in_transaction:
            return  # rolled back already (a write between blocks failed): nothing to commit
        try:
            self._conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise self._write_error(exc) from exc

    def _end_group(self) -> None:
        self._group_since, self._group_blocks, self._group_ended = None, 0, monotonic()

    def _write_error(self, exc: sqlite3.OperationalError) -> StoreError:
        return StoreError(f"writing the store {self.path} failed: {exc}")

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        conn = self._conn
        conn.execute("SAVEPOINT grouped")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK TO grouped")
                conn.execute("RELEASE grouped")
            else:  # an I/O error or a full disk: SQLite rolled the whole group back
                self._end_group()
                logger.error(
                    "the store rolled back its writes since the last commit; "
                    "their pages are fetched again"
                )
            raise
        conn.execute("RELEASE grouped")

    # -- runs --------------------------------------------------------------------------------
    def start_run(self, sites: Sequence[str], now: datetime) -> int:
        """Record the start of a run; returns its id."""
        with self.transaction():
            cur = self._conn.execute(
                "INSERT INTO runs (started_at, status, sites) VALUES (?, 'running', ?)",
                (now.isoformat(), json.dumps(list(sites))),
            )
        return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, status: str, report: dict[str, Any], now: datetime) -> None:
        """Record how a run ended and its report."""
        with self.transaction():
            self._conn.execute(
                "UPDATE runs SET finished_at = ?, status = ?, report = ? WHERE id = ?",
                (now.isoformat(), status, json.dumps(report), run_id),
            )

    def mark_abandoned_runs(self, now: datetime) -> int:
        """Runs still 'running' when we hold the lock were killed: mark them interrupted."""
        with self.transaction():
            cur = self._conn.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ? WHERE status = 'running'",
                (now.isoformat(),),
            )
        return cur.rowcount

    def last_runs(self, limit: int = 5) -> list[dict[str, Any]]:
        """The newest runs, newest first."""
        rows = self._conn.execute(
            "SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [
            {
                "id": r["id"],
                "started_at": r["started_at"],
                "finished_at": r["finished_at"],
                "status": r["status"],
                "sites": json.loads(r["sites"]),
                "report": json.loads(r["report"]) if r["report"] else None,
            }
            for r in rows
        ]

    def run_started_at(self, run_id: int) -> str | None:
        """When run ``run_id`` started (ISO, UTC), or None if there is no such run."""
        row = self._conn.execute("SELECT started_at FROM runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else str(row[0])

    # -- index watermark ---------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """A value from the ``meta`` table."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Set a value in the ``meta`` table."""
        with self.transaction():
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def max_seq(self) -> int:
        """The newest change number."""
        row = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()
        return int(row[0])

    def changes_between(self, after: int, upto: int) -> dict[str, int]:
        """Records new, changed or gone with ``after < seq <= upto``, per kind.

        Each record counts once: ``new`` if it appeared in the range (however often it changed
        after), else ``gone`` if its last change was going, else ``changed``.
        """
        out: dict[str, int] = {}
        # One pass over the range, then the last change of each record by its seq (the
        # primary key): a subquery per record re-scanned the range, O(n^2) in the changes.
        rows = self._conn.execute(
            """WITH per_record AS (
                   SELECT kind, MAX(change = 'new') AS is_new, MAX(seq) AS last_seq
                   FROM changes WHERE seq > ? AND seq <= ? GROUP BY kind, record_id)
               SELECT p.kind, p.is_new, c.change
               FROM per_record p JOIN changes c ON c.seq = p.last_seq""",
            (after, upto),
        )
        for kind, is_new, last in rows:
            change = "new" if is_new else ("gone" if last == "gone" else "changed")
            out[f"{kind}_{change}"] = out.get(f"{kind}_{change}", 0) + 1
        return out
