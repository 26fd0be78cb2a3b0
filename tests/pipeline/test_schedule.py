"""crawldex schedule: registered jobs, catch-up, locking, failures, real runs and SIGTERM."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from pipeline.config import Settings
from pipeline.errors import StoreError
from pipeline.feed import export_file
from pipeline.run import RunReport, run_once
from pipeline.schedule import CrawlScheduler
from pipeline.store import DirectoryLock, Store
from tests.conftest import crawl_settings

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 1, 5, 1, 0, tzinfo=UTC)  # a Sunday


def _with_jobs(settings: Settings, jobs: list[dict], **schedule) -> Settings:
    data = settings.model_dump()
    data["schedule"] = {"jobs": jobs, **schedule}
    return Settings.model_validate(data)


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(0.02)  # polling an observable condition, not synchronising by sleeping


class _FakeRun:
    """Records calls; optionally raises."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.calls: list[list[str]] = []
        self.error = error
        self.called = threading.Event()

    def __call__(self, settings, *, sites, stop):
        self.calls.append(list(sites))
        self.called.set()
        if self.error is not None:
            raise self.error
        return RunReport(run_id=len(self.calls), sites=list(sites), status="finished")


def test_jobs_and_triggers_are_registered_from_config(tmp_path):
    settings = _with_jobs(
        crawl_settings(tmp_path, "http://127.0.0.1:9"),
        [
            {"site": "demo", "cron": "0 */6 * * *"},
            {"site": "demo", "every": "90m"},
            {"site": "demo", "cron": "0 9 * * 1"},  # crontab 1 = Monday
        ],
        misfire_grace_time=120,
    )
    scheduler = CrawlScheduler(settings, run=_FakeRun(), clock=lambda: NOW, blocking=False)
    planned = scheduler.add_jobs()
    assert [p.job_id for p in planned] == ["crawl:demo", "crawl:demo:2", "crawl:demo:3"]
    assert [p.first_run for p in planned] == [
        NOW.replace(hour=6),
        NOW + timedelta(minutes=90),
        datetime(2025, 1, 6, 9, 0, tzinfo=UTC),
    ]
    assert not any(p.catch_up for p in planned)
    for job in scheduler.scheduler.get_jobs():
        assert job.misfire_grace_time == 120
        assert job.coalesce is True
        assert job.max_instances == 1
    with Store(settings.storage.dir) as store:
        assert [j["spec"] for j in store.jobs.all()] == [
            "cron 0 */6 * * *",
            "every 90m",
            "cron 0 9 * * 1",
        ]


def test_a_run_missed_while_stopped_runs_once_at_start(tmp_path):
    now = datetime.now(UTC).replace(microsecond=0)  # APScheduler compares with the real clock
    settings = _with_jobs(
        crawl_settings(tmp_path, "http://127.0.0.1:9"),
        [{"site": "demo", "every": "6h"}, {"site": "demo", "cron": "0 12 * * *"}],
    )
    with Store(settings.storage.dir) as store, store.transaction():
        store.jobs.register("crawl:demo", "every 6h")
        store.jobs.register("crawl:demo:2", "cron 0 12 * * *")
        store.jobs.set_next("crawl:demo", now - timedelta(hours=20))  # three runs missed
        store.jobs.set_next("crawl:demo:2", now + timedelta(hours=11))  # not yet due
    fake = _FakeRun()
    scheduler = CrawlScheduler(settings, run=fake, clock=lambda: now, blocking=False)
    planned = scheduler.add_jobs()
    assert [(p.catch_up, p.first_run) for p in planned] == [
        (True, now),
        (False, planned[1].trigger.get_next_fire_time(None, now)),
    ]
    scheduler.start()
    try:
        _wait_for(lambda: _job(settings, "crawl:demo")["runs"] == 1)
    finally:
        scheduler.request_stop()
        assert scheduler.wait_idle()
    assert fake.calls == [["demo"]]  # once, coalesced, not three times
    assert _job(settings, "crawl:demo")["next_run_at"] > now.isoformat()
    assert planned[1].first_run > now


def _job(settings: Settings, job_id: str) -> dict:
    with Store(settings.storage.dir) as store:
        return store.jobs.get(job_id) or {}


def test_a_job_that_finds_the_crawl_lock_held_is_skipped_and_counted(tmp_path, small_server):
    settings = _with_jobs(
        crawl_settings(tmp_path, small_server.base_url), [{"site": "demo", "every": "1h"}]
    )
    scheduler = CrawlScheduler(settings, run=run_once, clock=lambda: NOW, blocking=False)
    scheduler.add_jobs()
    with DirectoryLock(settings.storage.dir, "crawl"):  # a manual `crawldex crawl`
        assert scheduler.run_job("crawl:demo", "demo") == "locked"
    assert small_server.requests == []
    job = _job(settings, "crawl:demo")
    assert (job["last_outcome"], job["skipped_locked"], job["runs"]) == ("locked", 1, 0)


def test_a_failing_run_is_recorded_and_the_schedule_goes_on(tmp_path):
    settings = _with_jobs(
        crawl_settings(tmp_path, "http://127.0.0.1:9"), [{"site": "demo", "every": "1h"}]
    )
    failing = _FakeRun(error=StoreError("disk full"))
    scheduler = CrawlScheduler(settings, run=failing, clock=lambda: NOW, blocking=False)
    scheduler.add_jobs()
    assert scheduler.run_job("crawl:demo", "demo") == "failed"
    job = _job(settings, "crawl:demo")
    assert (job["last_outcome"], job["last_error"]) == ("failed", "disk full")
    failing.error = RuntimeError("a bug")
    assert scheduler.run_job("crawl:demo", "demo") == "failed"
    assert "RuntimeError: a bug" in _job(settings, "crawl:demo")["last_error"]
    failing.error = None
    assert scheduler.run_job("crawl:demo", "demo") == "finished"
    assert _job(settings, "crawl:demo")["runs"] == 3


def test_a_short_interval_schedule_runs_twice_without_overlap(tmp_path, small_server):
    settings = _with_jobs(
        crawl_settings(tmp_path, small_server.base_url), [{"site": "demo", "every": "1s"}]
    )
    scheduler = CrawlScheduler(settings, run=run_once, blocking=False)
    scheduler.add_jobs()
    scheduler.start()
    try:
        _wait_for(lambda: _job(settings, "crawl:demo")["runs"] >= 2, timeout=60)
    finally:
        scheduler.request_stop()
        assert scheduler.wait_idle()
    with Store(settings.storage.dir) as store:
        runs = sorted(store.last_runs(10), key=lambda r: r["id"])
    finished = [r for r in runs if r["finished_at"]]
    assert len(finished) >= 2
    assert finished[0]["status"] == "finished"
    for before, after in itertools.pairwise(finished):
        assert before["finished_at"] <= after["started_at"]


def _config(tmp_path: Path, base_url: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "storage": {"dir": "data"},
                # one request at a time, spaced: the run lasts long enough to be interrupted
                "crawl": {"delay": 0.03, "concurrency": 1, "per_host_concurrency": 1, "retries": 0},
                "schedule": {"jobs": [{"site": "demo", "every": "1s"}], "stop_timeout": 20},
                "sites": [
                    {"name": "demo", "start_urls": [f"{base_url}/"], "timezone": "Europe/London"}
                ],
            }
        )
    )
    return path


def _start(config: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLDEX_")}
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--config", str(config), "schedule"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _stop(proc: subprocess.Popen[bytes]) -> tuple[int, float, str]:
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    return proc.returncode, time.monotonic() - sent, err.decode(errors="replace")


@pytest.mark.slow
def test_sigterm_mid_run_exits_0_and_a_restart_loses_nothing(tmp_path, small_site, small_server):
    config = _config(tmp_path, small_server.base_url)
    proc = _start(config)
    try:
        _wait_for(lambda: len(small_server.requests) >= 15, timeout=60)
        code, _seconds, err = _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, err
    data = tmp_path / "data"
    with Store(data) as store:
        first = store.last_runs(5)
    assert [r["status"] for r in first] == ["interrupted"]

    proc = _start(config)  # the run it missed while stopped starts at once and resumes the pass
    try:
        _wait_for(lambda: _finished_runs(data) >= 1, timeout=90)
        code, _seconds, err = _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, err
    settings = crawl_settings(data, small_server.base_url)
    export_file(settings, tmp_path / "all.jsonl", kind="article")
    import json

    got = {
        json.loads(line)["url"]: json.loads(line)
        for line in (tmp_path / "all.jsonl").read_text().splitlines()
    }
    expected = {a["url"]: a for a in small_site.expected_articles(small_server.base_url)}
    assert set(got) == set(expected)
    assert all(got[u]["title"] == expected[u]["title"] for u in expected)


def _finished_runs(data: Path) -> int:
    with Store(data) as store:
        return sum(r["status"] == "finished" for r in store.last_runs(20))
