"""Scratch sets of URLs on disk for one run (part of the store stage's seams).

``LastmodSpool``: sitemap URLs while a site's sitemaps are read.

The crawl queues a pass's sitemap URLs newest ``lastmod`` first over all of a site's sitemaps,
so it has to see every entry before it queues the first. Held as objects, 100,000 entries took
24.5 MB of the crawl's memory, and a sitemap index may list 50 sitemaps of 50,000 URLs each. The
spool keeps them in a private temporary SQLite database instead (on disk, deleted when closed,
and by the system at once if the process dies: SQLite unlinks it as it opens it) and reads them
back in order a slice at a time, so the crawl holds one slice and SQLite's small page cache.

``UrlSpool``: URLs counted once each over a run, as the recrawl policy counts the article
pages it finds not due; a steady run of a 100,000-article site finds most of them so.

Both are local scratch space, not state: nothing in them outlives the run, so a shared store
does not need to replace them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from datetime import datetime

from pipeline.errors import StoreError
from pipeline.store.db import from_micros, to_micros, transaction

__all__ = ["LastmodSpool", "UrlSpool"]

# Newest first, unknown lastmod last, and in the order added among equals (a stable sort).
_READ_SQL = "SELECT loc, lastmod_us FROM entries ORDER BY lastmod_us IS NULL, lastmod_us DESC, seq"


class LastmodSpool:
    """URLs with their ``lastmod`` (aware UTC or None), added in batches and read back newest
    first. Call ``close`` when done (``contextlib.closing``)."""

    def __init__(self) -> None:
        self._conn = _scratch_database(
            "CREATE TABLE entries (seq INTEGER PRIMARY KEY, loc TEXT NOT NULL, lastmod_us INTEGER)",
            "the sitemap spool",
        )

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def add(self, entries: Iterable[tuple[str, datetime | None]]) -> None:
        """Add entries as one batch: all of them, or none if iterating them raises.

        Args:
            entries: ``(url, lastmod)`` pairs, read as they come (a parser's stream).

        Raises:
            StoreError: the spool cannot be written (its disk is full, say).
            Whatever iterating ``entries`` raises, after the batch's rows are dropped again.
        """
        try:
            with transaction(self._conn):
                self._conn.executemany(
                    "INSERT INTO entries (loc, lastmod_us) VALUES (?, ?)",
                    ((loc, to_micros(lastmod)) for loc, lastmod in entries),
                )
        except sqlite3.Error as exc:
            raise StoreError(f"the sitemap spool cannot be written: {exc}") from exc

    def newest_first(self, size: int) -> Iterator[list[tuple[str, datetime | None]]]:
        """Every entry added, newest ``lastmod`` first (unknown last), ``size`` at a time.

        Raises:
            StoreError: the spool cannot be read.
        """
        try:
            cursor = self._conn.execute(_READ_SQL)
            while rows := cursor.fetchmany(size):
                yield [(loc, from_micros(micros)) for loc, micros in rows]
        except sqlite3.Error as exc:
            raise StoreError(f"the sitemap spool cannot be read: {exc}") from exc

    def close(self) -> None:
        """Drop the spool (its file goes with the connection)."""
        self._conn.close()


class UrlSpool:
    """A set of URLs in a private temporary SQLite database (on disk, gone when closed or when
    the process dies), for counting each once without holding them. Call ``close`` when done."""

    def __init__(self) -> None:
        self._conn = _scratch_database(
            "CREATE TABLE urls (url TEXT PRIMARY KEY) WITHOUT ROWID", "a scratch URL set"
        )

    def add(self, urls: Iterable[str]) -> int:
        """Add ``urls``; returns how many of them were not in the set yet.

        Raises:
            StoreError: the set cannot be written (its disk is full, say).
        """
        try:
            before = self._conn.total_changes
            with transaction(self._conn):  # one transaction a batch, not one a URL
                self._conn.executemany(
                    "INSERT OR IGNORE INTO urls (url) VALUES (?)", ((url,) for url in urls)
                )
            return self._conn.total_changes - before
        except sqlite3.Error as exc:
            raise StoreError(f"a scratch URL set cannot be written: {exc}") from exc

    def close(self) -> None:
        """Drop the set (its file goes with the connection)."""
        self._conn.close()


def _scratch_database(create_table: str, what: str) -> sqlite3.Connection:
    """A private temporary SQLite database (an empty file name: on disk, in SQLite's own temp
    directory) with the one table ``create_table`` makes; ``what`` names it in the error."""
    try:
        conn = sqlite3.connect("", isolation_level=None)
        conn.execute(create_table)
    except sqlite3.Error as exc:
        raise StoreError(f"{what} cannot be made: {exc}") from exc
    return conn
