"""The crawler against a fault-injecting server: each check is from both sides.

Every test crawls ``tests.faults.FaultServer`` with ``run_once`` and asserts the run's result
(report, store, export) and what the server received and when (its own timestamps). Delays are
kept small; waiting on a real server is fine because assertions are on observed times, never on
how long something took to run.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import itertools
import json
import shutil
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import index as search_index
import pipeline.seeding as seeding
import pipeline.workers as workers_module
from pipeline.config import Settings, load_settings
from pipeline.politeness import HostGate
from pipeline.run import RunReport, export_records, run_once
from pipeline.sync import index_dir
from tests.faults import FaultServer, Hit, Reply, article_html, gzip_bomb_chunks, html, http_date_in

TOLERANCE = 0.04  # client start -> server arrival jitter on a busy loopback


def settings_for(
    tmp_path: Path, server: FaultServer, starts: list[str], **crawl: object
) -> Settings:
    overrides: dict[str, Any] = {
        "storage.dir": str(tmp_path / "data"),
        "crawl.delay": 0,
        "crawl.retries": 0,
        "crawl.backoff": 0.01,
        "crawl.concurrency": 8,
        "crawl.per_host_concurrency": 4,
        "crawl.timeout": 2,
        "crawl.deadline": 5,
        # every run re-reads every page: these tests are about what servers do, not the
        # recrawl policy (tests/pipeline/test_recrawl.py)
        "crawl.full_walk_every": "0s",
        "crawl.refetch_min": "0s",
    }
    overrides.update({f"crawl.{k}": v for k, v in crawl.items()})
    settings = load_settings(None, overrides=overrides)
    site = {"name": "faulty", "start_urls": starts, "allowed_hosts": ["127.0.0.1", "localhost"]}
    return settings.model_validate({**settings.model_dump(), "sites": [site]})


def crawl(tmp_path: Path, server: FaultServer, *paths: str, **crawl: object) -> RunReport:
    starts = [p if p.startswith("http") else server.url(p) for p in paths or ("/",)]
    return run_once(settings_for(tmp_path, server, starts, **crawl))


def links_page(*paths: str) -> Any:
    body = "".join(f'<a href="{p}">{p}</a> ' for p in paths)
    return lambda hit, reply: reply.send(200, html(body))


def ok(hit: Hit, reply: Reply) -> None:
    reply.send(200, html(f"<p>{hit.path}</p>"))


def post(hit: Hit, reply: Reply) -> None:
    """A minimal blog post page (h1, date, body), so it is extracted as an article."""
    reply.send(
        200,
        html(
            f'<article class="post"><h1 class="entry-title">Post {hit.path}</h1>'
            '<time class="entry-date published" datetime="2020-01-01T10:00:00+00:00">'
            '1 January 2020</time><div class="entry-content"><p>'
            + "Words of a post about medicines and what they do. " * 8
            + "</p></div></article>"
        ),
    )


def robots(text: str, status: int = 200) -> Any:
    return lambda hit, reply: reply.send(status, text.encode(), content_type="text/plain")


def arrivals(server: FaultServer, host: str, prefix: str = "/p/") -> list[float]:
    return sorted(h.arrived for h in server.requests(host=host) if h.path.startswith(prefix))


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


def exported(tmp_path: Path, server: FaultServer) -> dict[str, dict[str, Any]]:
    settings = settings_for(tmp_path, server, [server.url("/")])
    out = tmp_path / "export.jsonl"
    export_records(settings, out)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    return {r["url"].split(str(server.port))[1]: r for r in rows}


# -- politeness ------------------------------------------------------------------------------
def test_min_gap_between_request_starts_holds_across_concurrent_workers(tmp_path):
    pages = [f"/p/{i}" for i in range(6)]
    with FaultServer({"/": links_page(*pages), "/p/*": ok}) as server:
        report = crawl(tmp_path, server, delay=0.15, per_host_concurrency=4)
    assert report.pages_fetched == 7
    assert report.requests_by_host == {"127.0.0.1": 8}  # robots.txt, /, six pages
    observed = gaps(arrivals(server, "127.0.0.1"))
    assert len(observed) == 5
    assert min(observed) >= 0.15 - TOLERANCE, observed


def slow(hit: Hit, reply: Reply) -> None:
    time.sleep(0.2)  # the fault: a slow server holding the request open
    reply.send(200, html(f"<p>{hit.path}</p>"))


def slow_and_fast(slow_pages: int, fast_pages: int) -> dict[str, Any]:
    """Routes: an index of slow pages (crawled on 127.0.0.1) and one of fast pages (on
    localhost, ``crawl_slow_and_fast``)."""
    return {
        "/slow-index": links_page(*[f"/slow/{i}" for i in range(slow_pages)]),
        "/fast-index": links_page(*[f"/p/{i}" for i in range(fast_pages)]),
        "/slow/*": slow,
        "/p/*": ok,
    }


def crawl_slow_and_fast(tmp_path: Path, server: FaultServer, **settings: object) -> RunReport:
    """Crawl ``slow_and_fast``'s two indexes, each on its own host."""
    slow_index, fast_index = server.url("/slow-index"), server.url("/fast-index", host="localhost")
    return crawl(tmp_path, server, slow_index, fast_index, **settings)


@pytest.fixture
def held_by_worker(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A worker from the first page; how many pages it held after each was sent to it."""
    monkeypatch.setattr(workers_module, "START_AFTER", 0)
    held: list[int] = []
    send = workers_module.PageWorkers._send

    def counting_send(self: Any, child: Any, job: Any) -> None:
        send(self, child, job)
        held.append(len(child.jobs))

    monkeypatch.setattr(workers_module.PageWorkers, "_send", counting_send)
    return held


def test_per_host_concurrency_is_capped_while_other_hosts_proceed(tmp_path):
    with FaultServer(slow_and_fast(6, 6)) as server:
        report = crawl_slow_and_fast(tmp_path, server, per_host_concurrency=2, concurrency=8)
    assert report.pages_fetched == 14
    assert server.max_in_flight["127.0.0.1"] == 2  # reached, never passed
    slow_hits = server.requests(host="127.0.0.1")
    slow_hits = [h for h in slow_hits if h.path.startswith("/slow/")]
    fast = arrivals(server, "localhost")
    overlapping = [t for t in fast if any(h.arrived < t < (h.finished or 0) for h in slow_hits)]
    assert len(overlapping) == len(fast) == 6, "the other host is not held up by the slow one"


def test_crawl_delay_raises_the_delay_but_never_lowers_it(tmp_path):
    routes = {
        "/robots.txt": lambda hit, reply: reply.send(
            200,
            f"User-agent: *\nCrawl-delay: {0.25 if hit.host == '127.0.0.1' else 0.01}\n".encode(),
            content_type="text/plain",
        ),
        "/": links_page(*[f"/p/{i}" for i in range(4)]),
        "/p/*": ok,
    }
    with FaultServer(routes) as server:
        report = crawl(tmp_path, server, "/", server.url("/", host="localhost"), delay=0.12)
    assert report.failed == {}
    raised = gaps(arrivals(server, "127.0.0.1"))
    kept = gaps(arrivals(server, "localhost"))
    assert len(raised) == len(kept) == 3
    assert min(raised) >= 0.25 - TOLERANCE, raised
    assert min(kept) >= 0.12 - TOLERANCE, kept


def once_then_ok(status: int, retry_after: Any, sent: list[str]) -> Any:
    """First request: ``status`` with a Retry-After (a callable is evaluated then), kept in sent."""

    def behaviour(hit: Hit, reply: Reply) -> None:
        if sent:
            return ok(hit, reply)
        sent.append(retry_after() if callable(retry_after) else retry_after)
        return reply.send(status, b"busy", content_type="text/plain", retry_after=sent[0])

    return behaviour


@pytest.mark.parametrize(
    ("status", "retry_after"),
    [(429, "1"), (503, lambda: http_date_in(1.6))],
    ids=["429-seconds", "503-date"],
)
def test_retry_after_makes_the_whole_host_wait(tmp_path, status, retry_after):
    sent: list[str] = []
    routes = {
        "/": links_page("/busy", *[f"/p/{i}" for i in range(8)]),
        "/busy": once_then_ok(status, retry_after, sent),
        "/p/*": slow_small,
        "/other/*": ok,
        "/other-index": links_page(*[f"/other/{i}" for i in range(3)]),
    }
    with FaultServer(routes) as server:
        report = crawl(
            tmp_path,
            server,
            "/",
            server.url("/other-index", host="localhost"),
            retries=1,
            per_host_concurrency=2,
        )
    assert report.failed == {}
    busy = server.requests("/busy")
    assert [h.path for h in busy] == ["/busy", "/busy"]
    refused = busy[0]
    assert refused.finished is not None
    wait_until = refused.finished + 1.0
    if status == 503:  # an HTTP date: wait until that second, whatever is left of it
        when = parsedate_to_datetime(sent[0]).timestamp()
        wait_until = refused.finished + (when - refused.wall) - 0.05
    assert busy[1].arrived >= wait_until - TOLERANCE
    during = [
        h
        for h in server.requests(host="127.0.0.1")
        if refused.finished + 0.05 < h.arrived < wait_until - TOLERANCE
    ]
    assert during == [], "no request to the host while it asked us to wait"
    assert len(server.requests(host="localhost")) == 5  # the other host was not held up


def slow_small(hit: Hit, reply: Reply) -> None:
    time.sleep(0.05)
    reply.send(200, html(f"<p>{hit.path}</p>"))


# -- robots.txt -------------------------------------------------------------------------------
def reset(hit: Hit, reply: Reply) -> None:
    reply.reset()


@pytest.mark.parametrize(
    ("robots_route", "crawled", "skipped"),
    [
        (robots("nope", status=404), True, {}),
        (robots("User-agent: *\nDisallow: /p/1\n"), True, {"robots": 1}),
        (robots("oops", status=503), False, {"robots_unavailable": 1}),
        (reset, False, {"robots_unavailable": 1}),
    ],
    ids=["4xx-allows-all", "rules", "5xx-skips-host", "unreachable-skips-host"],
)
def test_robots_txt_outcomes(tmp_path, robots_route, crawled, skipped):
    routes = {"/robots.txt": robots_route, "/": links_page("/p/0", "/p/1"), "/p/*": ok}
    with FaultServer(routes) as server:
        report = crawl(tmp_path, server)
    paths = [h.path for h in server.requests()]
    assert report.skipped == skipped
    assert paths.count("/robots.txt") == 1
    if crawled:
        assert set(paths) - {"/robots.txt"} == {"/", "/p/0", "/p/1"} - (
            {"/p/1"} if skipped else set()
        )
    else:
        assert paths == ["/robots.txt"], "nothing else is asked of a host whose robots failed"


# -- size and time limits ----------------------------------------------------------------------
def trickle(hit: Hit, reply: Reply) -> None:
    reply.stream(200, iter([b"<"] * 400), every=0.05, content_type="text/html")


def test_a_trickling_server_is_cut_off_by_the_deadline(tmp_path):
    with FaultServer(
        {"/": links_page("/trickle", "/p/0"), "/trickle": trickle, "/p/*": ok}
    ) as server:
        report = crawl(tmp_path, server, deadline=0.5, timeout=1)
    assert report.failed == {"timeout": 1}
    assert report.pages_fetched == 2  # the crawl went on
    (hit,) = server.requests("/trickle")
    # the server's handler notices the hang-up at its next write, in its own thread
    deadline = time.monotonic() + 5
    while hit.finished is None and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    assert hit.hung_up, "the crawler closed the connection"
    assert hit.finished is not None
    assert hit.finished - hit.arrived < 2.0  # not the 20 s it wanted
    assert hit.sent < 400


def bomb(hit: Hit, reply: Reply) -> None:
    first, block, repeats = gzip_bomb_chunks(16 * 1024)  # 16 GiB of zeros, ~16 MB on the wire
    batches = (block * 64 for _ in range(repeats // 64))
    reply.stream(200, iter([first, *batches]), content_type="text/html", content_encoding="gzip")


def test_a_gzip_bomb_is_stopped_at_max_bytes(tmp_path):
    with FaultServer({"/": links_page("/bomb", "/p/0"), "/bomb": bomb, "/p/*": ok}) as server:
        report = crawl(tmp_path, server, max_bytes=1_000_000)
    assert report.failed == {"too_large": 1}
    assert report.pages_fetched == 2
    (hit,) = server.requests("/bomb")
    assert hit.hung_up
    assert hit.sent < 8 << 20, "the crawler stopped reading long before the end"


def pdf(hit: Hit, reply: Reply) -> None:
    size = 64 << 20
    chunks = (b"%" * 65536 for _ in range(size // 65536))
    reply.stream(200, chunks, content_type="application/pdf", content_length=str(size))


def test_non_html_is_skipped_without_downloading_the_body(tmp_path):
    with FaultServer({"/": links_page("/doc.pdf", "/p/0"), "/doc.pdf": pdf, "/p/*": ok}) as server:
        report = crawl(tmp_path, server)
    assert report.skipped == {"not_html": 1}
    assert report.bytes < 10_000
    (hit,) = server.requests("/doc.pdf")
    assert hit.hung_up
    assert hit.sent < 16 << 20


# -- redirects ---------------------------------------------------------------------------------
def redirect_to(location: Any) -> Any:
    def behaviour(hit: Hit, reply: Reply) -> None:
        where = location(hit) if callable(location) else location
        reply.send(302, b"", location=where)

    return behaviour


def next_in_chain(hit: Hit) -> str:
    return f"/chain/{int(hit.path.rsplit('/', 1)[1]) + 1}"


def test_redirects_are_bounded_looped_and_scoped_hop_by_hop(tmp_path):
    routes = {
        "/": links_page("/chain/0", "/loop/a", "/out", "/file", "/js", "/data", "/moved"),
        "/chain/*": redirect_to(next_in_chain),
        "/loop/a": redirect_to("/loop/b"),
        "/loop/b": redirect_to("/loop/a"),
        "/out": redirect_to("http://elsewhere.example/"),
        "/file": redirect_to("file:///etc/passwd"),
        "/js": redirect_to("javascript:alert(1)"),
        "/data": redirect_to("data:text/html,<p>hi</p>"),
        "/moved": redirect_to("/final"),
        "/final": ok,
    }
    with FaultServer(routes) as server:
        report = crawl(tmp_path, server, max_redirects=3)
    assert report.failed == {"too_many_redirects": 1, "redirect_loop": 1}
    assert report.skipped == {"redirect_out_of_scope": 4}
    assert report.errors == 0
    paths = [h.path for h in server.requests()]
    assert [p for p in paths if p.startswith("/chain/")] == [f"/chain/{i}" for i in range(4)]
    assert sorted(p for p in paths if p.startswith("/loop/")) == ["/loop/a", "/loop/b"]
    for path in ("/out", "/file", "/js", "/data", "/final"):
        assert paths.count(path) == 1, path
    assert report.pages_fetched == 2  # / and /final


# -- encodings and broken markup ---------------------------------------------------------------
def page(body: bytes, content_type: str = "text/html") -> Any:
    return lambda hit, reply: reply.send(200, body, content_type=content_type)


def test_wrong_or_missing_charsets_and_invalid_bytes_never_crash(tmp_path):
    routes = {
        "/": links_page("/meta", "/bogus", "/wrong", "/none", "/garbage"),
        # meta says windows-1252, the header says nothing
        "/meta": page(article_html("Café naïve one", charset_meta="windows-1252").encode("cp1252")),
        # an unknown label in the header: ignored, the UTF-8 bytes are still read right
        "/bogus": page(article_html("Café naïve two").encode(), "text/html; charset=x-nonsense"),
        # the header lies (utf-8) about cp1252 bytes: replaced, not raised
        "/wrong": page(
            article_html("Plain three", charset_meta="").encode("cp1252"),
            "text/html; charset=utf-8",
        ),
        # no declaration at all, cp1252 bytes: detected
        "/none": page(article_html("Café naïve four", charset_meta="").encode("cp1252")),
        "/garbage": page(b"<html><title>\xff\xfe\x00bad</title>\x80\x81\x82<p>\xc3(</p>"),
    }
    with FaultServer(routes) as server:
        report = crawl(tmp_path, server)
        records = exported(tmp_path, server)
    assert report.failed == {}
    assert report.errors == 0
    assert report.pages_fetched == 6
    assert {p: server.requests(p)[0].sent > 0 for p in routes} == dict.fromkeys(routes, True)
    assert records["/meta"]["title"] == "Café naïve one"
    assert "café dosing" in records["/meta"]["text"]
    assert records["/bogus"]["title"] == "Café naïve two"
    assert records["/wrong"]["title"] == "Plain three"
    assert "\ufffd" in records["/wrong"]["text"]
    assert records["/none"]["title"] == "Café naïve four"


def test_broken_truncated_and_absurdly_nested_html_is_survived(tmp_path):
    full = article_html("Whole article")
    routes = {
        "/": links_page("/nested", "/truncated", "/tags-only", "/empty", "/p/0"),
        "/nested": page(("<a href='/p/9'>x</a>" + "<div>" * 200_000 + "<p>deep</p>").encode()),
        "/truncated": page(full[: len(full) // 2].encode() + b'<p class="unterminated'),
        "/tags-only": page(b"</p></div></body><html><<<>>><!-- never closed"),
        "/empty": page(b""),
        "/p/*": ok,
    }
    with FaultServer(routes) as server:
        report = crawl(tmp_path, server)
        records = exported(tmp_path, server)
    assert report.errors == 0
    assert report.failed == {}
    fetched = {h.path for h in server.requests()} - {"/robots.txt"}
    assert fetched == {"/", "/nested", "/truncated", "/tags-only", "/empty", "/p/0", "/p/9"}
    assert records["/truncated"]["title"] == "Whole article"


# -- gone and transient ------------------------------------------------------------------------
def test_404_and_410_mark_gone_but_a_transient_5xx_never_does(tmp_path):
    state = {"second": False}

    def article(status_second: int) -> Any:
        def behaviour(hit: Hit, reply: Reply) -> None:
            if state["second"] and status_second != 200:
                return reply.send(status_second, b"no", content_type="text/plain")
            name = hit.path.strip("/")
            return reply.send(200, article_html(f"Article {name} zebrafish").encode())

        return behaviour

    routes = {
        "/": links_page("/flaky", "/removed", "/deleted", "/kept"),
        "/flaky": article(503),
        "/removed": article(404),
        "/deleted": article(410),
        "/kept": article(200),
    }
    with FaultServer(routes) as server:
        first = crawl(tmp_path, server)
        assert first.changes.get("article_new") == 4
        state["second"] = True
        second = crawl(tmp_path, server, retries=1)
        records = exported(tmp_path, server)
    assert second.failed == {"http_503": 1, "http_404": 1, "http_410": 1}
    assert second.changes == {"article_gone": 2}
    statuses = {p: records[p]["status"] for p in ("/flaky", "/removed", "/deleted", "/kept")}
    assert statuses == {
        "/flaky": "active",
        "/removed": "gone",
        "/deleted": "gone",
        "/kept": "active",
    }
    assert len(server.requests("/flaky")) == 3, "5xx retried (1 + 1 retry) on the recrawl"
    assert len(server.requests("/removed")) == 2, "404 is permanent: not retried"
    hits = search_index.search(
        index_dir(settings_for(tmp_path, server, ["http://x/"])), "zebrafish", limit=10
    )
    assert {h.url.rsplit("/", 1)[-1] for h in hits.hits} == {"flaky", "kept"}


# -- crawl traps -------------------------------------------------------------------------------
def loop_dirs(hit: Hit, reply: Reply) -> None:
    """Every folder links to two relative sub-folders: /t/a/b/a/b/... never ends."""
    reply.send(200, html('<a href="a/">a</a> <a href="b/">b</a>'))


def test_repeated_path_segments_are_a_bounded_trap(tmp_path):
    with FaultServer({"/": links_page("/t/"), "/t/*": loop_dirs}) as server:
        report = crawl(tmp_path, server)
    paths = [h.path for h in server.requests() if h.path.startswith("/t/")]
    assert paths, "the trap was entered"
    for path in paths:
        segments = [s for s in path.split("/") if s]
        assert max(segments.count(s) for s in set(segments)) <= 2, path
    assert report.links_dropped["repeated_segments"] > 0
    assert len(paths) == 1 + 2 + 4 + 6 + 6  # /t/, then every path with no segment thrice


def next_page(hit: Hit, reply: Reply) -> None:
    """An endless listing: every page links to the next one (a calendar that never ends)."""
    number = int(hit.path.rstrip("/").rsplit("/", 1)[1])
    reply.send(200, html(f'<a href="/feed/page/{number + 1}/">older</a>'))


def test_endless_pagination_stops_at_max_listing_pages(tmp_path):
    with FaultServer({"/": links_page("/feed/page/1/"), "/feed/page/*": next_page}) as server:
        report = crawl(tmp_path, server, max_listing_pages=5)
    numbers = [int(h.path.split("/")[3]) for h in server.requests() if h.path.startswith("/feed")]
    assert numbers == [1, 2, 3, 4, 5]
    assert report.links_dropped == {"listing_pages": 1}


def more_variants(hit: Hit, reply: Reply) -> None:
    """Each answer links to two new query strings of the same path (filters, sort orders)."""
    n = int(hit.path.split("=")[-1]) if "=" in hit.path else 0
    reply.send(
        200, html(f'<a href="/items?f={2 * n + 1}">x</a> <a href="/items?f={2 * n + 2}">y</a>')
    )


def test_endless_query_variants_are_capped_per_path(tmp_path):
    with FaultServer({"/": links_page("/items"), "/items": more_variants}) as server:
        report = crawl(tmp_path, server, max_query_variants=6)
    queries = [h.path for h in server.requests("/items") if "?" in h.path]
    assert len(queries) == len(set(queries)) == 6
    assert report.links_dropped["query_variants"] > 0


def test_session_ids_in_query_and_path_do_not_make_new_pages(tmp_path):
    routes = {
        "/": links_page(
            "/p/1;jsessionid=A1B2C3",
            "/p/1?PHPSESSID=deadbeef",
            "/p/1?sid=42",
            "/p/1;JSESSIONID=Z9?sessionid=7",
            "/p/1",
        ),
        "/p/*": links_page("/p/1;jsessionid=NEW"),
    }
    with FaultServer(routes) as server:
        report = crawl(tmp_path, server)
    assert [h.path for h in server.requests() if h.path.startswith("/p/")] == ["/p/1"]
    assert report.pages_fetched == 2


def test_max_pages_per_site_pauses_the_pass_and_the_next_run_continues(tmp_path):
    with FaultServer({"/": links_page(*[f"/p/{i}" for i in range(6)]), "/p/*": ok}) as server:
        first = crawl(tmp_path, server, max_pages_per_site=3)
        assert len(server.requests()) == 4  # robots.txt, /, two pages
        second = crawl(tmp_path, server, max_pages_per_site=3)
        third = crawl(tmp_path, server, max_pages_per_site=3)
    assert (first.status, first.pages_fetched, first.capped) == ("paused", 3, {"faulty": 4})
    assert (second.status, second.pages_fetched, second.capped) == ("paused", 3, {"faulty": 1})
    assert (third.status, third.pages_fetched, third.capped) == ("finished", 1, {})
    fetched = [h.path for h in server.requests() if h.path != "/robots.txt"]
    assert sorted(fetched) == sorted(["/", *[f"/p/{i}" for i in range(6)]]), "each page once"


def failing_while(failing: list[bool], status: int, route: Any) -> Any:
    """``route``, or a bare ``status`` reply while ``failing[0]`` is set."""

    def send(hit: Hit, reply: Reply) -> None:
        if failing[0]:
            reply.send(status, b"not now")
        else:
            route(hit, reply)

    return send


# -- sitemaps ----------------------------------------------------------------------------------
def sitemap_robots(path: str) -> Any:
    """A robots.txt route naming the sitemap at ``path`` of the host asked."""
    return lambda hit, reply: reply.send(
        200, f"Sitemap: http://{hit.headers['host']}{path}\n".encode(), content_type="text/plain"
    )


def urlset(entries: Iterable[tuple[str, str | None]], *, gzipped: bool = False) -> Any:
    """A sitemap route listing ``(path, lastmod or None)`` of the host asked; ``entries`` is read
    again at each request (a dict's ``items()`` follows the dict)."""

    def send(hit: Hit, reply: Reply) -> None:
        base = f"http://{hit.headers['host']}"
        urls = "".join(
            f"<url><loc>{base}{path}</loc>"
            + (f"<lastmod>{lastmod}</lastmod>" if lastmod else "")
            + "</url>"
            for path, lastmod in entries
        )
        body = f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
        if gzipped:
            reply.send(200, gzip.compress(body.encode()), content_type="application/x-gzip")
        else:
            reply.send(200, body.encode(), content_type="text/xml")

    return send


@pytest.mark.parametrize("spool", [64, None], ids=["spooled-to-disk", "in-memory"])
def test_sitemap_index_and_gzipped_sitemap_with_lastmod_skip_on_recrawl(
    tmp_path, monkeypatch, spool
):
    if spool is not None:  # each sitemap goes to a temporary file past 64 bytes
        monkeypatch.setattr("pipeline.seeding._SITEMAP_SPOOL", spool)
    lastmod = {"/s/old": "2020-01-01", "/s/new": "2020-01-01T00:00:00Z"}

    index = (
        '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        "<sitemap><loc>{}</loc></sitemap><sitemap><loc>http://elsewhere.example/x.xml</loc>"
        "</sitemap></sitemapindex>"
    )
    routes = {
        "/robots.txt": sitemap_robots("/index.xml"),
        "/index.xml": lambda hit, reply: reply.send(
            200, index.format(server.url("/pages.xml.gz")).encode(), content_type="text/xml"
        ),
        "/pages.xml.gz": urlset(lastmod.items(), gzipped=True),
        "/": links_page(),
        "/s/*": post,  # only article pages are ever skipped on a sitemap's word
    }
    with FaultServer(routes) as server:
        first = crawl(tmp_path, server, refetch_min="1h")
        assert sorted(h.path for h in server.requests() if h.path.startswith("/s/")) == [
            "/s/new",
            "/s/old",
        ]
        lastmod["/s/new"] = "2999-01-01T00:00:00+00:00"  # changed since our fetch
        server.hits.clear()
        second = crawl(tmp_path, server, refetch_min="1h")
    assert first.pages_fetched == 3
    assert second.skipped == {"sitemap_unchanged": 1}
    assert [h.path for h in server.requests() if h.path.startswith("/s/")] == ["/s/new"]
    assert "elsewhere" not in str([h.path for h in server.requests()])


def test_a_sitemap_queued_a_slice_at_a_time_is_still_fetched_newest_first(tmp_path, monkeypatch):
    monkeypatch.setattr("pipeline.seeding._SITEMAP_CHUNK", 3)
    days = {"/s/a": 3, "/s/b": 7, "/s/c": None, "/s/d": 1, "/s/e": 5, "/s/f": 2, "/s/g": 6}
    entries = [(p, f"2020-01-{d:02d}" if d else None) for p, d in [*days.items(), ("/s/b", 7)]]
    routes = {
        "/robots.txt": sitemap_robots("/pages.xml"),
        "/pages.xml": urlset(entries),  # /s/b listed twice: fetched once
        "/": links_page(),
        "/s/*": post,
    }
    with FaultServer(routes) as server:
        first = crawl(tmp_path, server, concurrency=1, per_host_concurrency=1, refetch_min="1h")
        fetched = [h.path for h in server.requests() if h.path.startswith("/s/")]
        server.hits.clear()
        second = crawl(tmp_path, server, refetch_min="1h")
    # newest lastmod first across the slices, the one without a lastmod last
    assert fetched == ["/s/b", "/s/g", "/s/e", "/s/a", "/s/f", "/s/d", "/s/c"]
    assert first.pages_fetched == 8
    assert second.skipped == {"sitemap_unchanged": 7}
    assert [h.path for h in server.requests() if h.path.startswith("/s/")] == []


def test_sitemaps_of_an_index_are_queued_newest_first_over_all_and_a_broken_one_adds_nothing(
    tmp_path, monkeypatch
):
    monkeypatch.setattr("pipeline.seeding._SITEMAP_CHUNK", 2)  # the order is the spool's
    first = [("/s/a", "2020-01-03"), ("/s/b", "2020-01-09"), ("/s/c", None)]
    second = [("/s/d", "2020-01-05"), ("/s/e", "2020-01-11")]
    names = ("1.xml", "2.xml", "3.xml")
    index = "".join(f"<sitemap><loc>{{base}}/{name}</loc></sitemap>" for name in names)
    broken = urlset([("/s/x", "2020-01-20"), ("/s/y", "2020-01-21")])

    def cut_short(hit: Hit, reply: Reply) -> None:  # the XML breaks off after its first entry
        broken(hit, _Cut(reply))

    routes = {
        "/robots.txt": sitemap_robots("/index.xml"),
        "/index.xml": lambda hit, reply: reply.send(
            200,
            f"<sitemapindex>{index}</sitemapindex>".format(base=server.url("")).encode(),
            content_type="text/xml",
        ),
        "/1.xml": urlset(first),
        "/2.xml": urlset(second),
        "/3.xml": cut_short,
        "/": links_page(),
        "/s/*": post,
    }
    with FaultServer(routes) as server:
        report = crawl(tmp_path, server, concurrency=1, per_host_concurrency=1)
    fetched = [h.path for h in server.requests() if h.path.startswith("/s/")]
    assert fetched == ["/s/e", "/s/b", "/s/d", "/s/a", "/s/c"]
    assert report.pages_fetched == 6


class _Cut:
    """A reply whose body is cut after its first ``</url>``."""

    def __init__(self, reply: Reply) -> None:
        self._reply = reply

    def send(self, status: int, body: bytes, **kwargs: Any) -> None:
        self._reply.send(status, body[: body.index(b"</url>") + 6], **kwargs)


@pytest.mark.parametrize(("cap", "read"), [(60_000, True), (20_000, False)])
def test_a_sitemap_has_its_own_size_cap_above_a_page_s(tmp_path, caplog, cap, read):
    """The sitemap (~25 KB) is over ``crawl.max_bytes`` (a page's cap, 2 KB here) but read up
    to ``crawl.sitemap_max_bytes``; over that, it is ignored and the log names the setting."""
    entries = [(f"/s/{i}", "2020-01-01") for i in range(300)]
    routes = {
        "/robots.txt": sitemap_robots("/pages.xml"),
        "/pages.xml": urlset(entries),
        "/": links_page(),
        "/s/*": ok,
    }
    with FaultServer(routes) as server:
        report = crawl(tmp_path, server, max_bytes=2_000, sitemap_max_bytes=cap)
    assert report.pages_fetched == (301 if read else 1)
    assert ("crawl.sitemap_max_bytes" in caplog.text) is not read


def test_a_page_skipped_on_the_sitemaps_word_still_leads_to_what_was_never_fetched(tmp_path):
    """/s/old is unchanged (sitemap lastmod) and not refetched; the page it linked to failed
    last time, so it is queued again from /s/old's stored links, once, and fetched."""
    failing = [True]

    def old(hit: Hit, reply: Reply) -> None:
        body = '<article class="post"><h1 class="entry-title">Old</h1><time datetime="2020-01-01">'
        links = '<a href="/s/target">next</a> <a href="/s/other">other</a>'
        reply.send(200, html(body + "1 Jan</time><p>" + "Words. " * 30 + "</p>" + links))

    routes = {
        "/robots.txt": sitemap_robots("/pages.xml"),
        "/pages.xml": urlset([("/s/old", "2020-01-01"), ("/s/other", "2020-01-01")]),
        "/": links_page(),
        "/s/old": old,
        "/s/other": post,
        "/s/target": failing_while(failing, 404, post),
    }
    with FaultServer(routes) as server:
        crawl(tmp_path, server, refetch_min="1h")
        failing[0] = False
        server.hits.clear()
        second = crawl(tmp_path, server, refetch_min="1h")
    assert second.skipped == {"sitemap_unchanged": 2}
    assert [h.path for h in server.requests() if h.path.startswith("/s/")] == ["/s/target"]
    assert second.pages_fetched == 2  # "/" (it sends no validators) and /s/target


class _Conditional:
    """Sitemap routes that send an ETag (of their body) and answer a matching If-None-Match with
    304, as a static server does; ``answers`` logs ``(path, status)`` of every reply."""

    def __init__(self) -> None:
        self.answers: list[tuple[str, int]] = []

    def __call__(self, route: Any) -> Any:
        def send(hit: Hit, reply: Reply) -> None:
            route(hit, _Tagged(hit, reply, self.answers))

        return send

    def statuses(self, path: str) -> list[int]:
        return [status for answered, status in self.answers if answered == path]


class _Tagged:
    def __init__(self, hit: Hit, reply: Reply, answers: list[tuple[str, int]]) -> None:
        self._hit, self._reply, self._answers = hit, reply, answers

    def send(self, status: int, body: bytes, **headers: str) -> None:
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if status == 200 and self._hit.headers.get("if-none-match") == etag:
            status, body = 304, b""
        self._answers.append((self._hit.path, status))
        self._reply.send(status, body, etag=etag, **headers)


def _parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs of the sitemaps parsed from now on."""
    parsed: list[str] = []
    real = seeding.parse_sitemap

    def counted(data: Any, **kwargs: Any) -> Any:
        parsed.append(kwargs["url"])
        return real(data, **kwargs)

    monkeypatch.setattr(seeding, "parse_sitemap", counted)
    return parsed


def test_unchanged_sitemaps_answer_304_and_their_urls_are_queued_as_last_read(
    tmp_path, monkeypatch
):
    """The second pass sends the sitemap's ETag back, parses nothing, and leaves out the same
    unchanged articles a reading in full does (the first pass's store, copied, is the control);
    the third, two hours on with every article due, queues them all from the kept reading."""
    tagged = _Conditional()
    entries = [("/s/a", "2020-01-03"), ("/s/b", "2020-01-05"), ("/s/c", None)]
    entries.append(("http://elsewhere.example/s/x", "2020-01-09"))  # out of scope: not kept
    robots = "Sitemap: http://elsewhere.example/map.xml\nSitemap: {}\nSitemap: {}\n"  # read once
    routes = {
        "/robots.txt": lambda hit, reply: reply.send(
            200, robots.format(*[server.url("/pages.xml")] * 2).encode(), content_type="text/plain"
        ),
        "/pages.xml": tagged(urlset(entries)),
        "/": links_page(),
        "/s/*": post,
    }
    with FaultServer(routes) as server:
        first = crawl(tmp_path, server, refetch_min="1h")
        control = tmp_path / "control"
        shutil.copytree(tmp_path / "data", control / "data")
        parsed = _parses(monkeypatch)
        server.hits.clear()
        second = crawl(tmp_path, server, refetch_min="1h")
        assert [h.path for h in server.requests() if h.path.startswith("/s/")] == []
        server.hits.clear()
        later = datetime.now(UTC) + timedelta(hours=2)  # every article due again
        serial = settings_for(
            tmp_path, server, [server.url("/")], concurrency=1, per_host_concurrency=1
        )
        third = run_once(serial, clock=lambda: later)
        fetched = [h.path for h in server.requests() if h.path.startswith("/s/")]
        assert parsed == []
        read_again = crawl(control, server, refetch_min="1h", use_sitemaps=True)
    assert first.pages_fetched == 4
    assert tagged.statuses("/pages.xml") == [200, 304, 304, 304]
    assert second.skipped == read_again.skipped == {"sitemap_unchanged": 3}
    assert second.links_dropped == {}  # not judged again: nothing counted
    assert third.skipped == {}
    assert fetched == ["/s/b", "/s/a", "/s/c"]  # newest lastmod first, as read


def test_a_changed_sitemap_of_an_index_is_read_as_it_came_and_the_others_again(
    tmp_path, monkeypatch
):
    """Checking the kept reading stops at the first file that changed: its body is used as
    it came (one request), those before it are read again in full, and the next pass keeps
    the new reading."""
    tagged = _Conditional()
    one = [("/s/a", "2020-01-03")]
    two = [("/s/b", "2020-01-05")]
    names = ("1.xml", "2.xml")
    index = "".join(f"<sitemap><loc>{{base}}/{name}</loc></sitemap>" for name in names)
    routes = {
        "/robots.txt": sitemap_robots("/index.xml"),
        "/index.xml": tagged(
            lambda hit, reply: reply.send(
                200,
                f"<sitemapindex>{index}</sitemapindex>".format(base=server.url("")).encode(),
                content_type="text/xml",
            )
        ),
        "/1.xml": tagged(urlset(one)),
        "/2.xml": tagged(urlset(two)),
        "/": links_page(),
        "/s/*": post,
    }
    with FaultServer(routes) as server:
        crawl(tmp_path, server, refetch_min="1h")
        two.append(("/s/new", "2020-02-01"))
        server.hits.clear()
        second = crawl(tmp_path, server, refetch_min="1h")
        sitemaps = [h.path for h in server.requests() if h.path.endswith(".xml")]
        fetched = [h.path for h in server.requests() if h.path.startswith("/s/")]
        parsed = _parses(monkeypatch)
        third = crawl(tmp_path, server, refetch_min="1h")
    assert sitemaps == ["/index.xml", "/1.xml", "/2.xml", "/index.xml", "/1.xml"]
    assert tagged.answers[3:8] == [
        ("/index.xml", 304),
        ("/1.xml", 304),
        ("/2.xml", 200),
        ("/index.xml", 200),
        ("/1.xml", 200),
    ]
    assert fetched == ["/s/new"]
    assert second.skipped == {"sitemap_unchanged": 2}
    assert (third.skipped, parsed) == ({"sitemap_unchanged": 3}, [])
    assert tagged.answers[8:] == [("/index.xml", 304), ("/1.xml", 304), ("/2.xml", 304)]


def test_a_kept_reading_is_dropped_when_the_rules_change_or_a_sitemap_fails(tmp_path, caplog):
    """An ``exclude`` added to the site: the sitemap is read and judged in full (no
    If-None-Match sent), the excluded page left out. A sitemap that fails: logged, its URLs
    not queued, and the pass after reads it in full."""
    tagged = _Conditional()
    failing = [False]
    listed = tagged(urlset([("/s/a", "2020-01-03"), ("/s/b", "2020-01-05")]))
    routes = {
        "/robots.txt": sitemap_robots("/pages.xml"),
        "/pages.xml": failing_while(failing, 500, listed),
        "/": links_page(),
        "/s/*": post,
    }
    with FaultServer(routes) as server:
        settings = settings_for(tmp_path, server, [server.url("/")], refetch_min="0s")
        run_once(settings)
        site = {**settings.sites[0].model_dump(), "exclude": ["/s/a"]}
        excluding = settings.model_validate({**settings.model_dump(), "sites": [site]})
        server.hits.clear()
        run_once(excluding)
        conditional = [h.headers.get("if-none-match") for h in server.requests("/pages.xml")]
        fetched = sorted(h.path for h in server.requests() if h.path.startswith("/s/"))
        failing[0] = True
        server.hits.clear()
        failed = run_once(excluding)
        asked = len(server.requests("/pages.xml"))
        failing[0] = False
        server.hits.clear()
        run_once(excluding)
        after = [h.headers.get("if-none-match") for h in server.requests("/pages.xml")]
    assert (conditional, fetched) == ([None], ["/s/b"])
    assert (failed.pages_fetched, asked) == (1, 1)  # "/" only; the failing sitemap asked once
    assert any(
        r.getMessage().startswith("HTTP 500 from") and r.getMessage().endswith("/pages.xml")
        for r in caplog.records
    )
    assert after == [None]  # read in full: the failed pass kept no reading
    assert tagged.statuses("/pages.xml") == [200, 200, 200]


# -- retries and canonical URLs ----------------------------------------------------------------
def flaky(failures: int, how: str) -> Any:
    """Fail the first ``failures`` requests (a 502, or a TCP reset), then serve an article."""
    seen: list[int] = []

    def behaviour(hit: Hit, reply: Reply) -> None:
        seen.append(1)
        if len(seen) <= failures:
            if how == "reset":
                reply.reset()
            else:
                reply.send(502, b"bad gateway")
            return
        reply.send(200, article_html(f"Flaky {hit.path}").encode())

    return behaviour


@pytest.mark.parametrize("how", ["502", "reset"])
def test_transient_failures_are_retried_with_growing_backoff(tmp_path, how):
    with FaultServer({"/": links_page("/flaky"), "/flaky": flaky(2, how)}) as server:
        report = crawl(tmp_path, server, retries=3, backoff=0.05)
    assert report.failed == {}
    assert report.pages_fetched == 2
    hits = server.requests("/flaky")
    assert len(hits) == 3  # two failures, then the page
    gaps = [b.arrived - a.arrived for a, b in itertools.pairwise(hits)]
    # backoff * 2**n with jitter 0.5..1.5: first gap >= 0.025 s, second >= 0.05 s
    assert gaps[0] >= 0.025 - TOLERANCE
    assert gaps[1] >= 0.05 - TOLERANCE


def test_retries_are_bounded_and_permanent_errors_are_not_retried(tmp_path):
    routes = {
        "/": links_page("/always-502", "/missing"),
        "/always-502": flaky(99, "502"),
        "/missing": lambda hit, reply: reply.send(404, b"nope"),
    }
    with FaultServer(routes) as server:
        report = crawl(tmp_path, server, retries=2, backoff=0.01)
    assert report.failed == {"http_502": 1, "http_404": 1}
    assert len(server.requests("/always-502")) == 3  # 1 + crawl.retries
    assert len(server.requests("/missing")) == 1


def test_rel_canonical_makes_one_record_of_many_urls(tmp_path):
    def page(hit: Hit, reply: Reply) -> None:
        canonical = f'<link rel="canonical" href="{server.url("/post/")}">'
        body = article_html("The One Post").replace("</head>", canonical + "</head>")
        reply.send(200, body.encode())

    routes = {
        "/": links_page("/post/", "/post/?ref=feed", "/amp/post/"),
        "/post/*": page,
        "/amp/*": page,
    }
    with FaultServer(routes) as server:
        report = crawl(tmp_path, server)
        out = tmp_path / "records.jsonl"
        export_records(settings_for(tmp_path, server, [server.url("/")]), out)
    assert report.failed == {}
    articles = [json.loads(line) for line in out.read_text().splitlines()]
    articles = [a for a in articles if a["kind"] == "article"]
    assert [a["url"] for a in articles] == [server.url("/post/")]


# -- connections ---------------------------------------------------------------------------------
def test_a_recrawl_of_304s_redirects_and_404s_keeps_one_connection(tmp_path):
    def post_with_etag(hit: Hit, reply: Reply) -> None:
        if hit.headers.get("if-none-match") == '"v1"':
            reply.send(304, ETag='"v1"')
            return
        body = f'<article><h1>Post {hit.path}</h1><time datetime="2020-01-01">1 Jan</time>'
        reply.send(200, html(body + "<p>Words of a post.</p>" * 20 + "</article>"), ETag='"v1"')

    def moved(hit: Hit, reply: Reply) -> None:
        reply.send(301, b"moved", Location="/p/0")

    def missing(hit: Hit, reply: Reply) -> None:
        reply.send(404, b"<p>no such page</p>")

    routes = {
        "/robots.txt": robots("User-agent: *\nAllow: /\n"),
        "/": links_page(*(f"/p/{i}" for i in range(6)), "/moved", "/missing"),
        "/p/*": post_with_etag,
        "/moved": moved,
        "/missing": missing,
    }
    with FaultServer(routes) as server:
        crawl(tmp_path, server, concurrency=1, per_host_concurrency=1)
        first = len(server.requests())
        report = crawl(tmp_path, server, concurrency=1, per_host_concurrency=1)
        again = server.requests()[first:]
    assert report.not_modified == 6
    assert {"/moved", "/missing", "/p/0", "/p/5"} <= {h.path for h in again}
    # a body left unread closes the connection: each 304, redirect or 404 would open a new one
    assert len({h.connection for h in again}) == 1, [(h.path, h.connection) for h in again]


def test_pages_may_start_ahead_only_to_a_host_with_no_gap_to_keep():
    """``HostGate.ahead``: past ``per_host_concurrency``, pages may start ahead (to wait for a
    request slot in a worker) only to a host with no delay, whose Crawl-delay was read and
    none, and not blocked by a Retry-After."""
    now = [100.0]
    gate = HostGate(per_host_concurrency=2, delay=0.0, clock=lambda: now[0], ahead=3)
    for _ in range(2):
        gate.started("a")
    assert not gate.may_queue("a")  # its robots.txt not read yet
    assert gate.ready_in("a") == float("inf")
    gate.raise_delay("a", 0.0)
    assert gate.may_queue("a")
    for _ in range(3):
        assert gate.ready_in("a") == 0.0
        gate.started("a")
    assert gate.ready_in("a") == float("inf")  # two and three ahead
    gate.block("a", 5.0)
    assert not gate.may_queue("a")
    for _ in range(3):
        gate.finished("a")
    assert gate.ready_in("a") == float("inf")  # blocked: none ahead, and two in flight
    now[0] += 6.0
    assert gate.may_queue("a")
    assert gate.ready_in("a") == 0.0
    delayed = HostGate(per_host_concurrency=2, delay=0.0, clock=lambda: now[0], ahead=3)
    delayed.raise_delay("b", 1.0)  # a Crawl-delay
    now[0] += 1.0
    for _ in range(2):
        delayed.started("b")
    assert not delayed.may_queue("b")
    assert delayed.ready_in("b") == float("inf")
    assert not delayed.all_may_queue()  # so the crawl sets no pages ahead (Crawler)
    assert gate.all_may_queue()
    gate.ahead = 0  # no worker ready: per_host_concurrency alone
    gate.started("a")
    assert gate.ready_in("a") == float("inf")


_GATE_STEPS = st.lists(
    st.tuples(
        st.sampled_from(["started", "finished", "delay", "no_delay", "block", "tick", "ahead"]),
        st.sampled_from(["a", "b"]),
        st.integers(min_value=0, max_value=4),
    ),
    max_size=25,
)


def gate_after(steps: list[tuple[str, str, int]], configured_delay: float) -> HostGate:
    """A gate (three slots a host) driven through ``steps``, on a clock they move."""
    now = [100.0]
    gate = HostGate(per_host_concurrency=3, delay=configured_delay, clock=lambda: now[0])
    for op, host, n in steps:
        if op == "started" and gate.ready_in(host) == 0:
            gate.started(host)
        elif op == "finished":
            gate.finished(host)
        elif op in ("delay", "no_delay"):
            gate.raise_delay(host, 0.3 if op == "delay" else 0.0)
        elif op == "block":
            gate.block(host, float(n))
        elif op == "tick":
            now[0] += n / 4
        elif op == "ahead":
            gate.ahead = n
    return gate


@settings(max_examples=300, deadline=None)
@given(steps=_GATE_STEPS, configured_delay=st.sampled_from([0.0, 0.5]))
def test_startable_pages_claimed_at_once_start_as_one_at_a_time_would(steps, configured_delay):
    """``HostGate.startable``: the crawl claims that many pages at once, whichever ready host
    (or host the gate has not seen) they are all on, and each would have been claimed one at a
    time too (``ready_in`` 0 before each start), whatever the gate's state."""
    gate = gate_after(steps, configured_delay)
    startable = gate.startable()
    assert startable >= 1
    for host in ["a", "b", "never-seen"]:
        if gate.ready_in(host) > 0:
            continue  # not claimable: ``busy_hosts`` leaves it out
        trial = copy.deepcopy(gate)
        for _ in range(startable):
            assert trial.ready_in(host) == 0, (host, startable)
            trial.started(host)


def test_pages_started_ahead_for_a_worker_never_pass_the_per_host_concurrency(
    tmp_path, held_by_worker
):
    """With a worker from the first page, the crawl starts pages ahead of the per-host
    concurrency; they wait in the worker for its request slots, and the crawl's own requests
    take only what the worker leaves: the server never has more than two at once."""
    pages = [f"/slow/{i}" for i in range(16)]
    with FaultServer({"/": links_page(*pages), "/slow/*": slow}) as server:
        report = crawl(tmp_path, server, per_host_concurrency=2, concurrency=4, extract_workers=1)
    assert (report.pages_fetched, report.failed, report.errors) == (17, {}, 0)
    assert report.extract["workers"] == 1
    assert max(held_by_worker) > 2  # pages waited in the worker: it sends two at most at once
    assert server.max_in_flight["127.0.0.1"] == 2  # reached, never passed


def test_no_page_waits_ahead_while_a_host_has_a_gap_to_keep(tmp_path, held_by_worker):
    """Two hosts, one with a Crawl-delay: the crawl starts no page ahead while it crawls
    that one (pages waiting ahead would take each freed request slot first, and a page of the
    delayed host that waited behind them would start late, too close to the next), so its
    requests keep their gap although the other host's pages are slow."""
    routes = {
        **slow_and_fast(12, 8),
        "/robots.txt": lambda hit, reply: reply.send(
            200,
            b"User-agent: *\nCrawl-delay: 0.15\n" if hit.host == "localhost" else b"",
            content_type="text/plain",
        ),
    }
    with FaultServer(routes) as server:
        report = crawl_slow_and_fast(
            tmp_path, server, per_host_concurrency=4, concurrency=4, extract_workers=1
        )
    assert (report.pages_fetched, report.failed, report.errors) == (22, {}, 0)
    kept = gaps(arrivals(server, "localhost"))
    assert len(kept) == 7
    assert min(kept) >= 0.15 - TOLERANCE, kept
    assert max(held_by_worker) <= 3  # the worker's request slots: nothing waited in it
