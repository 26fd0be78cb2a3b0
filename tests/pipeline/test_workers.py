"""Extraction beside the crawl: worker processes store what the crawl's own process would, and a
page that crashes or hangs its worker fails alone, counted, while the pages behind it go on."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import pipeline.workers as workers_module
from pipeline.config import SiteConfig
from pipeline.errors import ExtractError
from pipeline.models import ArticlePage, ArticleRecord, Fetched, OtherPage, Target
from pipeline.run import export_records, run_once
from pipeline.workers import ExtractWorkers, WorkerError, extract_here, worker_count
from tests.conftest import crawl_settings
from tests.faults import (
    FaultServer,
    Hit,
    Reply,
    article_html,
    killed_parent,
    process_gone,
    wait_for,
)

SITE = SiteConfig.model_validate({"name": "demo", "start_urls": ["http://127.0.0.1:9/"]})
AT = datetime(2026, 11, 20, 12, tzinfo=UTC)


def _slow_page(links: int = 30_000) -> str:
    """A page whose extraction takes about a second: tens of thousands of links to read."""
    body = "".join(f'<p><a href="/p/{i}">link {i}</a> and text</p>' for i in range(links))
    return f"<html><body><main><h1>Slow</h1>{body}</main></body></html>"


def _fetched(url: str, text: str) -> tuple[Fetched, Target]:
    target = Target(url=url, site="demo")
    return Fetched(target, url, 200, text, "utf-8", AT, size=len(text)), target


@pytest.fixture
def started_early(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers start before the first page, so every page goes to one."""
    monkeypatch.setattr(workers_module, "START_AFTER", 0)


async def _ready(timeout: float = 60.0) -> ExtractWorkers:
    workers = ExtractWorkers([SITE], workers=1, timeout=timeout)
    await workers.prepare()
    assert len(workers.pids) == 1
    return workers


def _content(settings: Any, out: Path) -> dict[str, dict[str, Any]]:
    """Exported records by id, without the times that differ between two crawls."""
    export_records(settings, out)
    volatile = {"fetched_at", "first_seen_at", "last_seen_at"}
    with out.open(encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh]
    return {r["id"]: {k: v for k, v in r.items() if k not in volatile} for r in records}


def test_a_crawl_extracting_in_a_worker_stores_the_same_records(
    small_server, tmp_path, started_early
):
    here = crawl_settings(tmp_path / "here", small_server.base_url, extract_workers=0)
    beside = crawl_settings(tmp_path / "beside", small_server.base_url, extract_workers=1)
    alone = run_once(here)
    helped = run_once(beside)
    assert alone.extract == {"workers": 0, "pages": 0, "restarts": 0}
    assert helped.extract == {"workers": 1, "pages": helped.pages_fetched, "restarts": 0}
    assert helped.pages_fetched == alone.pages_fetched > 40
    assert (helped.failed, helped.errors) == ({}, 0)
    records = _content(beside, tmp_path / "beside.jsonl")
    assert records == _content(here, tmp_path / "here.jsonl")
    assert sum(r["kind"] == "article" for r in records.values()) == 40


def test_a_small_crawl_never_starts_a_worker(small_server, tmp_path):
    report = run_once(crawl_settings(tmp_path, small_server.base_url, max_pages=20))
    assert report.pages_fetched == 20 < workers_module.START_AFTER
    assert report.extract["workers"] == 0


def test_a_page_that_hangs_its_worker_fails_alone_and_the_crawl_goes_on(tmp_path, started_early):
    articles = [f"/post/{i}" for i in range(3)]
    links = "".join(f'<a href="{path}">post</a>' for path in [*articles, "/slow"])

    def route(body: str):
        def reply(_hit: Hit, out: Reply) -> None:
            out.send(200, body.encode())

        return reply

    routes = {
        "/": route(f"<html><body><main><h1>Home</h1>{links}</main></body></html>"),
        "/slow": route(_slow_page()),
        **{path: route(article_html(f"Post {path[-1]}")) for path in articles},
    }
    with FaultServer(routes) as server:
        settings = crawl_settings(
            tmp_path, server.url(""), extract_workers=1, extract_timeout=0.1, use_sitemaps=False
        )
        report = run_once(settings)
    assert report.failed == {"extract_timeout": 1}
    assert report.extract["restarts"] == 1
    assert report.errors == 0
    articles_stored = _content(settings, tmp_path / "out.jsonl")
    assert sorted(r["url"].rsplit("/", 1)[-1] for r in articles_stored.values()) == ["0", "1", "2"]


def test_a_page_whose_worker_dies_fails_and_the_pages_behind_it_are_extracted(started_early):
    async def scenario() -> tuple[BaseException | None, list[Any], int]:
        workers = await _ready()
        (victim_pid,) = workers.pids
        slow = asyncio.ensure_future(workers.extract(*_fetched("http://e.test/slow", _slow_page())))
        behind = [
            asyncio.ensure_future(
                workers.extract(*_fetched(f"http://e.test/p{i}", article_html(f"P{i}")))
            )
            for i in range(3)
        ]
        await asyncio.sleep(0)  # the frames go out
        os.kill(victim_pid, signal.SIGKILL)  # a parser crash, as the crawl sees it
        results = await asyncio.gather(slow, *behind, return_exceptions=True)
        restarts = workers.restarts
        assert len(workers.pids) == 1
        assert workers.pids != [victim_pid]
        await workers.close()
        return results[0] if isinstance(results[0], BaseException) else None, results[1:], restarts

    error, behind, restarts = asyncio.run(scenario())
    assert isinstance(error, ExtractError)
    assert error.reason == "extract_crashed"
    assert str(-signal.SIGKILL) in str(error)
    assert restarts == 1
    for i, (page, record) in enumerate(behind):
        assert isinstance(page, ArticlePage)
        assert isinstance(record, ArticleRecord)
        assert record.title == f"P{i}"


def test_a_worker_replaced_as_the_crawl_closes_is_ended_before_close_returns(
    started_early, monkeypatch
):
    """A worker that dies on the crawl's last page is replaced while the crawl closes its
    workers: close() must end the replacement too, not leave it to the event loop's end."""
    spawned: list[asyncio.subprocess.Process] = []
    spawn = asyncio.create_subprocess_exec

    async def recorded(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        process = await spawn(*args, **kwargs)
        spawned.append(process)
        return process

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recorded)

    async def scenario() -> tuple[list[int | None], list[asyncio.Task[Any]], int]:
        workers = await _ready()
        (victim_pid,) = workers.pids
        slow = asyncio.ensure_future(workers.extract(*_fetched("http://e.test/slow", _slow_page())))
        await asyncio.sleep(0)  # the frame goes out
        os.kill(victim_pid, signal.SIGKILL)
        with pytest.raises(ExtractError):
            await slow  # failed as the worker's death is seen; its replacement is starting
        await workers.close()
        codes = [p.returncode for p in spawned]
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for process in spawned:  # what close() left, ended here: a failure, not a hang
            if process.returncode is None:
                process.kill()
        await asyncio.gather(*others, return_exceptions=True)
        return codes, others, workers.restarts

    codes, pending, restarts = asyncio.run(scenario())
    assert restarts == 1
    assert len(codes) == 2  # the victim and its replacement
    assert None not in codes  # both ended before close() returned
    assert pending == []


def test_close_returns_when_a_workers_reader_broke(started_early, monkeypatch):
    """A reader that ended on an unexpected error never settled its child: close() still ends
    the child and returns (a bounded number of passes, not a loop)."""

    def broken(_job: Any, _answer: Any) -> None:
        raise RuntimeError("a bug in settling an answer")

    monkeypatch.setattr(workers_module, "_settle", broken)

    async def scenario() -> tuple[int | None, bool]:
        workers = await _ready()
        (child,) = workers._children
        assert child.reader is not None
        page = asyncio.ensure_future(
            workers.extract(*_fetched("http://e.test/a", article_html("A")))
        )
        with pytest.raises(RuntimeError, match="settling"):
            await asyncio.wait_for(child.reader, 30)
        await asyncio.wait_for(workers.close(), 30)
        page.cancel()  # never answered: its reader broke
        return child.process.returncode, child in workers._children

    code, still_listed = asyncio.run(scenario())
    assert code is not None  # the child was ended
    assert still_listed  # nobody settled it: close() did not wait for that


def test_a_worker_is_not_in_the_crawls_process_group(started_early):
    """Ctrl-C on a terminal signals its foreground process group: the crawl's alone, which
    then ends its workers as it stops (tests/pipeline/test_follow.py, the index process)."""

    async def scenario() -> list[int]:
        workers = await _ready()
        try:
            return [os.getpgid(pid) for pid in workers.pids]
        finally:
            await workers.close()

    groups = asyncio.run(scenario())
    assert len(groups) == 1
    assert os.getpgrp() not in groups


def test_pages_come_back_as_the_crawls_own_process_reads_them(started_early):
    pages = [
        _fetched("http://e.test/a", article_html("An article")),
        _fetched("http://e.test/other", "<html><body><a href='/x'>x</a></body></html>"),
        _fetched("http://e.test/broken", "<html><body><div><p>unclosed <b>tags"),
    ]

    async def scenario() -> list[Any]:
        workers = await _ready()
        try:
            return list(await asyncio.gather(*(workers.extract(f, t) for f, t in pages)))
        finally:
            await workers.close()

    answers = asyncio.run(scenario())
    assert answers == [extract_here(f, t, SITE) for f, t in pages]
    assert isinstance(answers[1][0], OtherPage)
    assert answers[1][0].links[0].url == "http://e.test/x"


def test_an_error_raised_in_a_worker_comes_back_with_its_traceback(started_early):
    fetched, _target = _fetched("http://e.test/a", article_html("An article"))
    unknown = Target(url="http://e.test/a", site="not-configured")

    async def scenario() -> tuple[BaseException | None, Any]:
        workers = await _ready()
        try:
            failed = await asyncio.gather(workers.extract(fetched, unknown), return_exceptions=True)
            after = await workers.extract(*_fetched("http://e.test/b", article_html("B")))
            return failed[0] if isinstance(failed[0], BaseException) else None, after
        finally:
            await workers.close()

    error, (_page, record) = asyncio.run(scenario())
    assert isinstance(error, WorkerError)
    assert "KeyError: 'not-configured'" in str(error)  # the worker's own traceback
    assert record.title == "B"  # and the worker goes on


_KILL_THE_PARENT = textwrap.dedent(
    """
    import asyncio, os, signal
    import pipeline.workers as w
    from pipeline.config import SiteConfig

    async def main():
        w.START_AFTER = 0
        site = SiteConfig.model_validate({"name": "demo", "start_urls": ["http://127.0.0.1:9/"]})
        workers = w.ExtractWorkers([site], workers=1, timeout=60)
        await workers.prepare()
        print(*workers.pids, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
    """
)


def test_a_worker_exits_when_the_crawl_is_killed():
    pid = killed_parent(_KILL_THE_PARENT)
    wait_for(lambda: process_gone(pid), f"the orphaned extraction worker {pid} to exit")


def test_a_worker_that_cannot_start_leaves_extraction_to_the_crawl(
    small_server, tmp_path, started_early, monkeypatch
):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    report = run_once(crawl_settings(tmp_path / "data", small_server.base_url, extract_workers=1))
    assert report.extract["pages"] == 0
    assert (report.failed, report.errors) == ({}, 0)
    assert report.pages_fetched > 40


def test_the_default_is_one_worker_when_there_is_a_second_core(monkeypatch):
    assert worker_count(3) == 3
    assert worker_count(0) == 0
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})
    assert worker_count(None) == 0
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    assert worker_count(None) == 1
