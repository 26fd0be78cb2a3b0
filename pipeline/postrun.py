"""After a run: the change feed, drift alarms and watches (unattended operation).

``run_once`` calls ``write_outputs`` (drift, the change feed: the store only) while the index
process runs its final sync, then ``check_watches`` (saved searches) once the search index has
caught up with the store; still holding the crawl lock, so nothing changes underneath. Each
step fills a field of the ``RunReport``; a step that fails is logged with its cause and counted
in ``report.errors``, and the others still run: the records are already safe in the store, and
the feed cursor only moves after a successful export, so the next run exports what this one
could not.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pipeline.config import Settings
from pipeline.drift import current_warnings, measure_run
from pipeline.errors import PipelineError
from pipeline.feed import FEED_CURSOR_KEY, write_feed
from pipeline.store import Store
from pipeline.watch import evaluate_watches

if TYPE_CHECKING:
    from pipeline.run import RunReport

__all__ = ["check_watches", "unattended_status", "write_outputs"]

logger = logging.getLogger(__name__)


def write_outputs(settings: Settings, store: Store, report: RunReport) -> None:
    """Measure drift and export the change feed; results go into ``report``."""
    now = datetime.now(UTC)
    try:
        warnings = measure_run(
            store,
            settings.drift,
            run_id=report.run_id,
            sites=report.sites,
            seen_since=report.started_at,
        )
        report.drift = [w.to_dict() for w in warnings]
    except PipelineError as exc:
        _failed("drift check", exc, report)
    if settings.export.feed:
        try:
            feed = write_feed(
                store,
                settings.export_dir,
                run_id=report.run_id,
                now=now,
                formats=settings.export.feed_formats,
            )
            report.feed = {
                "manifest": str(feed.manifest),
                "since": feed.since,
                "cursor": feed.cursor,
                "counts": feed.counts,
            }
        except PipelineError as exc:
            _failed("change feed export", exc, report)


def check_watches(settings: Settings, store: Store, report: RunReport) -> None:
    """Evaluate the watches (they search the index: call it once it is synced) into ``report``."""
    try:
        report.watches = evaluate_watches(
            settings, store, run_id=report.run_id, now=datetime.now(UTC)
        )
    except PipelineError as exc:
        _failed("watches", exc, report)


def _failed(step: str, exc: PipelineError, report: RunReport) -> None:
    logger.error("%s failed after run %s: %s", step, report.run_id, exc)
    report.errors += 1


def unattended_status(settings: Settings) -> dict[str, Any]:
    """Scheduled jobs' last and next runs, current drift warnings, and the feed cursor."""
    with Store(settings.storage.dir) as store:
        return {
            "schedule": store.jobs.all(),
            "drift": [w.to_dict() for w in current_warnings(store, settings.drift)],
            "feed_cursor": int(store.get_meta(FEED_CURSOR_KEY, "0") or 0),
        }
