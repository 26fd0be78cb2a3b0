"""Fetching and extraction beside the crawl: worker processes store what the crawl's own process
would, and a page that crashes or hangs its worker fails alone, counted, while the pages the
worker was still fetching go to a new one."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import pickle
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import pipeline.models as models
import pipeline.workers as workers_module
from pipeline.config import CrawlSettings, SiteConfig
from pipeline.demo import build_site, render_path
from pipeline.errors import BadStatus, ExtractError, PageSkipped
from pipeline.extract import extract_page
from pipeline.fetch import fetch_page, make_client
from pipeline.models import (
    ArticlePage,
    ArticleRecord,
    Fetched,
    OtherPage,
    PageState,
    Target,
    Validators,
)
from pipeline.normalize import normalize
from pipeline.run import export_records, run_once
from pipeline.workers import PageWorkers, WorkerError, extract_here, worker_count
from tests.conftest import crawl_settings
from tests.faults import (
    Behaviour,
    FaultServer,
    Hit,
    Reply,
    article_html,
    killed_parent,
    process_gone,
    wait_for,
)

SITE = SiteConfig.model_validate({"name": "demo", "start_urls": ["http://127.0.0.1:9/"]})


def _slow_page(links: int = 30_000) -> str:
    """A page whose extraction takes about a second: tens of thousands of links to read."""
    body = "".join(f'<p><a href="/p/{i}">link {i}</a> and text</p>' for i in range(links))
    return f"<html><body><main><h1>Slow</h1>{body}</main></body></html>"


def _serve(body: str | bytes, status: int = 200, **headers: str) -> Behaviour:
    data = body.encode() if isinstance(body, str) else body

    def reply(_hit: Hit, out: Reply) -> None:
        out.send(status, data, **headers)

    return reply


def _held(release: threading.Event, body: str) -> Behaviour:
    """A page answered once ``release`` is set: one its worker is still fetching."""

    def reply(_hit: Hit, out: Reply) -> None:
        release.wait(60)
        out.send(200, body.encode())

    return reply


def _target(server: FaultServer, path: str, site: str = "demo") -> Target:
    return Target(url=server.url(path), site=site)


async def _until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll an observable condition inside the event loop; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)  # polling an observable condition with a deadline


def _extracting(workers: PageWorkers) -> bool:
    """Whether the (one) worker has said it has a page on its parser."""
    return any(child.extracting is not None for child in workers._children)


@pytest.fixture
def started_early(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers start before the first page, so every page goes to one."""
    monkeypatch.setattr(workers_module, "START_AFTER", 0)


async def _ready(timeout: float = 60.0, **crawl: Any) -> PageWorkers:
    """A ready worker; one host may have all of ``crawl.concurrency`` (the tests' pages are
    on one)."""
    crawl.setdefault("per_host_concurrency", crawl.get("concurrency", 8))
    workers = PageWorkers([SITE], CrawlSettings(**crawl), workers=1, timeout=timeout)
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


def test_every_model_crosses_a_pickle_as_its_fields_and_comes_back_equal():
    """What crosses between the crawl and its workers (targets, validators, fetch outcomes,
    extractions, records) pickles as its class and its fields, and comes back equal."""
    site, base = build_site(articles=12, topics=3), "http://demo.test"
    topic = f"/topics/{site.topics[0].slug}/"
    fetched_at = datetime(2025, 11, 20, 12, tzinfo=UTC)
    for path, target in [
        (site.articles[0].path, Target(url=base + site.articles[0].path, site="demo", depth=2)),
        (topic, Target(url=f"{base}{topic}page/2/", site="demo", depth=1, topic_url=base + topic)),
        ("/about/", Target(url=base + "/about/", site="demo")),
    ]:
        html = render_path(site, base, path).body.decode()
        page = extract_page(html, target.url)
        record = normalize(page, target, fetched_at=fetched_at, site=SITE)
        fetched = Fetched(
            target=target,
            url=target.url,
            status=200,
            text=html,
            encoding="utf-8",
            fetched_at=fetched_at,
            validators=Validators(etag='"e1"', last_modified="Thu, 20 Nov 2025 11:51:00 GMT"),
            size=len(html),
            elapsed=0.01,
        )
        for value in (target, fetched, page, record, PageState(fetched_at, "article")):
            assert pickle.loads(pickle.dumps((1, 0, value), 5)) == (1, 0, value)
    for cls in [
        c for c in vars(models).values() if isinstance(c, type) and dataclasses.is_dataclass(c)
    ]:
        assert all(f.init for f in dataclasses.fields(cls)), cls  # rebuilt as cls(*fields)
        assert "__reduce__" in cls.__dict__, f"{cls.__name__} pickles as a state dict"


def test_a_crawl_extracting_in_a_worker_stores_the_same_records(
    small_server, tmp_path, started_early
):
    here = crawl_settings(tmp_path / "here", small_server.base_url, extract_workers=0)
    beside = crawl_settings(tmp_path / "beside", small_server.base_url, extract_workers=1)
    alone = run_once(here)
    helped = run_once(beside)
    assert alone.extract == {"workers": 0, "pages": 0, "restarts": 0}
    assert (helped.extract["workers"], helped.extract["restarts"]) == (1, 0)
    # the worker's share of the pages (the crawl's process fetches the rest: _CALLER_SHARE)
    assert 0 < helped.extract["pages"] < helped.pages_fetched
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

    routes = {
        "/": _serve(f"<html><body><main><h1>Home</h1>{links}</main></body></html>"),
        "/slow": _serve(_slow_page()),
        **{path: _serve(article_html(f"Post {path[-1]}")) for path in articles},
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


def test_a_crawl_that_expects_many_pages_starts_its_worker_before_its_first_page():
    async def scenario() -> tuple[bool, bool]:
        workers = PageWorkers([SITE], CrawlSettings(), workers=1, timeout=60)
        try:
            workers.expect(workers_module.START_AFTER - 1)  # a small crawl: no process
            small = workers._starting is None
            workers.expect(workers_module.START_AFTER)
            await _until(lambda: any(c.ready for c in workers._children), "a ready worker")
            return small, workers.stats["pages"] == 0
        finally:
            await workers.close()

    not_started, before_any_page = asyncio.run(scenario())
    assert not_started
    assert before_any_page


def test_a_page_whose_worker_dies_fails_and_the_pages_it_was_fetching_go_to_a_new_one(
    started_early,
):
    release = threading.Event()
    routes = {
        "/slow": _serve(_slow_page()),
        **{f"/p{i}": _held(release, article_html(f"P{i}")) for i in range(3)},
    }

    async def scenario(server: FaultServer) -> tuple[BaseException, list[Any], int]:
        workers = await _ready()
        (victim_pid,) = workers.pids
        behind = [asyncio.ensure_future(workers.fetch(_target(server, f"/p{i}"))) for i in range(3)]
        await _until(lambda: len(server.requests()) == 3, "the worker to ask for 3 pages")
        slow = asyncio.ensure_future(workers.fetch(_target(server, "/slow")))
        await _until(lambda: _extracting(workers), "the slow page on the worker's parser")
        os.kill(victim_pid, signal.SIGKILL)  # a parser crash, as the crawl sees it
        (error,) = await asyncio.gather(slow, return_exceptions=True)
        release.set()
        answers = await asyncio.gather(*behind)
        restarts = workers.restarts
        assert len(workers.pids) == 1
        assert workers.pids != [victim_pid]
        await workers.close()
        return error, answers, restarts

    with FaultServer(routes) as server:
        error, answers, restarts = asyncio.run(scenario(server))
        asked = [len(server.requests(f"/p{i}")) for i in range(3)]
    assert isinstance(error, ExtractError)
    assert error.reason == "extract_crashed"
    assert str(-signal.SIGKILL) in str(error)
    assert restarts == 1
    assert asked == [2, 2, 2]  # fetched again by the new worker
    for i, (fetched, (page, record)) in enumerate(answers):
        assert fetched.status == 200
        assert isinstance(page, ArticlePage)
        assert isinstance(record, ArticleRecord)
        assert record.title == f"P{i}"


def test_a_worker_holding_its_share_of_the_concurrency_leaves_the_next_page_to_the_crawl(
    started_early,
):
    """Caller runs: with ``crawl.concurrency`` 4, one worker holds three pages at most; a
    fourth is the crawl's own to fetch (``fetch`` returns None at once)."""
    release = threading.Event()
    routes = {f"/p{i}": _held(release, article_html(f"P{i}")) for i in range(4)}

    async def scenario(server: FaultServer) -> tuple[Any, list[Any], int]:
        workers = await _ready(concurrency=4)
        held = [asyncio.ensure_future(workers.fetch(_target(server, f"/p{i}"))) for i in range(3)]
        await _until(lambda: len(server.requests()) == 3, "the worker to ask for 3 pages")
        fourth = await workers.fetch(_target(server, "/p3"))
        release.set()
        answers = await asyncio.gather(*held)
        after = await workers.fetch(_target(server, "/p3"))  # room again
        await workers.close()
        return fourth, answers, after

    with FaultServer(routes) as server:
        try:
            fourth, answers, after = asyncio.run(scenario(server))
        finally:
            release.set()
    assert fourth is None
    assert [record.title for _f, (_p, record) in answers] == ["P0", "P1", "P2"]
    assert after[1][1].title == "P3"


def test_a_page_in_flight_when_workers_keep_dying_fails_after_two(started_early):
    """Deaths no page on the parser explains (the worker killed from outside) hand a page on,
    but not forever."""
    release = threading.Event()

    async def scenario(server: FaultServer) -> tuple[BaseException, int]:
        workers = await _ready()
        held = asyncio.ensure_future(workers.fetch(_target(server, "/held")))
        await _until(lambda: len(server.requests()) == 1, "the first request")
        (first,) = workers.pids
        os.kill(first, signal.SIGKILL)
        await _until(lambda: len(server.requests()) == 2, "the page asked for again")
        (second,) = workers.pids
        assert second != first
        os.kill(second, signal.SIGKILL)
        (error,) = await asyncio.gather(held, return_exceptions=True)
        restarts = workers.restarts
        await workers.close()
        return error, restarts

    with FaultServer({"/held": _held(release, article_html("Held"))}) as server:
        try:
            error, restarts = asyncio.run(scenario(server))
        finally:
            release.set()
    assert isinstance(error, ExtractError)
    assert error.reason == "extract_crashed"
    assert "2 workers died with it" in str(error)
    assert restarts == 2


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

    async def scenario(server: FaultServer) -> tuple[list[int | None], list[Any], int]:
        workers = await _ready()
        (victim_pid,) = workers.pids
        slow = asyncio.ensure_future(workers.fetch(_target(server, "/slow")))
        await _until(lambda: _extracting(workers), "the slow page on the worker's parser")
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

    with FaultServer({"/slow": _serve(_slow_page())}) as server:
        codes, pending, restarts = asyncio.run(scenario(server))
    assert restarts == 1
    assert len(codes) == 2  # the victim and its replacement
    assert None not in codes  # both ended before close() returned
    assert pending == []


def test_close_returns_when_a_workers_reader_broke(started_early, monkeypatch):
    """A reader that ended on an unexpected error never settled its child: close() still ends
    the child and returns (a bounded number of passes, not a loop)."""

    def broken(_job: Any, _kind: int, _answer: Any) -> None:
        raise RuntimeError("a bug in settling an answer")

    monkeypatch.setattr(workers_module, "_settle", broken)

    async def scenario(server: FaultServer) -> tuple[int | None, bool]:
        workers = await _ready()
        (child,) = workers._children
        assert child.reader is not None
        page = asyncio.ensure_future(workers.fetch(_target(server, "/a")))
        with pytest.raises(RuntimeError, match="settling"):
            await asyncio.wait_for(child.reader, 30)
        await asyncio.wait_for(workers.close(), 30)
        page.cancel()  # never answered: its reader broke
        return child.process.returncode, child in workers._children

    with FaultServer({"/a": _serve(article_html("A"))}) as server:
        code, still_listed = asyncio.run(scenario(server))
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


def test_pages_come_back_as_the_crawls_own_process_fetches_and_reads_them(started_early):
    routes = {
        "/a": _serve(article_html("An article"), etag='"v1"'),
        "/other": _serve("<html><body><a href='/x'>x</a></body></html>"),
        "/broken": _serve("<html><body><div><p>unclosed <b>tags"),
    }

    async def scenario(server: FaultServer) -> tuple[list[Any], list[Fetched]]:
        targets = [_target(server, path) for path in routes]
        workers = await _ready()
        try:
            beside = list(await asyncio.gather(*(workers.fetch(t) for t in targets)))
        finally:
            await workers.close()
        settings = CrawlSettings()
        async with make_client(settings) as client:
            here = [
                await fetch_page(client, t, settings=settings, scope=lambda _url: None)
                for t in targets
            ]
        return beside, here

    with FaultServer(routes) as server:
        beside, here = asyncio.run(scenario(server))
    for (fetched, extraction), own in zip(beside, here, strict=True):
        same_time = replace(own, fetched_at=fetched.fetched_at, elapsed=fetched.elapsed)
        assert fetched == replace(same_time, text="")  # the page's text stays in the worker
        assert extraction == extract_here(same_time, own.target, SITE)
    assert beside[0][0].validators.etag == '"v1"'
    assert isinstance(beside[1][1][0], OtherPage)
    assert beside[1][1][0].links[0].url.endswith("/x")


def test_what_a_fetch_in_a_worker_raises_or_waits_for_reaches_the_crawl(started_early):
    """A 304, a skip, a bad status, a Retry-After and a bug come back as the crawl's own
    fetch would give them, with their attributes."""
    busy: list[Hit] = []

    def busy_once(hit: Hit, out: Reply) -> None:
        busy.append(hit)
        if len(busy) == 1:
            out.send(503, b"busy", retry_after="1")
        else:
            out.send(200, article_html("Later").encode())

    def conditional(hit: Hit, out: Reply) -> None:
        if hit.headers.get("if-none-match") == '"v1"':
            out.send(304)
        else:
            out.send(200, article_html("Same").encode(), etag='"v1"')

    routes = {
        "/same": conditional,
        "/image": _serve(b"\x89PNG", content_type="image/png"),
        "/gone": _serve("<html><body>gone</body></html>", status=410),
        "/busy": busy_once,
        "/b": _serve(article_html("B")),
    }
    waits: list[float] = []

    async def scenario(server: FaultServer) -> list[Any]:
        workers = await _ready(retries=1, backoff=0.01)
        try:
            return await asyncio.gather(
                workers.fetch(_target(server, "/same"), Validators(etag='"v1"')),
                workers.fetch(_target(server, "/image")),
                workers.fetch(_target(server, "/gone")),
                workers.fetch(_target(server, "/busy"), on_retry_after=waits.append),
                workers.fetch(_target(server, "/b", site="not-configured")),
                return_exceptions=True,
            ) + [await workers.fetch(_target(server, "/b"))]
        finally:
            await workers.close()

    with FaultServer(routes) as server:
        same, image, gone, later, bug, after = asyncio.run(scenario(server))
    assert (same[0].not_modified, same[0].status, same[1]) == (True, 304, None)
    assert isinstance(image, PageSkipped)
    assert image.reason == "not_html"
    assert isinstance(gone, BadStatus)
    assert (gone.status, gone.transient) == (410, False)
    assert gone.url.endswith("/gone")
    assert waits == [1.0]  # told at once, for the host gate
    assert later[1][1].title == "Later"
    assert isinstance(bug, WorkerError)
    assert "KeyError: 'not-configured'" in str(bug)  # the worker's own traceback
    assert after[1][1].title == "B"  # and the worker goes on


_KILL_THE_PARENT = textwrap.dedent(
    """
    import asyncio, os, signal
    import pipeline.workers as w
    from pipeline.config import CrawlSettings, SiteConfig

    async def main():
        w.START_AFTER = 0
        site = SiteConfig.model_validate({"name": "demo", "start_urls": ["http://127.0.0.1:9/"]})
        workers = w.PageWorkers([site], CrawlSettings(), workers=1, timeout=60)
        await workers.prepare()
        print(*workers.pids, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
    """
)


def test_a_worker_exits_when_the_crawl_is_killed():
    pid = killed_parent(_KILL_THE_PARENT)
    wait_for(lambda: process_gone(pid), f"the orphaned extraction worker {pid} to exit")


_KILL_THE_PARENT_MID_FETCH = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    import pipeline.workers as w
    from pipeline.config import CrawlSettings, SiteConfig
    from pipeline.models import Target

    async def main():
        w.START_AFTER = 0
        site = SiteConfig.model_validate({"name": "demo", "start_urls": ["http://127.0.0.1:9/"]})
        # a fetch that would wait as long as the server holds it (the test's whole run)
        patient = CrawlSettings(timeout=600, deadline=600, retries=0)
        workers = w.PageWorkers([site], patient, workers=1, timeout=60)
        await workers.prepare()
        asyncio.ensure_future(workers.fetch(Target(url=sys.argv[1], site="demo")))
        while not os.path.exists(sys.argv[2]):  # the server has the request
            await asyncio.sleep(0.02)
        print(*workers.pids, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
    """
)


def test_a_worker_drops_its_fetches_when_the_crawl_is_killed(tmp_path):
    """An orphan waits for no answer: the page it was fetching, which the server holds until
    this test ends, is given up at once (it would otherwise wait out its 600 s timeout, and
    ``killed_parent``, reading the orphan's inherited stderr, time out)."""
    release = threading.Event()
    asked = tmp_path / "asked"

    def held(_hit: Hit, out: Reply) -> None:
        asked.touch()
        release.wait(600)  # longer than killed_parent waits for the orphan's stderr to close
        out.send(200, article_html("Late").encode())

    with FaultServer({"/held": held}) as server:
        try:
            pid = killed_parent(_KILL_THE_PARENT_MID_FETCH, server.url("/held"), str(asked))
            wait_for(lambda: process_gone(pid), f"the orphaned worker {pid} to exit")
            assert not release.is_set()  # gone while its page was still held
        finally:
            release.set()


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


def test_pages_started_ahead_wait_in_the_worker_for_its_request_slots(started_early):
    """With ``crawl.concurrency`` 4 the worker sends three requests at once; pages that may
    queue wait in it for one of those slots, and a page of the crawl's own waits in
    ``own_request`` while the worker and the crawl hold all four."""
    release = threading.Event()
    routes = {f"/p{i}": _held(release, article_html(f"P{i}")) for i in range(6)}

    async def scenario(server: FaultServer) -> tuple[list[Any], list[str], int]:
        workers = await _ready(concurrency=4)
        host = "127.0.0.1"
        order: list[str] = []
        async with workers.own_request(host):  # the crawl's one slot, held
            pages = [
                asyncio.ensure_future(workers.fetch(_target(server, f"/p{i}"), may_queue=True))
                for i in range(6)
            ]
            await _until(lambda: len(server.requests()) == 3, "the worker to ask for 3 pages")
            assert len(workers._children[0].jobs) == 6  # three of them waiting in it
            # one that may not wait: no slot free for it anywhere, the crawl's to fetch
            assert await workers.fetch(_target(server, "/p0")) is None

            async def own() -> None:
                async with workers.own_request(host):
                    order.append("own")

            second = asyncio.ensure_future(own())
            for _ in range(20):
                await asyncio.sleep(0)  # let it run as far as it can
            assert not order  # every slot is taken
        order.append("released")  # the crawl's slot is free again
        await second
        release.set()
        answers = await asyncio.gather(*pages)
        await workers.close()
        return answers, order, len(server.requests())

    with FaultServer(routes) as server:
        try:
            answers, order, asked = asyncio.run(scenario(server))
        finally:
            release.set()
        assert server.max_in_flight["127.0.0.1"] == 3
    assert order == ["released", "own"]
    assert [record.title for _f, (_p, record) in answers] == [f"P{i}" for i in range(6)]
    assert asked == 6


def test_a_worker_sends_so_many_requests_at_once_and_waits_out_a_retry_after():
    async def scenario() -> float:
        slots = workers_module._Slots(total=2, per_host=1)
        loop = asyncio.get_running_loop()
        granted: list[str] = []
        gate = asyncio.Event()

        async def request(host: str, name: str) -> None:
            async with slots.request(host):
                granted.append(name)
                await gate.wait()

        first = [asyncio.ensure_future(request(h, n)) for h, n in [("a", "a1"), ("a", "a2")]]
        more = [asyncio.ensure_future(request(h, n)) for h, n in [("b", "b1"), ("c", "c1")]]
        for _ in range(20):
            await asyncio.sleep(0)
        assert granted == ["a1", "b1"]  # one to a host, two in all
        gate.set()
        await asyncio.gather(*first, *more)
        assert sorted(granted) == ["a1", "a2", "b1", "c1"]
        slots.block("a", 0.2)
        asked = loop.time()
        async with slots.request("a"):
            waited = loop.time() - asked
        async with slots.request("b"):  # another host is not held up
            assert loop.time() - asked < waited + 0.2
        return waited

    assert asyncio.run(scenario()) >= 0.2
