"""A fast static server for the generated demo site at scale, in its own process.

Generates ``pipeline.demo.build_site(articles=N, topics=T, layout=L)`` (``heavy`` by default: the
WordPress-like theme, 30-60 KB articles; ``--layout plain`` for the 6-11 KB test pages),
discovers every page a crawler can reach (links, card images, robots.txt, sitemap.xml, breadth
first from ``/``), pre-renders each one to gzip bytes with its ``ETag`` and ``Last-Modified``,
then serves them from memory with a minimal HTTP/1.1 keep-alive server on ``asyncio``
(conditional GET answered 304, gzip or identity, HEAD). A request for a page not pre-rendered is
rendered on the fly (counted as a miss).
``GET /__stats`` answers the counters as JSON (not counted itself).

    python -m bench.site_server --articles 2000 --port 8799           # serve until Ctrl-C
    python -m bench.site_server --articles 2000 --load --concurrency 64 --seconds 10

``--load`` measures the server alone: it starts the server in a child process and drives it from
this process with a raw asyncio keep-alive client (no HTTP library in the way) fetching the site's
pages round-robin, and prints requests/s. On a 2-core machine the client and the server share the
cores, so the figure is a floor for the server, not a ceiling.

``start_server()`` is the library form used by ``bench.e2e_bench``: it runs this module as a
subprocess and returns its base URL once it prints ``READY``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import hashlib
import json
import re
import shutil
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.demo import build_site, render_path
from pipeline.demo.content import LAYOUTS, DemoSite
from pipeline.demo.render import http_date
from pipeline.demo.server import not_modified

_LINK = re.compile(rb"""(?:href|src)=["']([^"'#]+)|<loc>([^<]+)</loc>""")
_NOT_COMPRESSED = ("image/",)
_REASONS = {200: b"OK", 301: b"Moved Permanently", 304: b"Not Modified", 404: b"Not Found"}
# the request headers the server reads, by their lower-case name: the rest are not parsed
_READ = {
    b"if-none-match": "If-None-Match",
    b"if-modified-since": "If-Modified-Since",
    b"accept-encoding": "Accept-Encoding",
    b"connection": "Connection",
}


@dataclass(slots=True)
class Page:
    """One pre-rendered response."""

    status: int
    headers: dict[str, str]
    identity: bytes
    gzipped: bytes | None
    # its response heads, by (status, gzip, keep-alive): the answer to a request is its head
    # and body joined, with no header formatted twice (a recrawl asks every page once more)
    heads: dict[tuple[int, bool, bool], bytes] = field(default_factory=dict)


@dataclass(slots=True)
class Stats:
    """What the server did since it started."""

    requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    body_bytes: int = 0
    misses: int = 0
    connections: int = 0


def _finish(status: int, content_type: str, body: bytes, extra: dict[str, str], mod: str) -> Page:
    headers = {"Content-Type": content_type, **extra}
    headers.setdefault("Last-Modified", mod)
    headers["ETag"] = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    gzipped = None
    if not content_type.startswith(_NOT_COMPRESSED) and body:
        headers["Vary"] = "Accept-Encoding"
        gzipped = gzip.compress(body, compresslevel=6, mtime=0)
    return Page(status, headers, body, gzipped)


def render(site: DemoSite, base: str, path: str) -> Page:
    """Render one request target as a finished page (validators and gzip included)."""
    response = render_path(site, base, path)
    if response is None:
        return Page(400, {"Content-Type": "text/plain"}, b"bad request target\n", None)
    mod = http_date(site.modified)
    return _finish(
        response.status, response.content_type, response.body, dict(response.headers), mod
    )


def prerender(site: DemoSite, base: str) -> dict[str, Page]:
    """Every page reachable from ``/``, robots.txt and sitemap.xml, keyed by request target."""
    pages: dict[str, Page] = {}
    queue = deque(["/", "/robots.txt", "/sitemap.xml"])
    seen = set(queue)
    while queue:
        path = queue.popleft()
        page = render(site, base, path)
        pages[path] = page
        if not page.headers["Content-Type"].startswith(("text/html", "application/xml", "text/")):
            continue
        identity = page.identity
        if page.gzipped is not None:  # rebuilt from gzip on demand: 2 GB less at 20k heavy
            page.identity = b""
        for match in _LINK.finditer(identity):
            raw = (match.group(1) or match.group(2)).decode("utf-8", "replace").strip()
            raw = raw.replace("&amp;", "&")
            parts = urlsplit(raw)
            if parts.scheme and f"{parts.scheme}://{parts.netloc}" != base:
                continue
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            if target.startswith("/") and target not in seen and not target.startswith("/search"):
                seen.add(target)
                queue.append(target)
    return pages


def _request_headers(lines: list[bytes]) -> dict[str, str]:
    """The headers of a request head's ``lines`` (the request line first) that the server
    reads (``_READ``), under their usual spelling; a header sent twice keeps its last value."""
    out = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        key = _READ.get(name.strip().lower())
        if key is not None:
            out[key] = value.strip().decode("latin-1")
    return out


def _head(status: int, headers: dict[str, str], keep: bool, length: int) -> bytes:
    """A response's status line and headers, ``Content-Length`` and ``Connection`` included."""
    parts = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Other"))]
    parts.extend(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers.items())
    parts.append(b"Content-Length: %d\r\n" % length)
    parts.append(b"Connection: keep-alive\r\n\r\n" if keep else b"Connection: close\r\n\r\n")
    return b"".join(parts)


class _Protocol(asyncio.Protocol):
    def __init__(self, server: SiteServer) -> None:
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.stats.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            keep = self.server.answer(head, self)
            if not keep and self.transport is not None:
                self.transport.close()
                return


class SiteServer:
    """The pre-rendered site and its request handling."""

    def __init__(self, site: DemoSite, base: str) -> None:
        self.site = site
        self.base = base
        self.pages = prerender(site, base)
        self.stats = Stats()

    def answer(self, head: bytes, proto: _Protocol) -> bool:
        """Answer one request head; returns whether to keep the connection open."""
        lines = head.split(b"\r\n")
        try:
            method, target, version = lines[0].decode("latin-1").split(" ", 2)
        except ValueError:
            self._send(proto, 400, {"Content-Type": "text/plain"}, b"bad request\n", keep=False)
            return False
        headers = _request_headers(lines)
        keep = headers.get("Connection", "").lower() != "close" and version == "HTTP/1.1"
        if target == "/__stats":
            body = json.dumps(self.stats_dict()).encode()
            self._send(proto, 200, {"Content-Type": "application/json"}, body, keep=keep)
            return keep
        page = self.pages.get(target)
        if page is None:
            self.stats.misses += 1
            page = render(self.site, self.base, target)
        status = page.status
        gzipped = page.gzipped is not None and "gzip" in headers.get("Accept-Encoding", "")
        if status == 200 and not_modified(headers, page.headers):
            status, body = 304, b""
        elif page.gzipped is None:
            body = page.identity
        else:
            body = page.gzipped if gzipped else gzip.decompress(page.gzipped)
        self.stats.requests += 1
        self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1
        self.stats.body_bytes += len(body) if method != "HEAD" else 0
        head_key = (status, gzipped, keep)
        response_head = page.heads.get(head_key)
        if response_head is None:  # built once per page and kind of answer, then reused
            out = dict(page.headers)
            if gzipped:
                out["Content-Encoding"] = "gzip"
            if status == 304:
                out = {k: out[k] for k in ("ETag", "Last-Modified", "Vary") if k in out}
            response_head = page.heads[head_key] = _head(status, out, keep, len(body))
        if proto.transport is not None:
            proto.transport.write(response_head + body if method != "HEAD" else response_head)
        return keep

    def _send(
        self, proto: _Protocol, status: int, headers: dict[str, str], body: bytes, *, keep: bool
    ) -> None:
        if proto.transport is not None:
            proto.transport.write(_head(status, headers, keep, len(body)) + body)

    def stats_dict(self) -> dict[str, object]:
        """The counters, JSON-ready."""
        return {
            "requests": self.stats.requests,
            "by_status": {str(k): v for k, v in sorted(self.stats.by_status.items())},
            "body_bytes": self.stats.body_bytes,
            "misses": self.stats.misses,
            "connections": self.stats.connections,
            "pages": len(self.pages),
        }


def page_sizes(pages: dict[str, Page]) -> dict[str, float]:
    """Identity and gzip sizes of the article and topic pages (KB), to report what is served."""
    article = re.compile(r"/[0-9]{4}/[0-9]{2}/[a-z0-9-]+/$")
    topic = re.compile(r"/topics/[a-z0-9-]+/(?:page/[0-9]+/)?$")
    out: dict[str, float] = {}
    for name, pattern in (("article", article), ("topic", topic)):
        sizes = [
            (len(gzip.decompress(p.gzipped)), len(p.gzipped))
            for path, p in pages.items()
            if pattern.match(path) and p.gzipped is not None and p.status == 200
        ]
        if sizes:
            out[f"{name}_pages"] = len(sizes)
            out[f"{name}_kb_mean"] = round(sum(s for s, _ in sizes) / len(sizes) / 1024, 1)
            out[f"{name}_kb_min"] = round(min(s for s, _ in sizes) / 1024, 1)
            out[f"{name}_kb_max"] = round(max(s for s, _ in sizes) / 1024, 1)
            out[f"{name}_gzip_kb_mean"] = round(sum(g for _, g in sizes) / len(sizes) / 1024, 1)
    return out


def serve(
    articles: int, topics: int, port: int, layout: str = "heavy", host: str = "127.0.0.1"
) -> None:
    """Build, pre-render and serve until killed; prints ``READY <base_url> <json>`` when up."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    base = f"http://{host}:{sock.getsockname()[1]}"
    started = time.perf_counter()
    site = build_site(articles=articles, topics=topics, layout=layout)
    server = SiteServer(site, base)
    info = {
        "layout": layout,
        "articles": len(site.articles),
        "topics": len(site.topics),
        "pages": len(server.pages),
        "prerender_seconds": round(time.perf_counter() - started, 2),
        **page_sizes(server.pages),
    }

    async def main() -> None:
        loop = asyncio.get_running_loop()
        listener = await loop.create_server(lambda: _Protocol(server), sock=sock, backlog=1024)
        print(f"READY {base} {json.dumps(info)}", flush=True)
        async with listener:
            await listener.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


@contextlib.contextmanager
def start_server(
    articles: int, topics: int = 10, layout: str = "heavy"
) -> Iterator[tuple[str, dict[str, object]]]:
    """Run the server as a subprocess; yields (base_url, info) and stops it afterwards."""
    cmd = [sys.executable, "-m", "bench.site_server", "--articles", str(articles)]
    cmd += ["--topics", str(topics), "--layout", layout, "--port", "0"]
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"site server did not start (exit {proc.poll()}): {line!r}")
        _, base, info = line.strip().split(" ", 2)
        yield base, json.loads(info)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def fetch_stats(base: str) -> dict[str, object]:
    """The server's counters (``GET /__stats``)."""
    import urllib.request

    with urllib.request.urlopen(f"{base}/__stats") as reply:
        return dict(json.loads(reply.read()))


async def _load(base: str, paths: list[str], concurrency: int, seconds: float) -> tuple[int, int]:
    """Raw keep-alive GETs (gzip accepted) round-robin over ``paths``; (requests, body bytes)."""
    parts = urlsplit(base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    deadline = time.perf_counter() + seconds
    counter = {"requests": 0, "bytes": 0}

    async def worker(offset: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        i = offset
        while time.perf_counter() < deadline:
            path = paths[i % len(paths)]
            i += concurrency
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Accept-Encoding: gzip\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            counter["requests"] += 1
            counter["bytes"] += length
        writer.close()

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return counter["requests"], counter["bytes"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--layout", choices=LAYOUTS, default="heavy")
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--load", action="store_true", help="measure the server alone and exit")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    if not args.load:
        serve(args.articles, args.topics, args.port, args.layout)
        return
    with start_server(args.articles, args.topics, args.layout) as (base, info):
        print(f"site: {json.dumps(info)}")
        site = build_site(articles=args.articles, topics=args.topics)
        paths = [a.path for a in site.articles]
        before = time.perf_counter()
        cpu_before = time.process_time()
        requests, body = asyncio.run(_load(base, paths, args.concurrency, args.seconds))
        wall = time.perf_counter() - before
        client_cpu = time.process_time() - cpu_before
        stats = fetch_stats(base)
        wrk = _wrk(base + paths[len(paths) // 2], args.concurrency, args.seconds)
    print(
        f"server alone: {requests / wall:,.0f} requests/s at concurrency {args.concurrency} "
        f"({requests:,} article GETs in {wall:.1f} s, {body / wall / 1e6:.1f} MB/s gzip bodies; "
        f"client CPU {client_cpu / wall:.0%} of a core; server counted {stats['requests']:,})"
    )
    if wrk:
        print(f"server alone (wrk, one article URL, concurrency {args.concurrency}): {wrk}")


def _wrk(url: str, concurrency: int, seconds: float) -> str | None:
    """``wrk``'s Requests/sec against one URL, when wrk is installed."""
    if shutil.which("wrk") is None:
        return None
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, int(seconds))}s"]
    cmd += ["-H", "Accept-Encoding: gzip", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    found = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    return f"{float(found.group(1)):,.0f} requests/s" if found else out.strip()


if __name__ == "__main__":
    main()
