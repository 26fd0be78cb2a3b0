"""Drift alarms: notice when a site's redesign silently breaks extraction.

After every run, the share of the article pages extracted in that run that state a ``title``,
``published_at``, ``comment_count`` and ``summary`` is stored per site (``coverage`` table). A
share that falls more than ``drift.max_drop`` below the median of the previous ``drift.window``
runs is a warning: in the run report, in ``crawldex status``, and a non-zero
``crawldex status --check``. Runs that saw fewer than ``drift.min_records`` articles of the site
are neither judged nor part of a baseline.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.config import DriftSettings
from pipeline.store import COVERAGE_FIELDS, Store

__all__ = ["DriftWarning", "check_run", "current_warnings", "measure_run"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DriftWarning:
    """A field whose share of records with a value fell sharply in one run."""

    site: str
    field: str
    run_id: int
    share: float
    baseline: float
    records: int

    @property
    def message(self) -> str:
        """One line for people."""
        return (
            f"{self.site}: only {self.share:.0%} of {self.records} articles have {self.field} "
            f"in run {self.run_id}, against {self.baseline:.0%} recently; did the site change "
            f"its markup? Check with `crawldex extract URL --site {self.site}`"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy with the message."""
        return {**asdict(self), "message": self.message}


def measure_run(
    store: Store, drift: DriftSettings, *, run_id: int, sites: Sequence[str], seen_since: str
) -> list[DriftWarning]:
    """Store the field coverage of the articles seen in a run, and judge it.

    Args:
        store: the open store.
        drift: thresholds.
        run_id: the run.
        sites: the sites the run crawled.
        seen_since: the run's start (ISO 8601 UTC): articles seen since are the run's.

    Returns:
        The warnings for this run (empty when nothing dropped).
    """
    with store.transaction():
        store.coverage.measure(run_id, sites, seen_since)
    warnings = [w for site in sites for w in check_run(store, drift, run_id=run_id, site=site)]
    for warning in warnings:
        logger.warning("drift: %s", warning.message)
    return warnings


def check_run(store: Store, drift: DriftSettings, *, run_id: int, site: str) -> list[DriftWarning]:
    """Compare one run's coverage of ``site`` with the median of the runs before it."""
    measured = store.coverage.for_run(run_id, site)
    warnings = []
    for name in COVERAGE_FIELDS:
        with_value, records = measured.get(name, (0, 0))
        if records < drift.min_records:
            continue
        history = store.coverage.shares(
            site, name, before_run=run_id, limit=drift.window, min_records=drift.min_records
        )
        if not history:
            continue
        baseline = statistics.median(history)
        share = with_value / records
        if baseline - share > drift.max_drop:
            warnings.append(DriftWarning(site, name, run_id, share, baseline, records))
    return warnings


def current_warnings(store: Store, drift: DriftSettings) -> list[DriftWarning]:
    """The warnings of each site's newest measured run (what ``crawldex status`` shows)."""
    return [
        warning
        for site, run_id in sorted(store.coverage.latest_runs().items())
        for warning in check_run(store, drift, run_id=run_id, site=site)
    ]
