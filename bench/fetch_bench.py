"""The fetch layer alone: HTTP clients, and crawldex's own fetch path, against the bench site.

Starts ``bench.site_server`` (the generated site, pre-rendered, in its own process) and takes
the server's own page list (``bench.site_server.prerender`` of the same site and base URL: every
HTML page it serves with status 200, i.e. what a crawl fetches, topic pagination included; card
images and robots.txt left out). Then for each client and repeat (alternating: A, B, C, ..., A,
B, C, ...) a fresh child process GETs every URL of that list once, 64 (``--concurrency``) at a
time over one keep-alive pool, gzip accepted, and reads each body to the end, decompressed:

- ``httpx``: ``httpx.AsyncClient`` (0.28), ``client.stream`` + ``aread``.
- ``httpx2``: the same code with ``httpx2`` (httpx's maintained continuation, same API).
- ``aiohttp``: ``aiohttp.ClientSession`` with a ``TCPConnector(limit=concurrency)``, ``read``.
- ``crawldex/aiohttp``: ``pipeline.fetch.make_client`` + ``fetch_page``, the crawler's own path
  (scope check on redirects, conditional-GET headers, the whole-response deadline, the size cap
  after decompression, charset decoding to ``str``) with its default ``crawl.transport``:
  httpx2's client over aiohttp's pool (``pipeline.fetch.transports.AiohttpTransport``).
- ``crawldex/httpx2``: the same with ``crawl.transport: httpx2`` (httpx2's own pool).
- ``crawldex/httpx``: the same ``pipeline/fetch/`` with ``httpx`` 0.28 loaded under the name
  ``httpx2`` (``sys.modules`` in the child only; the APIs are the same) and httpx's own pool, to
  show what the switch to httpx2 changed on the crawler's path.

``--conditional`` measures an unchanged recrawl's requests instead: the parent first GETs every
page once for its ``ETag``, then each run sends every request with ``If-None-Match`` and counts
a 304 as the answer expected (no body is sent).

    python -m bench.fetch_bench                         # 2,000 articles, ~2-3 minutes
    python -m bench.fetch_bench --articles 20000 --repeats 3
    python -m bench.fetch_bench --clients httpx2 crawldex/httpx2 --repeats 5
    python -m bench.fetch_bench --conditional --concurrency 16   # an unchanged recrawl's 304s

Printed per run and as medians, and written to ``bench/results/fetch-<articles>[-304].json``:

- **req/s**: responses read / wall-clock seconds from the first request to the last body.
- **CPU ms/req**: user + system CPU of the fetching process (``getrusage(RUSAGE_SELF)``) over
  the same span / responses. The server's CPU is not included.
- **decode ms/req** (crawldex rows): CPU spent in ``pipeline.fetch.decode_html`` per response,
  and how many responses needed charset detection (charset-normalizer).
- **errors**: responses that were not a 200 with a body (with ``--conditional``: not a 304) (must
  be 0; a run with errors is not a valid figure).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import platform
import resource
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# Nothing of pipeline/ is imported at module level: a crawldex/httpx child must load
# pipeline.fetch only after it has put httpx in its place (see _run_crawldex).

RESULTS = Path(__file__).resolve().parent / "results"
CLIENTS = ("httpx", "httpx2", "aiohttp", "crawldex/httpx", "crawldex/httpx2", "crawldex/aiohttp")
HEADERS = {"Accept-Encoding": "gzip", "User-Agent": "crawldex-fetch-bench"}


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def page_list(articles: int, topics: int, base: str) -> list[str]:
    """Every HTML page the server answers 200 for, as absolute URLs (the server's own list)."""
    from bench.site_server import prerender
    from pipeline.demo import build_site

    pages = prerender(build_site(articles=articles, topics=topics), base)
    return [
        base + path
        for path, page in pages.items()
        if page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    ]


#: GET one URL to the end (with ``If-None-Match`` when an ETag is given); returns the body's
#: size, or -1 when the answer was not the one expected (200, or 304 for a conditional GET).
Fetch = Callable[[str, str | None], Awaitable[int]]
Work = list[tuple[str, str | None]]  # (URL, ETag or None)


def _conditional(etag: str | None) -> dict[str, str]:
    return {"If-None-Match": etag} if etag else {}


def _size(status: int, etag: str | None, size: int) -> int:
    return size if status == (304 if etag else 200) else -1


async def _drive(work_list: Work, concurrency: int, fetch: Fetch) -> dict[str, Any]:
    """GET every URL, ``concurrency`` at a time; wall, CPU and counts of that span only."""
    work: Iterator[tuple[str, str | None]] = iter(work_list)
    sizes: list[int] = []

    async def worker() -> None:
        for url, etag in work:
            sizes.append(await fetch(url, etag))

    cpu, wall = _cpu(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    return {
        "responses": len(sizes),
        "errors": sum(1 for size in sizes if size < 0),
        "body_bytes": sum(size for size in sizes if size > 0),
        "seconds": wall,
        "cpu_seconds": cpu,
    }


async def _run_httpx(module_name: str, urls: Work, concurrency: int) -> dict[str, Any]:
    httpx: Any = importlib.import_module(module_name)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, headers=HEADERS, trust_env=False) as client:

        async def fetch(url: str, etag: str | None) -> int:
            async with client.stream("GET", url, headers=_conditional(etag)) as response:
                body = await response.aread()
            return _size(response.status_code, etag, len(body))

        return await _drive(urls, concurrency, fetch)


async def _run_aiohttp(urls: Work, concurrency: int) -> dict[str, Any]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=HEADERS) as session:

        async def fetch(url: str, etag: str | None) -> int:
            async with session.get(url, headers=_conditional(etag)) as response:
                body = await response.read()
            return _size(response.status, etag, len(body))

        return await _drive(urls, concurrency, fetch)


async def _run_crawldex(backend: str, urls: Work, concurrency: int) -> dict[str, Any]:
    if backend == "httpx":  # pipeline/fetch/ imports httpx2: hand it the other package
        sys.modules["httpx2"] = importlib.import_module(backend)
    from pipeline import fetch as fetch_module
    from pipeline.config import CrawlSettings
    from pipeline.models import Target, Validators

    expected = "httpx" if backend == "httpx" else "httpx2"
    assert fetch_module.httpx2.__name__ == expected, fetch_module.httpx2.__name__
    decode = {"calls": 0, "cpu": 0.0, "detected": 0}
    real_decode, real_detect = fetch_module.decode_html, fetch_module._detect

    def timed_decode(body: bytes, content_type: str = "") -> tuple[str, str]:
        started = time.perf_counter()  # a synchronous call: its wall time is its CPU
        try:
            return real_decode(body, content_type)
        finally:
            decode["calls"] += 1
            decode["cpu"] += time.perf_counter() - started

    def counted_detect(sample: bytes) -> str:
        decode["detected"] += 1
        return real_detect(sample)

    fetch_module.decode_html = timed_decode  # type: ignore[assignment]
    fetch_module._detect = counted_detect
    settings = CrawlSettings(
        concurrency=concurrency,
        per_host_concurrency=min(64, concurrency),
        transport="aiohttp" if backend == "aiohttp" else "httpx2",
    )

    async with fetch_module.make_client(settings) as client:

        async def fetch(url: str, etag: str | None) -> int:
            fetched = await fetch_module.fetch_page(
                client,
                Target(url=url, site="demo"),
                settings=settings,
                scope=lambda _url: None,
                validators=Validators(etag=etag) if etag else None,
            )
            return _size(fetched.status, etag, len(fetched.text))

        result = await _drive(urls, concurrency, fetch)
    result["decode_cpu_seconds"] = decode["cpu"]
    result["decode_calls"] = decode["calls"]
    result["detected"] = decode["detected"]
    return result


async def _etags(urls: list[str]) -> list[str | None]:
    """Each page's current ETag (one plain GET each, untimed), for ``--conditional``."""
    import httpx2

    async with httpx2.AsyncClient(trust_env=False) as client:
        found: list[str | None] = []
        for start in range(0, len(urls), 64):
            batch = urls[start : start + 64]
            replies = await asyncio.gather(*(client.get(url) for url in batch))
            found += [reply.headers.get("etag") for reply in replies]
    return found


def child(client: str, urls_file: Path, concurrency: int) -> dict[str, Any]:
    """One measured run in this (fresh) process."""
    urls = [(url, etag) for url, etag in json.loads(urls_file.read_text())]
    if client in ("httpx", "httpx2"):
        result = asyncio.run(_run_httpx(client, urls, concurrency))
    elif client == "aiohttp":
        result = asyncio.run(_run_aiohttp(urls, concurrency))
    elif client.startswith("crawldex/"):
        result = asyncio.run(_run_crawldex(client.split("/", 1)[1], urls, concurrency))
    else:
        raise SystemExit(f"unknown client {client!r}; one of {', '.join(CLIENTS)}")
    versions = {}
    for name in ("httpx", "httpx2", "aiohttp"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "?")
    result.update(client=client, versions=versions)
    # No peak RSS here: a forked child's ru_maxrss starts at its parent's, which holds the site.
    return result


def _row(run: dict[str, Any]) -> dict[str, Any]:
    responses = max(1, run["responses"])
    row = {
        "client": run["client"],
        "responses": run["responses"],
        "errors": run["errors"],
        "req_per_s": run["responses"] / run["seconds"],
        "cpu_ms_per_req": 1000 * run["cpu_seconds"] / responses,
        "decode_ms_per_req": None,
        "detected": None,
    }
    if "decode_calls" in run:
        row["decode_ms_per_req"] = 1000 * run["decode_cpu_seconds"] / max(1, run["decode_calls"])
        row["detected"] = run["detected"]
    return row


def _line(row: dict[str, Any]) -> str:
    decode = "" if row["decode_ms_per_req"] is None else f"{row['decode_ms_per_req']:.3f}"
    detected = "" if row["detected"] is None else str(row["detected"])
    return (
        f"{row['client']:<17}{row['responses']:>7,}{row['req_per_s']:>10.0f}"
        f"{row['cpu_ms_per_req']:>12.3f}{decode:>14}{detected:>9}{row['errors']:>8}"
    )


HEADER = (
    f"{'client':<17}{'pages':>7}{'req/s':>10}{'CPU ms/req':>12}{'decode ms/req':>14}"
    f"{'detect':>9}{'errors':>8}"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--conditional", action="store_true", help="every request with If-None-Match: all 304s"
    )
    parser.add_argument("--clients", nargs="+", default=list(CLIENTS), choices=CLIENTS)
    parser.add_argument("--child", metavar="CLIENT", help=argparse.SUPPRESS)
    parser.add_argument("--urls-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.urls_file, args.concurrency)))
        return
    from bench.runs import run_child
    from bench.site_server import start_server

    # SIGTERM (e.g. `timeout`) unwinds, so the run child and the site server are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(__file__).resolve().parent.parent
    runs: list[dict[str, Any]] = []
    with (
        start_server(args.articles, args.topics) as (base, info),
        tempfile.TemporaryDirectory() as tmp,
    ):
        print(f"site: {json.dumps(info)}")
        urls = page_list(args.articles, args.topics, base)
        urls_file = Path(tmp) / "urls.json"
        etags = asyncio.run(_etags(urls)) if args.conditional else [None] * len(urls)
        urls_file.write_text(json.dumps(list(zip(urls, etags, strict=True))))
        mode = "conditional GETs (304)" if args.conditional else "GETs (200)"
        print(f"{len(urls):,} HTML pages, {mode}, concurrency {args.concurrency}", end="")
        print(f", {args.repeats} rounds")
        print(HEADER)
        for _ in range(args.repeats):
            for client in args.clients:
                cmd = [sys.executable, "-m", "bench.fetch_bench", "--child", client]
                cmd += ["--urls-file", str(urls_file), "--concurrency", str(args.concurrency)]
                run = run_child(cmd, f"run of {client}")
                runs.append(run)
                print(_line(_row(run)), flush=True)
    medians: dict[str, dict[str, Any]] = {}
    for client in args.clients:
        rows = [_row(r) for r in runs if r["client"] == client]
        median = {
            key: statistics.median(row[key] for row in rows)
            for key in ("req_per_s", "cpu_ms_per_req")
        }
        decodes = [row["decode_ms_per_req"] for row in rows if row["decode_ms_per_req"] is not None]
        median["decode_ms_per_req"] = statistics.median(decodes) if decodes else None
        median["errors"] = sum(row["errors"] for row in rows)
        median["runs"] = len(rows)
        medians[client] = median
    print(f"\nmedians of {args.repeats} alternating runs, {len(urls):,} pages each:")
    print(f"{'client':<17}{'req/s':>10}{'CPU ms/req':>12}{'decode ms/req':>14}{'errors':>8}")
    for client, m in medians.items():
        decode = "" if m["decode_ms_per_req"] is None else f"{m['decode_ms_per_req']:.3f}"
        print(
            f"{client:<17}{m['req_per_s']:>10.0f}{m['cpu_ms_per_req']:>12.3f}{decode:>14}"
            f"{m['errors']:>8}"
        )
    RESULTS.mkdir(exist_ok=True)
    suffix = "-304" if args.conditional else ""
    path = RESULTS / f"fetch-{args.articles}{suffix}.json"
    machine = {"python": platform.python_version(), "machine": platform.machine()}
    payload = {
        "site": info,
        "pages": len(urls),
        "concurrency": args.concurrency,
        "conditional": args.conditional,
        "machine": machine,
        "runs": runs,
        "medians": medians,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"written: {path.relative_to(root)}")


if __name__ == "__main__":
    main()
