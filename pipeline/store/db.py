"""The SQLite connection and schema: the only place that knows the table layout.

The store is the source of truth; the search index and the exports are derived from it. One file,
WAL mode, ``synchronous=NORMAL``: a crash (even ``kill -9``) loses at most the open transaction,
and every page's outcome is written atomically with the frontier update it causes (a savepoint of
the crawl's group transaction, ``Store.grouped``, committed a quarter-second at a time).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline.errors import StoreError
from pipeline.store import topic_hash

SCHEMA_VERSION = 9  # 2: history, schedule_jobs, watches, watch_hits, coverage (issue 6)
# 3: refetch_schedule, listing_walks (the recrawl policy)
# 4: pages.links may be text-packed (pipeline/store/queue.py); a version 3 crawldex cannot read
#    them, so it refuses the store. Nothing to migrate: older blobs are read as they are.
# 5: a page's links live in page_links, no longer in pages.links (``_MOVED_OUT``).
# 6: an article's last_seen_at lives in article_seen, no longer in articles (``_MOVED_OUT``).
# 7: topics.pages_sum, and topic hashes taken over it (``pipeline.store.topic_hash``); an older
#    store's topics are summed and hashed again as it is opened (``_sum_topic_pages``).
# 8: sitemap_files, sitemap_urls (a site's last complete reading of its sitemaps). Nothing to
#    migrate: a store without one reads the sitemaps in full at its next pass. The queue's index
#    holds queued pages only (``pages_queued`` replaces ``pages_queue``).
# 9: page_links may hold runs of page numbers (``L3``, pipeline/store/queue.py); a version 8
#    crawldex cannot read them, so it refuses the store. Nothing to migrate, as for 4.

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- One row per crawl invocation (``crawldex crawl``, a scheduled job, the demo).
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL,            -- running | finished | paused | interrupted | failed
    sites       TEXT NOT NULL,            -- JSON list of site names
    report      TEXT                      -- JSON RunReport
);
-- A cycle is one complete pass over a site; runs continue an unfinished cycle (resume).
CREATE TABLE IF NOT EXISTS cycles (
    site        TEXT NOT NULL,
    cycle       INTEGER NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    PRIMARY KEY (site, cycle)
);
-- The frontier and per-page crawl state in one table: a URL is queued once per cycle.
CREATE TABLE IF NOT EXISTS pages (
    url           TEXT PRIMARY KEY,       -- canonical
    site          TEXT NOT NULL,
    host          TEXT NOT NULL,
    depth         INTEGER NOT NULL,
    topic_url     TEXT,
    page_no       INTEGER NOT NULL DEFAULT 1,
    priority      INTEGER NOT NULL DEFAULT 0,   -- lower first
    cycle         INTEGER NOT NULL,
    state         TEXT NOT NULL,          -- queued | in_flight | done | failed | skipped
    seq           INTEGER NOT NULL,       -- discovery order, for stable FIFO within a priority
    kind          TEXT,                   -- listing | article | other (last time fetched)
    http_status   INTEGER,
    etag          TEXT,
    last_modified TEXT,
    fetched_at    TEXT,
    reason        TEXT                    -- why failed / skipped
);
-- The queued pages only (schema 8): a page leaves it when claimed, and its later changes (in
-- flight, done, its fetch time) touch no index. Keyed by state too, every page's state changed
-- its index entry twice a crawl.
CREATE INDEX IF NOT EXISTS pages_queued ON pages (site, priority, seq) WHERE state = 'queued';
-- The links followed from a page last time it was fetched, replayed on a 304 (schema 5). Not a
-- column of ``pages``: they made its rows ~1.3 KB (an article's ~50 links, zlib'd), and a page's
-- state changes three times a crawl (queued, in flight, done): 23,480 updates of its fetched_at
-- took 0.35 s on the 20k bench store, against 0.03 s for 20,000 in a two-column table.
CREATE TABLE IF NOT EXISTS page_links (
    url           TEXT PRIMARY KEY,       -- as in pages.url
    links         BLOB NOT NULL           -- ``pipeline.store.queue._pack_links``
);
-- Every change of a record gets a row; ``seq`` orders the change feed and the index sync.
CREATE TABLE IF NOT EXISTS changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id  TEXT NOT NULL,
    kind       TEXT NOT NULL,             -- article | topic
    change     TEXT NOT NULL,             -- new | changed | gone
    at         TEXT NOT NULL,
    run_id     INTEGER
);
CREATE TABLE IF NOT EXISTS articles (
    id            TEXT PRIMARY KEY,
    url           TEXT NOT NULL UNIQUE,
    site          TEXT NOT NULL,
    page          TEXT,                   -- JSON: fields from the article page (normalized)
    card          TEXT,                   -- JSON: fields from the newest listing card
    listed_in     TEXT NOT NULL DEFAULT '[]',   -- JSON: topic URLs that list it
    record        TEXT NOT NULL,          -- JSON: the merged record's content fields
    content_hash  TEXT NOT NULL,
    status        TEXT NOT NULL,          -- active | gone
    first_seen_at TEXT NOT NULL,
    fetched_at    TEXT,
    seq           INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS articles_seq ON articles (seq);
-- When each article was last seen (schema 6). Not a column of ``articles``: a 304 or a listing
-- that still shows the article moves only this, and a row there is ~7.6 KB (the page's fields
-- and the record, as JSON) whose every update rewrote its overflow pages.
CREATE TABLE IF NOT EXISTS article_seen (
    url           TEXT PRIMARY KEY,       -- as in articles.url
    last_seen_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS topics (
    id            TEXT PRIMARY KEY,
    url           TEXT NOT NULL UNIQUE,
    site          TEXT NOT NULL,
    name          TEXT,
    description   TEXT,
    content_hash  TEXT NOT NULL,
    status        TEXT NOT NULL,
    first_seen_at TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    fetched_at    TEXT,
    seq           INTEGER NOT NULL,
    pages_sum     TEXT NOT NULL DEFAULT '0'   -- its pages' digests summed (schema 7), hex
);
CREATE INDEX IF NOT EXISTS topics_seq ON topics (seq);
CREATE TABLE IF NOT EXISTS topic_pages (
    page_url     TEXT PRIMARY KEY,
    topic_url    TEXT NOT NULL,
    page_no      INTEGER NOT NULL,
    article_urls TEXT NOT NULL,           -- JSON list, in page order
    fetched_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS topic_pages_topic ON topic_pages (topic_url, page_no);
-- Unattended operation (schema 2) ------------------------------------------------------------
-- Every observed change of an article's title, comment_count or status, written in the same
-- transaction as the record change it belongs to.
CREATE TABLE IF NOT EXISTS history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id   TEXT NOT NULL,
    observed_at TEXT NOT NULL,
    field       TEXT NOT NULL,            -- title | comment_count | status
    old         TEXT,                     -- JSON value (null when unknown before)
    new         TEXT,                     -- JSON value
    seq         INTEGER,                  -- the change it belongs to
    run_id      INTEGER
);
CREATE INDEX IF NOT EXISTS history_record ON history (record_id, id);
-- Scheduled jobs: config is the source of truth; this only remembers when each ran and will run.
CREATE TABLE IF NOT EXISTS schedule_jobs (
    job_id        TEXT PRIMARY KEY,       -- crawl:<site>
    spec          TEXT NOT NULL,          -- the trigger as configured, e.g. "cron 0 */6 * * *"
    last_run_at   TEXT,
    last_finished_at TEXT,
    last_outcome  TEXT,                   -- finished | paused | interrupted | failed | locked
    last_run_id   INTEGER,
    last_counts   TEXT,                   -- JSON: pages, changes, failures of the last run
    last_error    TEXT,
    next_run_at   TEXT,
    runs          INTEGER NOT NULL DEFAULT 0,
    skipped_locked INTEGER NOT NULL DEFAULT 0
);
-- Saved searches and the articles each has matched so far.
CREATE TABLE IF NOT EXISTS watches (
    name       TEXT PRIMARY KEY,
    query      TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS watch_hits (
    name       TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    matched_at TEXT NOT NULL,
    run_id     INTEGER,
    PRIMARY KEY (name, record_id)
);
-- Per run, site and field: how many article records seen in the run had a value (drift alarms).
CREATE TABLE IF NOT EXISTS coverage (
    run_id     INTEGER NOT NULL,
    site       TEXT NOT NULL,
    field      TEXT NOT NULL,
    records    INTEGER NOT NULL,
    with_value INTEGER NOT NULL,
    PRIMARY KEY (run_id, site, field)
);
-- Recrawl policy (schema 3) -----------------------------------------------------------------
-- Per article page: when it is due again and how long it waits (the adaptive interval).
CREATE TABLE IF NOT EXISTS refetch_schedule (
    url          TEXT PRIMARY KEY,        -- canonical, as in pages.url
    interval_s   INTEGER NOT NULL,        -- seconds between fetches, doubled while unchanged
    due_at       TEXT NOT NULL,           -- not fetched again before this
    page_hash    TEXT,                    -- hash of the page's fields last time (change check)
    checked_at   TEXT NOT NULL,
    changes      INTEGER NOT NULL DEFAULT 0     -- times the page was seen changed
);
-- Per topic listing (keyed by its first page): full walks versus watermark walks.
CREATE TABLE IF NOT EXISTS listing_walks (
    topic_url         TEXT PRIMARY KEY,
    site              TEXT NOT NULL,
    full_walk_cycle   INTEGER,            -- the cycle walking every page, when one is
    full_walk_started TEXT,
    last_full_walk_at TEXT                -- start of the last complete full walk
);
-- Sitemaps (schema 8) -----------------------------------------------------------------------
-- A site's last complete reading of its sitemaps: each file, in the order read, with what a
-- conditional GET of it sends back; and the URLs the reading accepted (canonical, in scope),
-- newest lastmod first. When every file answers 304, a pass queues those URLs again.
CREATE TABLE IF NOT EXISTS sitemap_files (
    site          TEXT NOT NULL,
    position      INTEGER NOT NULL,       -- the order the reading fetched the files in
    url           TEXT NOT NULL,
    parent        TEXT,                   -- the index that listed it (NULL: robots.txt did)
    etag          TEXT,
    last_modified TEXT,
    rules         TEXT NOT NULL,          -- what the URLs were judged under (pipeline/seeding.py)
    read_at       TEXT NOT NULL,
    PRIMARY KEY (site, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sitemap_urls (
    site       TEXT NOT NULL,
    position   INTEGER NOT NULL,          -- newest lastmod first
    url        TEXT NOT NULL,
    lastmod_us INTEGER,                   -- microseconds since the epoch (UTC), if stated
    PRIMARY KEY (site, position)
) WITHOUT ROWID;
"""


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the store database at ``path``.

    Raises:
        StoreError: the file cannot be opened, is not a crawldex store, or is of a newer schema.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        _migrate(conn, path)
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"cannot open the store {path}: {exc}; is it a crawldex database? "
            "Point storage.dir at another folder or move this file away."
        ) from exc
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Create the schema and move an older store's columns (``_MOVED_OUT``), or refuse a store
    written by a newer crawldex."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the store {path} has schema version {version}, newer than this crawldex "
            f"understands ({SCHEMA_VERSION}); upgrade crawldex"
        )
    if version < SCHEMA_VERSION:
        # executescript commits first and runs each statement on its own; every statement is
        # IF NOT EXISTS, so a crash half-way is repaired by the next open.
        conn.executescript(_SCHEMA)
        for table, column, copy in _MOVED_OUT:
            _move_column_out(conn, table, column, copy)
        if version < 7:
            _sum_topic_pages(conn)
        conn.execute("DROP INDEX IF EXISTS pages_queue")  # schema 8: ``pages_queued``
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


#: Columns later schemas moved out of wide rows into tables of their own: (table, column, the
#: statement that copies it over). Each store from before is moved once, as it is opened.
_MOVED_OUT = (
    (  # schema 5
        "pages",
        "links",
        "INSERT OR REPLACE INTO page_links (url, links) "
        "SELECT url, links FROM pages WHERE links IS NOT NULL",
    ),
    (  # schema 6
        "articles",
        "last_seen_at",
        "INSERT OR REPLACE INTO article_seen (url, last_seen_at) "
        "SELECT url, last_seen_at FROM articles",
    ),
)


def _move_column_out(conn: sqlite3.Connection, table: str, column: str, copy: str) -> None:
    """Run ``copy`` (which moves ``table.column`` elsewhere), then rebuild ``table`` as
    ``_SCHEMA`` now defines it, without the column, keeping its rows; all in one transaction.
    Nothing to do when the table has no such column (a new store, or one moved already).

    The rebuild is SQLite's own recipe for changing a table (create, copy, drop, rename; see
    https://sqlite.org/lang_altertable.html#otheralter): ``ALTER TABLE ... DROP COLUMN`` would
    rewrite the table too, but needs SQLite 3.35, newer than some systems' Python links.
    """
    if column not in _columns(conn, table):
        return
    create = re.search(rf"CREATE TABLE IF NOT EXISTS {table} \(.*?\n\);", _SCHEMA, re.S)
    indexes = re.findall(rf"CREATE INDEX IF NOT EXISTS \w+ ON {table} \([^)]*\)[^;]*;", _SCHEMA)
    assert create is not None, table
    with transaction(conn):
        conn.execute(copy)
        conn.execute(
            create.group(0).replace(
                f"CREATE TABLE IF NOT EXISTS {table} (", f"CREATE TABLE {table}_new (", 1
            )
        )
        kept = ", ".join(c for c in _columns(conn, f"{table}_new") if c != column)
        conn.execute(f"INSERT INTO {table}_new ({kept}) SELECT {kept} FROM {table}")
        conn.execute(f"DROP TABLE {table}")
        conn.execute(f"ALTER TABLE {table}_new RENAME TO {table}")
        for index in indexes:
            conn.execute(index)


def _sum_topic_pages(conn: sqlite3.Connection) -> None:
    """Give every topic of a store from before schema 7 its ``pages_sum`` and the hash taken
    over it, in one transaction, without a change: the content is what it was, only the way
    it is hashed changed. Read a topic at a time, its pages once."""
    if "pages_sum" not in _columns(conn, "topics"):
        conn.execute("ALTER TABLE topics ADD COLUMN pages_sum TEXT NOT NULL DEFAULT '0'")
    with transaction(conn):
        topics = conn.execute("SELECT url, name, description FROM topics").fetchall()
        for url, name, description in topics:
            pages_sum = topic_hash.pages_sum(
                conn.execute(
                    "SELECT page_url, page_no, article_urls FROM topic_pages WHERE topic_url = ?",
                    (url,),
                )
            )
            conn.execute(
                "UPDATE topics SET pages_sum = ?, content_hash = ? WHERE url = ?",
                (pages_sum, topic_hash.topic_hash(name, description, pages_sum), url),
            )


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception; nests as a no-op."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def chunked(values: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    """``values`` in slices small enough to bind in one ``IN (...)`` (SQLite's parameter limit)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(when: datetime | None) -> int | None:
    """Whole microseconds since the epoch: exact, unlike a float timestamp."""
    return None if when is None else (when - _EPOCH) // _MICROSECOND


def from_micros(micros: int | None) -> datetime | None:
    """An aware UTC time from ``to_micros``."""
    return None if micros is None else _EPOCH + timedelta(microseconds=micros)
