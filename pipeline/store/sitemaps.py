"""Store: a site's last complete reading of its sitemaps (``sitemap_files``, ``sitemap_urls``).

What ``pipeline.seeding`` needs to skip reading them again: each file with the validators of
its copy (for a conditional GET) and the index that listed it, and the URLs the reading
accepted, canonical and newest first. When every file answers 304, a pass queues those URLs
from here instead of downloading, parsing and judging the sitemaps' entries again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from pipeline.models import Validators
from pipeline.store.db import from_micros, to_micros


@dataclass(frozen=True, slots=True)
class SitemapFile:
    """One sitemap file of a reading: where, which index listed it (None: robots.txt did), and
    the validators of the copy read."""

    url: str
    parent: str | None
    validators: Validators


class SitemapTable:
    """Reads and writes the sitemap tables on one SQLite connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def files(self, site: str, rules: str) -> list[SitemapFile]:
        """The files of ``site``'s last complete reading, in the order it read them, if its URLs
        were judged under ``rules``; none otherwise (read the sitemaps in full)."""
        rows = self._conn.execute(
            "SELECT url, parent, etag, last_modified, rules FROM sitemap_files "
            "WHERE site = ? ORDER BY position",
            (site,),
        ).fetchall()
        if any(row["rules"] != rules for row in rows):
            return []
        return [
            SitemapFile(row["url"], row["parent"], Validators(row["etag"], row["last_modified"]))
            for row in rows
        ]

    def urls(self, site: str, size: int) -> Iterator[list[tuple[str, datetime | None]]]:
        """The URLs the reading accepted, as ``(url, lastmod)``, newest first, ``size`` at a
        time (a slice a query: the caller writes other tables between slices)."""
        after = -1
        while True:
            rows = self._conn.execute(
                "SELECT position, url, lastmod_us FROM sitemap_urls "
                "WHERE site = ? AND position > ? ORDER BY position LIMIT ?",
                (site, after, size),
            ).fetchall()
            if not rows:
                return
            after = rows[-1][0]
            yield [(url, from_micros(micros)) for _, url, micros in rows]

    def forget(self, site: str) -> None:
        """Drop ``site``'s reading: its next pass reads the sitemaps in full."""
        self._conn.execute("DELETE FROM sitemap_files WHERE site = ?", (site,))
        self._conn.execute("DELETE FROM sitemap_urls WHERE site = ?", (site,))

    def add_urls(self, site: str, urls: Iterable[tuple[str, datetime | None]]) -> None:
        """Append accepted ``(url, lastmod)`` pairs to the reading being written (after
        ``forget``), in the order they are to be queued."""
        last = self._conn.execute(
            "SELECT MAX(position) FROM sitemap_urls WHERE site = ?", (site,)
        ).fetchone()[0]
        start = -1 if last is None else int(last)
        self._conn.executemany(
            "INSERT INTO sitemap_urls (site, position, url, lastmod_us) VALUES (?, ?, ?, ?)",
            [
                (site, start + offset, url, to_micros(lastmod))
                for offset, (url, lastmod) in enumerate(urls, 1)
            ],
        )

    def save_files(
        self, site: str, rules: str, files: Sequence[SitemapFile], now: datetime
    ) -> None:
        """Record the files of the reading being written (after ``forget``): it is complete."""
        self._conn.executemany(
            "INSERT INTO sitemap_files (site, position, url, parent, etag, last_modified, rules, "
            "read_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    site,
                    position,
                    f.url,
                    f.parent,
                    f.validators.etag,
                    f.validators.last_modified,
                    rules,
                    now.isoformat(),
                )
                for position, f in enumerate(files)
            ],
        )
