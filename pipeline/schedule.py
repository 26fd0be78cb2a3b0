"""Schedule: time-based runs of ``run_once``; the only importer of apscheduler.

Jobs come from the ``schedule:`` section of the config, the source of truth: they live in
APScheduler's in-memory job store only, so a renamed function can never make a persistent job store
drop a pickled job silently (agronholm/apscheduler#341). What must survive a restart lives in our
store (``schedule_jobs``): each job's last run (time, outcome, counts) and next run. A job whose
stored next run passed while the scheduler was down runs once at start (coalesced).

Every job has ``coalesce=True``, ``max_instances=1`` and ``misfire_grace_time`` from the config
(not APScheduler's one second, apscheduler#146), and one worker thread runs them, so a slow run is
never overlapped by the next. A manual ``crawldex crawl`` on the same data directory holds the
crawl lock: a job that finds it held logs, skips and counts it. ``request_stop`` (SIGTERM/SIGINT)
sets the run's stop event: no new URLs, in-flight pages are stored, the pass stays open for the
next run. A failing run is logged with its cause and recorded; the schedule goes on.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    EVENT_SCHEDULER_STARTED,
    SchedulerEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from pipeline.config import ScheduleJob, Settings
from pipeline.errors import ConfigError, CrawlLocked, PipelineError
from pipeline.store import Store

__all__ = ["CrawlScheduler", "PlannedJob", "job_ids", "make_trigger"]

logger = logging.getLogger(__name__)

# crontab weekdays (0 and 7 = Sunday) as names: APScheduler 3 counts 0 as Monday (apscheduler#286).
_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_WEEKDAY_NUMBER = re.compile(r"(?<![/\d])(\d+)")


class RunFunction(Protocol):
    """``run_once``'s shape, injectable for tests."""

    def __call__(
        self, settings: Settings, *, sites: Sequence[str] | None, stop: threading.Event
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class PlannedJob:
    """A job as registered: its id, site, trigger and first run time."""

    job_id: str
    site: str
    spec: str
    trigger: BaseTrigger
    first_run: datetime | None
    catch_up: bool


def job_ids(jobs: Sequence[ScheduleJob]) -> list[str]:
    """Stable ids: ``crawl:<site>``, then ``crawl:<site>:2`` ... for more jobs of one site."""
    seen: dict[str, int] = {}
    ids = []
    for job in jobs:
        seen[job.site] = seen.get(job.site, 0) + 1
        n = seen[job.site]
        ids.append(f"crawl:{job.site}" if n == 1 else f"crawl:{job.site}:{n}")
    return ids


def make_trigger(job: ScheduleJob, *, start: datetime, key: str = "schedule.jobs") -> BaseTrigger:
    """The APScheduler trigger of one job: cron in UTC, or an interval first firing at ``start``.

    Raises:
        ConfigError: the cron expression is not valid.
    """
    seconds = job.every_seconds
    if seconds is not None:
        return IntervalTrigger(seconds=seconds, start_date=start, timezone=UTC, jitter=job.jitter)
    minute, hour, day, month, weekday = (job.cron or "").split()
    weekday = _WEEKDAY_NUMBER.sub(lambda m: _CRON_DAYS[int(m.group(1)) % 7], weekday)
    try:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=weekday,
            timezone=UTC,
            jitter=job.jitter or None,
        )
    except ValueError as exc:
        raise ConfigError(f"{key}: bad cron expression {job.cron!r}: {exc}", key=key) from None


def _interval_start(job: ScheduleJob, now: datetime, due_at: datetime | None) -> datetime:
    """An interval keeps its phase across restarts; a new job first runs one interval from now."""
    if due_at is not None and due_at > now:
        return due_at
    return now + timedelta(seconds=job.every_seconds or 0)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class CrawlScheduler:
    """The configured crawls on an APScheduler scheduler.

    Args:
        settings: validated settings with a ``schedule.jobs`` list.
        run: the run function (``run_once``; injectable for tests).
        clock: the current time (UTC), injectable for tests.
        blocking: a ``BlockingScheduler`` (foreground, for ``crawldex schedule``) or a
            ``BackgroundScheduler`` (tests drive it from their own thread).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        run: RunFunction,
        clock: Callable[[], datetime] = _utcnow,
        blocking: bool = True,
    ) -> None:
        self.settings = settings
        self.run = run
        self.clock = clock
        self.stop = threading.Event()
        self.idle = threading.Event()
        self.idle.set()
        scheduler_class = BlockingScheduler if blocking else BackgroundScheduler
        self.scheduler: BaseScheduler = scheduler_class(
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": settings.schedule.misfire_grace_time,
            },
            timezone=UTC,
        )
        self.planned: list[PlannedJob] = []

    def add_jobs(self) -> list[PlannedJob]:
        """Register every configured job; one whose run was missed while down runs at once.

        Raises:
            ConfigError: no jobs configured, or a bad cron expression.
        """
        jobs = self.settings.schedule.jobs
        if not jobs:
            raise ConfigError(
                "no scheduled jobs: add `schedule: {jobs: [{site: NAME, every: 6h}]}` "
                "to config.yaml (see README)",
                key="schedule.jobs",
            )
        now = self.clock()
        with Store(self.settings.storage.dir) as store:
            for i, (job_id, job) in enumerate(zip(job_ids(jobs), jobs, strict=True)):
                with store.transaction():
                    store.jobs.register(job_id, job.spec)
                due = (store.jobs.get(job_id) or {}).get("next_run_at")
                due_at = datetime.fromisoformat(due) if due else None
                catch_up = due_at is not None and due_at <= now
                trigger = make_trigger(
                    job, start=_interval_start(job, now, due_at), key=f"schedule.jobs.{i}.cron"
                )
                first = now if catch_up else trigger.get_next_fire_time(None, now)
                if catch_up:
                    logger.warning(
                        "%s: a run was due at %s while stopped; running now", job_id, due
                    )
                self.scheduler.add_job(
                    self.run_job,
                    trigger,
                    args=[job_id, job.site],
                    id=job_id,
                    name=f"crawl {job.site} ({job.spec})",
                    next_run_time=first,
                    coalesce=True,
                    max_instances=1,
                    misfire_grace_time=self.settings.schedule.misfire_grace_time,
                )
                self.planned.append(
                    PlannedJob(job_id, job.site, job.spec, trigger, first, catch_up)
                )
        return self.planned

    def run_job(self, job_id: str, site: str) -> str:
        """One scheduled run of ``site``; records and returns its outcome, never raises.

        Outcomes: the run's status (``finished``, ``paused``, ``interrupted``), ``locked``
        (another crawl holds the data directory: skipped) or ``failed`` (logged with its cause).
        """
        if self.stop.is_set():
            return "stopped"
        self.idle.clear()
        started = self.clock()
        run_id: int | None = None
        counts: dict[str, Any] = {}
        error: str | None = None
        try:
            report = self.run(self.settings, sites=[site], stop=self.stop)
            outcome, run_id, counts = str(report.status), report.run_id, _counts(report)
        except CrawlLocked as exc:
            outcome, error = "locked", str(exc)
            logger.warning("%s skipped: %s", job_id, exc)
        except PipelineError as exc:
            outcome, error = "failed", str(exc)
            logger.error("%s failed: %s", job_id, exc)
        except Exception as exc:  # one broken run must not end the schedule (logged)
            outcome, error = "failed", f"{type(exc).__name__}: {exc}"
            logger.exception("%s failed with an unexpected error", job_id)
        try:
            with Store(self.settings.storage.dir) as store, store.transaction():
                store.jobs.record_run(
                    job_id,
                    started_at=started,
                    finished_at=self.clock(),
                    outcome=outcome,
                    run_id=run_id,
                    counts=counts,
                    error=error,
                )
        finally:
            self.idle.set()
        return outcome

    def save_next_runs(self, _event: SchedulerEvent | None = None) -> None:
        """Store each job's next run time (called on scheduler events)."""
        with Store(self.settings.storage.dir) as store, store.transaction():
            for job in self.scheduler.get_jobs():
                store.jobs.set_next(job.id, getattr(job, "next_run_time", None))

    def start(self) -> None:
        """Start the scheduler (blocks for a ``BlockingScheduler`` until ``request_stop``)."""
        mask = (
            EVENT_SCHEDULER_STARTED
            | EVENT_JOB_SUBMITTED
            | EVENT_JOB_EXECUTED
            | EVENT_JOB_ERROR
            | EVENT_JOB_MISSED
        )
        self.scheduler.add_listener(self.save_next_runs, mask)
        logger.info("scheduler started with %d job(s)", len(self.planned))
        self.scheduler.start()

    def request_stop(self) -> None:
        """Stop taking new URLs and new runs; safe to call from a signal handler."""
        self.stop.set()
        threading.Thread(
            target=self.scheduler.shutdown, kwargs={"wait": False}, name="scheduler-stop"
        ).start()

    def wait_idle(self) -> bool:
        """Wait up to ``schedule.stop_timeout`` for a running job to end; True when none runs."""
        done = self.idle.wait(self.settings.schedule.stop_timeout)
        if not done:
            logger.warning(
                "a run is still finishing after %.0f s (schedule.stop_timeout); exiting anyway",
                self.settings.schedule.stop_timeout,
            )
        return done


def _counts(report: Any) -> dict[str, Any]:
    return {
        "pages_fetched": report.pages_fetched,
        "not_modified": report.not_modified,
        "pages_failed": report.pages_failed,
        "changes": dict(report.changes),
        "drift_warnings": len(report.drift),
        "watch_matches": {name: len(hits) for name, hits in report.watches.items()},
    }
