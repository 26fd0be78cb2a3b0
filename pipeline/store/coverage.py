"""Store: per run, site and field, how many article records seen in the run had a value.

A theme change that breaks extraction shows as a sharp drop of these shares; ``pipeline.drift``
compares a run against the recent baseline.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

# Fields whose presence is tracked (the contract's names).
COVERAGE_FIELDS = ("title", "published_at", "comment_count", "summary")


class CoverageTable:
    """Measures and reads the ``coverage`` table."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def measure(
        self, run_id: int, sites: Sequence[str], seen_since: str
    ) -> dict[str, dict[str, tuple[int, int]]]:
        """Count, per site and field, article pages extracted since ``seen_since`` with a value.

        What the pages themselves said (not the merged records, which keep older values and
        listing-card values): a redesign that breaks extraction shows at once.

        Returns:
            ``{site: {field: (with_value, records)}}``, also stored under ``run_id``.
        """
        out: dict[str, dict[str, tuple[int, int]]] = {}
        for site in sites:
            counts = dict.fromkeys(COVERAGE_FIELDS, 0)
            records = 0
            for (blob,) in self._conn.execute(
                "SELECT page FROM articles WHERE site = ? AND status = 'active' "
                "AND page IS NOT NULL AND fetched_at >= ?",
                (site, seen_since),
            ):
                record = json.loads(blob)
                records += 1
                for name in COVERAGE_FIELDS:
                    counts[name] += record.get(name) not in (None, "")
            out[site] = {name: (counts[name], records) for name in COVERAGE_FIELDS}
            self._conn.executemany(
                "INSERT OR REPLACE INTO coverage (run_id, site, field, records, with_value) "
                "VALUES (?, ?, ?, ?, ?)",
                [(run_id, site, name, records, counts[name]) for name in COVERAGE_FIELDS],
            )
        return out

    def shares(
        self, site: str, field: str, *, before_run: int, limit: int, min_records: int
    ) -> list[float]:
        """The newest ``limit`` shares of ``field`` for ``site`` from runs before ``before_run``.

        Runs that saw fewer than ``min_records`` articles of the site are left out.
        """
        rows = self._conn.execute(
            "SELECT with_value, records FROM coverage WHERE site = ? AND field = ? "
            "AND run_id < ? AND records >= ? ORDER BY run_id DESC LIMIT ?",
            (site, field, before_run, max(min_records, 1), limit),
        ).fetchall()
        return [r[0] / r[1] for r in rows]

    def for_run(self, run_id: int, site: str) -> dict[str, tuple[int, int]]:
        """``{field: (with_value, records)}`` measured for ``site`` in run ``run_id``."""
        rows = self._conn.execute(
            "SELECT field, with_value, records FROM coverage WHERE run_id = ? AND site = ?",
            (run_id, site),
        ).fetchall()
        return {r["field"]: (int(r["with_value"]), int(r["records"])) for r in rows}

    def latest_runs(self) -> dict[str, int]:
        """The newest run measured for each site."""
        rows = self._conn.execute("SELECT site, MAX(run_id) FROM coverage GROUP BY site")
        return {str(r[0]): int(r[1]) for r in rows}
