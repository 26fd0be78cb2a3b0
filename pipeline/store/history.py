"""Store: the history of observed changes to an article's title, comment count and status.

Rows are written by ``RecordTable`` in the same transaction as the record change they describe,
so the history never disagrees with the records. Values are kept as JSON text (``old`` is null
when the field had no value before).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

# The fields whose every change is kept.
HISTORY_FIELDS = ("title", "comment_count", "status")


def record_history(
    conn: sqlite3.Connection,
    record_id: str,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    now: datetime,
    seq: int,
    run_id: int | None,
) -> int:
    """Add one history row per field of ``HISTORY_FIELDS`` that differs; returns how many."""
    rows = [
        (
            record_id,
            now.isoformat(),
            name,
            json.dumps(old.get(name)),
            json.dumps(new.get(name)),
            seq,
            run_id,
        )
        for name in HISTORY_FIELDS
        if name in new and old.get(name) != new.get(name)
    ]
    conn.executemany(
        "INSERT INTO history (record_id, observed_at, field, old, new, seq, run_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return len(rows)


class HistoryTable:
    """Reads the history table."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def iter_rows(self, *, record_id: str | None = None) -> Iterator[dict[str, Any]]:
        """History rows oldest first: ``article_id, url, observed_at, field, old, new, run_id``."""
        sql = (
            "SELECT h.*, a.url FROM history h LEFT JOIN articles a ON a.id = h.record_id"
            + (" WHERE h.record_id = ?" if record_id else "")
            + " ORDER BY h.id"
        )
        for row in self._conn.execute(sql, (record_id,) if record_id else ()):
            yield {
                "article_id": row["record_id"],
                "url": row["url"],
                "observed_at": row["observed_at"],
                "field": row["field"],
                "old": json.loads(row["old"]) if row["old"] is not None else None,
                "new": json.loads(row["new"]) if row["new"] is not None else None,
                "seq": row["seq"],
                "run_id": row["run_id"],
            }
