"""kill -9 in the middle of a crawl, then crawl again: nothing lost, nothing duplicated.

A real ``python -m pipeline crawl`` runs in a subprocess against a demo server whose article pages
are slowed down, so the crawl is caught mid-way. The test waits (polling the SQLite file with a
deadline) until some pages are stored, checks that a second crawl on the same data directory
refuses, kills the first with SIGKILL, crawls again to the end and compares the export with an
uninterrupted crawl's.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

import index as search_index
from pipeline.cli import cli
from pipeline.config import load_settings
from pipeline.demo import DemoServer, DemoSite, RequestInfo, Response, render_path
from pipeline.run import export_records, run_once, store_status
from pipeline.sync import index_dir

ROOT = Path(__file__).resolve().parent.parent
VOLATILE = ("first_seen_at", "last_seen_at", "fetched_at")


@pytest.fixture
def slow_server(small_site: DemoSite) -> Iterator[DemoServer]:
    """The small demo site with every article page answering 50 ms late."""

    def slow_article(request: RequestInfo) -> Response:
        time.sleep(0.05)  # the site is slow: this is the behaviour under test, not a wait
        found = render_path(small_site, request.base_url, request.path)
        assert found is not None
        return found

    with DemoServer(small_site, routes={"/20": slow_article}) as server:
        yield server


def write_config(directory: Path, base_url: str) -> Path:
    path = directory / "config.yaml"
    config = {
        "storage": {"dir": "data"},
        "crawl": {"delay": 0, "concurrency": 2, "per_host_concurrency": 2, "retries": 0},
        "sites": [{"name": "demo", "start_urls": [f"{base_url}/"], "timezone": "Europe/London"}],
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def pages_done(data_dir: Path) -> int:
    db = data_dir / "crawldex.sqlite3"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM pages WHERE state='done'").fetchone()[0])
    except sqlite3.OperationalError:  # the schema is being created
        return 0


def wait_for(condition, *, deadline: float, what: str) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)  # polling an observable condition, with a deadline


def exported(config: Path) -> list[dict[str, Any]]:
    settings = load_settings(config)
    out = config.parent / "export.jsonl"
    export_records(settings, out)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    return sorted(
        ({k: v for k, v in r.items() if k not in VOLATILE} for r in rows), key=lambda r: r["id"]
    )


def test_sigkill_mid_crawl_then_resume_equals_an_uninterrupted_crawl(tmp_path, slow_server):
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    killed_dir.mkdir()
    clean_dir.mkdir()
    config = write_config(killed_dir, slow_server.base_url)
    crawl = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--config", str(config), "crawl"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(
            lambda: pages_done(killed_dir / "data") >= 8, deadline=60, what="pages to be stored"
        )
        second = CliRunner().invoke(cli, ["--config", str(config), "crawl"])
        assert second.exit_code == 1
        assert "already crawling" in second.stderr
        assert "wait for it to finish" in second.stderr
        assert crawl.poll() is None, "the crawl finished before it could be killed"
        crawl.send_signal(signal.SIGKILL)
        assert crawl.wait(timeout=30) == -signal.SIGKILL
    finally:
        if crawl.poll() is None:
            crawl.kill()
            crawl.wait()
        assert crawl.stderr is not None
        crawl.stderr.close()

    settings = load_settings(config)
    total = len(slow_server.site.articles)
    killed_at = pages_done(settings.storage.dir)
    assert 8 <= killed_at < total
    resumed = run_once(settings)
    assert resumed.status == "finished"
    assert resumed.resumed == ["demo"]
    assert resumed.failed == {}

    clean = run_once(load_settings(write_config(clean_dir, slow_server.base_url)))
    assert clean.status == "finished"
    records = exported(config)
    assert records == exported(clean_dir / "config.yaml")
    assert len({r["id"] for r in records}) == len(records)
    assert sum(r["kind"] == "article" for r in records) == total

    info = store_status(settings)
    assert info["index_seq"] == info["store_seq"]
    hits = search_index.search(index_dir(settings), "*", limit=1000)
    active = {r["id"] for r in records if r["kind"] == "article" and r["status"] == "active"}
    assert {h.id for h in hits.hits} == active
    runs = [r["status"] for r in store_status(settings, runs=2)["runs"]]
    assert runs == ["finished", "interrupted"], "the killed run is marked, not left running"
