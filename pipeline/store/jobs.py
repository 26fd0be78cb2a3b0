"""Store: when each scheduled job last ran, how it ended, and when it runs next.

The ``schedule:`` section of the config is the source of truth for which jobs exist; this table
only remembers times and outcomes, so ``crawldex status`` can show them and a restarted scheduler
can tell that a run was missed while it was down.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any


class JobTable:
    """Reads and writes the ``schedule_jobs`` table."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def register(self, job_id: str, spec: str) -> None:
        """Make sure ``job_id`` has a row (its spec updated when the config changed)."""
        self._conn.execute(
            "INSERT INTO schedule_jobs (job_id, spec) VALUES (?, ?) "
            "ON CONFLICT (job_id) DO UPDATE SET spec = excluded.spec",
            (job_id, spec),
        )

    def get(self, job_id: str) -> dict[str, Any] | None:
        """One job's row, or None."""
        row = self._conn.execute(
            "SELECT * FROM schedule_jobs WHERE job_id = ?", (job_id,)
        ).fetchone()
        return _job(row) if row is not None else None

    def all(self) -> list[dict[str, Any]]:
        """Every job's row, by id."""
        rows = self._conn.execute("SELECT * FROM schedule_jobs ORDER BY job_id").fetchall()
        return [_job(r) for r in rows]

    def set_next(self, job_id: str, next_run_at: datetime | None) -> None:
        """Remember when ``job_id`` runs next (None: not scheduled)."""
        self._conn.execute(
            "UPDATE schedule_jobs SET next_run_at = ? WHERE job_id = ?",
            (next_run_at.isoformat() if next_run_at else None, job_id),
        )

    def record_run(
        self,
        job_id: str,
        *,
        started_at: datetime,
        finished_at: datetime,
        outcome: str,
        run_id: int | None,
        counts: dict[str, Any],
        error: str | None,
    ) -> None:
        """Remember how a job's run ended (``outcome`` ``locked``: skipped, another crawl ran)."""
        locked = 1 if outcome == "locked" else 0
        self._conn.execute(
            """UPDATE schedule_jobs SET last_run_at = ?, last_finished_at = ?, last_outcome = ?,
               last_run_id = ?, last_counts = ?, last_error = ?, runs = runs + ?,
               skipped_locked = skipped_locked + ? WHERE job_id = ?""",
            (
                started_at.isoformat(),
                finished_at.isoformat(),
                outcome,
                run_id,
                json.dumps(counts),
                error,
                1 - locked,
                locked,
                job_id,
            ),
        )


def _job(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["last_counts"] = json.loads(row["last_counts"]) if row["last_counts"] else {}
    return data
