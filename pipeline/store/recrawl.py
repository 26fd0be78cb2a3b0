"""Store: the recrawl policy's state (``refetch_schedule`` and ``listing_walks`` tables).

The decisions live in ``pipeline.recrawl``; this module only reads and writes what they need:
each article page's adaptive refetch interval and due time, each topic listing's full-walk state,
and whether a listing card says anything the store does not know yet.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.models import CardRecord
from pipeline.store.db import chunked
from pipeline.store.records import CARD_FIELDS, set_last_seen


@dataclass(frozen=True, slots=True)
class RefetchEntry:
    """One article page's refetch schedule."""

    url: str
    interval_s: int
    due_at: datetime
    page_hash: str | None
    checked_at: datetime
    changes: int


@dataclass(frozen=True, slots=True)
class ListingWalk:
    """One topic listing's walk state."""

    topic_url: str
    full_walk_cycle: int | None
    full_walk_started: datetime | None
    last_full_walk_at: datetime | None


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class RecrawlTable:
    """Reads and writes the recrawl policy's tables on one SQLite connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    # -- article pages -----------------------------------------------------------------------
    def refetch_entry(self, url: str) -> RefetchEntry | None:
        """The schedule of the article page at ``url``, or None before its first fetch."""
        row = self._conn.execute("SELECT * FROM refetch_schedule WHERE url = ?", (url,)).fetchone()
        return None if row is None else _entry(row)

    def refetch_times(self, urls: Sequence[str]) -> dict[str, tuple[datetime, datetime]]:
        """``(due_at, checked_at)`` of those of ``urls`` fetched before: what deciding whether a
        link is due needs, without the rest of the row."""
        return {
            url: (datetime.fromisoformat(due), datetime.fromisoformat(checked))
            for url, due, checked in self._schedules("url, due_at, checked_at", urls)
        }

    def due_times(self, urls: Sequence[str]) -> dict[str, datetime]:
        """The due times of those of ``urls`` fetched before: all a sitemap's tens of thousands
        of URLs are asked for, so the rest of the row is not read."""
        return {
            url: datetime.fromisoformat(due) for url, due in self._schedules("url, due_at", urls)
        }

    def intervals(self, urls: Sequence[str]) -> dict[str, int]:
        """The refetch intervals (seconds) of those of ``urls`` fetched before."""
        return {url: int(seconds) for url, seconds in self._schedules("url, interval_s", urls)}

    def _schedules(self, columns: str, urls: Sequence[str]) -> Iterator[sqlite3.Row]:
        """``columns`` of the ``refetch_schedule`` rows of ``urls``, one query per 500 URLs."""
        for chunk in chunked(urls):
            yield from self._conn.execute(
                f"SELECT {columns} FROM refetch_schedule "
                f"WHERE url IN ({','.join('?' * len(chunk))})",
                chunk,
            )

    def set_refetch(
        self,
        url: str,
        *,
        interval_s: int,
        due_at: datetime,
        page_hash: str | None,
        checked_at: datetime,
        changed: bool,
    ) -> None:
        """Store the page's next due time (``page_hash`` None keeps the stored one)."""
        self.set_refetches([(url, interval_s, due_at, page_hash, checked_at, changed)])

    def set_refetches(
        self, schedules: Iterable[tuple[str, int, datetime, str | None, datetime, bool]]
    ) -> None:
        """``set_refetch`` for each ``(url, interval_s, due_at, page_hash, checked_at, changed)``
        in one prepared statement (a batch of 304s reschedules up to 64 articles)."""
        self._conn.executemany(
            """INSERT INTO refetch_schedule (url, interval_s, due_at, page_hash, checked_at,
                                             changes)
               VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (url) DO UPDATE SET interval_s = excluded.interval_s,
                   due_at = excluded.due_at,
                   page_hash = COALESCE(excluded.page_hash, refetch_schedule.page_hash),
                   checked_at = excluded.checked_at,
                   changes = refetch_schedule.changes + excluded.changes""",
            [
                (url, interval, due.isoformat(), digest, checked.isoformat(), int(changed))
                for url, interval, due, digest, checked, changed in schedules
            ],
        )

    # -- listings ----------------------------------------------------------------------------
    def listing_walk(self, topic_url: str) -> ListingWalk | None:
        """The walk state of the topic whose first page is ``topic_url``."""
        row = self._conn.execute(
            "SELECT * FROM listing_walks WHERE topic_url = ?", (topic_url,)
        ).fetchone()
        if row is None:
            return None
        return ListingWalk(
            topic_url=row["topic_url"],
            full_walk_cycle=row["full_walk_cycle"],
            full_walk_started=_time(row["full_walk_started"]),
            last_full_walk_at=_time(row["last_full_walk_at"]),
        )

    def begin_full_walk(self, topic_url: str, site: str, cycle: int, now: datetime) -> None:
        """This cycle walks every page of the topic."""
        self._conn.execute(
            """INSERT INTO listing_walks (topic_url, site, full_walk_cycle, full_walk_started)
               VALUES (?, ?, ?, ?)
               ON CONFLICT (topic_url) DO UPDATE SET full_walk_cycle = excluded.full_walk_cycle,
                   full_walk_started = excluded.full_walk_started""",
            (topic_url, site, cycle, now.isoformat()),
        )

    def finish_full_walks(self, site: str, cycle: int) -> int:
        """The cycle ended: its full walks are complete as of the time they started."""
        cur = self._conn.execute(
            """UPDATE listing_walks SET last_full_walk_at = full_walk_started,
                   full_walk_cycle = NULL
               WHERE site = ? AND full_walk_cycle = ?""",
            (site, cycle),
        )
        return cur.rowcount

    def cards_known_and_unchanged(self, topic_url: str, cards: list[CardRecord]) -> bool:
        """Every card's article is stored (active), listed in this topic, with the same card."""
        for card in cards:
            row = self._conn.execute(
                "SELECT card, status, listed_in FROM articles WHERE url = ?", (card.url,)
            ).fetchone()
            if row is None or row["status"] != "active" or row["card"] is None:
                return False
            if topic_url not in json.loads(row["listed_in"]):
                return False  # new to this topic (maybe stored from another one this run)
            stored: dict[str, Any] = json.loads(row["card"])
            seen = json.loads(json.dumps({f: getattr(card, f) for f in CARD_FIELDS}))
            if any(stored.get(f) != seen[f] for f in CARD_FIELDS):
                return False
        return True

    def page_article_urls(self, page_url: str) -> list[str]:
        """The article URLs stored for one listing page (empty when never stored)."""
        row = self._conn.execute(
            "SELECT article_urls FROM topic_pages WHERE page_url = ?", (page_url,)
        ).fetchone()
        return [] if row is None else list(json.loads(row[0]))

    def touch_articles(self, urls: list[str], now: datetime) -> None:
        """Articles a listing still shows (unchanged): only ``last_seen_at`` moves."""
        set_last_seen(self._conn, [(now.isoformat(), url) for url in urls], active_only=True)


def _entry(row: sqlite3.Row) -> RefetchEntry:
    """A ``refetch_schedule`` row as a ``RefetchEntry``."""
    return RefetchEntry(
        url=row["url"],
        interval_s=int(row["interval_s"]),
        due_at=datetime.fromisoformat(row["due_at"]),
        page_hash=row["page_hash"],
        checked_at=datetime.fromisoformat(row["checked_at"]),
        changes=int(row["changes"]),
    )
