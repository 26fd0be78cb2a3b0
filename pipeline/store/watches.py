"""Store: saved searches (watches) and the articles each has matched so far."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import datetime
from typing import Any


class WatchTable:
    """Reads and writes the ``watches`` and ``watch_hits`` tables."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def add(self, name: str, query: str, now: datetime) -> bool:
        """Save a watch; False when one of that name exists (nothing changed)."""
        cur = self._conn.execute(
            "INSERT INTO watches (name, query, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO NOTHING",
            (name, query, now.isoformat()),
        )
        return cur.rowcount == 1

    def remove(self, name: str) -> bool:
        """Delete a watch and its hits; False when there was none."""
        self._conn.execute("DELETE FROM watch_hits WHERE name = ?", (name,))
        cur = self._conn.execute("DELETE FROM watches WHERE name = ?", (name,))
        return cur.rowcount == 1

    def all(self) -> list[dict[str, Any]]:
        """Every watch with its number of matches so far, by name."""
        rows = self._conn.execute(
            """SELECT w.name, w.query, w.created_at, COUNT(h.record_id) AS matches
               FROM watches w LEFT JOIN watch_hits h ON h.name = w.name
               GROUP BY w.name ORDER BY w.name"""
        ).fetchall()
        return [dict(r) for r in rows]

    def known_hits(self, name: str) -> set[str]:
        """Ids of the articles ``name`` has matched so far."""
        rows = self._conn.execute("SELECT record_id FROM watch_hits WHERE name = ?", (name,))
        return {str(r[0]) for r in rows}

    def add_hits(
        self, name: str, record_ids: Iterable[str], now: datetime, run_id: int | None
    ) -> None:
        """Remember new matches of ``name``."""
        self._conn.executemany(
            "INSERT OR IGNORE INTO watch_hits (name, record_id, matched_at, run_id) "
            "VALUES (?, ?, ?, ?)",
            [(name, rid, now.isoformat(), run_id) for rid in record_ids],
        )
