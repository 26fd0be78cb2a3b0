"""A fault-injecting HTTP server on loopback, for testing the crawler against misbehaving sites.

``FaultServer`` speaks just enough HTTP/1.1 over raw sockets (keep-alive included) to do what a
real server can do to a crawler and ``http.server`` cannot: trickle a body one byte at a time,
hold a response open, reset the connection, send a gzip bomb. Routes map a path (exact, or a
prefix ending in ``*``) to a behaviour ``(Hit, Reply) -> None``. Every request is logged as a
``Hit`` with server-side timestamps, the Host it was addressed to, how many body bytes went out
and whether the client hung up early, so tests assert what the server saw, and when.

Two hosts on one server: ``http://127.0.0.1:PORT`` and ``http://localhost:PORT`` (both loopback;
the crawler treats them as different hosts).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

__all__ = [
    "FaultServer",
    "Hit",
    "Reply",
    "article_html",
    "gzip_bomb_chunks",
    "html",
    "killed_parent",
    "process_gone",
    "wait_for",
]


@dataclass(slots=True)
class Hit:
    """One request as the server saw it (times are ``time.monotonic()``; ``wall`` is epoch)."""

    method: str
    path: str
    host: str
    headers: dict[str, str]
    arrived: float
    wall: float
    finished: float | None = None
    sent: int = 0  # body bytes written before the response ended or the client hung up
    hung_up: bool = False  # the client closed the connection before the whole body went out
    connection: int = 0  # which TCP connection it came on (1, 2, ... in order of accept)


class Reply:
    """What a behaviour writes to the client."""

    def __init__(self, sock: socket.socket, hit: Hit) -> None:
        self._sock = sock
        self.hit = hit
        self.keep_alive = True

    def head(self, status: int, headers: Mapping[str, str] | None = None) -> None:
        """Status line and headers."""
        lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def body(self, data: bytes) -> bool:
        """Send body bytes; False when the client has hung up."""
        try:
            self._sock.sendall(data)
        except OSError:
            self.hit.hung_up = True
            self.keep_alive = False
            return False
        self.hit.sent += len(data)
        return True

    def send(self, status: int, body: bytes = b"", **headers: str) -> None:
        """A whole response with Content-Length."""
        merged = {"Content-Type": "text/html; charset=utf-8", **_dashed(headers)}
        merged["Content-Length"] = str(len(body))
        self.head(status, merged)
        self.body(body)

    def stream(self, status: int, chunks: Iterator[bytes], every: float = 0.0, **headers: str):
        """Send ``chunks`` one by one (``every`` seconds apart), then close the connection."""
        self.keep_alive = False
        self.head(status, {"Connection": "close", **_dashed(headers)})
        for chunk in chunks:
            if not self.body(chunk):
                return
            if every:
                time.sleep(every)  # the fault itself: a slow server, not test synchronisation

    def raw(self, data: bytes) -> None:
        """Bytes exactly as given (a malformed head, a body cut short), then close."""
        self.keep_alive = False
        self.body(data)

    def reset(self) -> None:
        """Abort the connection with a TCP RST."""
        self.keep_alive = False
        self._sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        self._sock.close()


Behaviour = Callable[[Hit, Reply], None]


def _dashed(headers: Mapping[str, str]) -> dict[str, str]:
    """``retry_after=`` -> ``Retry-After``."""
    return {"-".join(p.capitalize() for p in k.split("_")): v for k, v in headers.items()}


@dataclass
class FaultServer:
    """Serve ``routes`` on 127.0.0.1 from a background thread; use as a context manager."""

    routes: dict[str, Behaviour] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _in_flight: dict[str, int] = field(default_factory=dict)
    max_in_flight: dict[str, int] = field(default_factory=dict)
    connections: int = 0  # TCP connections accepted so far

    def __enter__(self) -> FaultServer:
        server = self

        class _Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                server._serve_connection(self.request)

        self._tcp = socketserver.ThreadingTCPServer(
            ("127.0.0.1", 0), _Handler, bind_and_activate=False
        )
        self._tcp.daemon_threads = True
        self._tcp.allow_reuse_address = True
        self._tcp.server_bind()
        self._tcp.server_activate()
        self.port = self._tcp.server_address[1]
        self._thread = threading.Thread(target=self._tcp.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._tcp.shutdown()
        self._tcp.server_close()
        self._thread.join()

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        """An absolute URL on this server, addressed to ``host`` (127.0.0.1 or localhost)."""
        return f"http://{host}:{self.port}{path}"

    def requests(self, path: str | None = None, host: str | None = None) -> list[Hit]:
        """Logged hits, oldest first, optionally only for one path (without query) or host."""
        with self._lock:
            hits = list(self.hits)
        return [
            h
            for h in hits
            if (path is None or h.path.split("?")[0] == path) and (host is None or h.host == host)
        ]

    # -- serving -----------------------------------------------------------------------------
    def _serve_connection(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb")
        with self._lock:
            self.connections += 1
            connection = self.connections
        try:
            while True:
                hit = self._read_request(reader)
                if hit is not None:
                    hit.connection = connection
                if hit is None or not self._answer(sock, hit):
                    return
        except OSError:
            return
        finally:
            reader.close()
            with contextlib.suppress(OSError):
                sock.close()

    def _read_request(self, reader) -> Hit | None:
        line = reader.readline(65536)
        if not line.strip():
            return None
        method, target, _version = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            raw = reader.readline(65536)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        host = headers.get("host", "").rsplit(":", 1)[0]
        return Hit(method, target, host, headers, time.monotonic(), time.time())

    def _answer(self, sock: socket.socket, hit: Hit) -> bool:
        with self._lock:
            self.hits.append(hit)
            now = self._in_flight[hit.host] = self._in_flight.get(hit.host, 0) + 1
            self.max_in_flight[hit.host] = max(self.max_in_flight.get(hit.host, 0), now)
        reply = Reply(sock, hit)
        try:
            self._route(hit.path.split("?")[0])(hit, reply)
        finally:
            hit.finished = time.monotonic()
            with self._lock:
                self._in_flight[hit.host] -= 1
        return reply.keep_alive

    def _route(self, path: str) -> Behaviour:
        if path in self.routes:
            return self.routes[path]
        prefixes = [p for p in self.routes if p.endswith("*") and path.startswith(p[:-1])]
        if prefixes:
            return self.routes[max(prefixes, key=len)]
        return lambda hit, reply: reply.send(404, b"<html><body>not found</body></html>")


# -- bodies ----------------------------------------------------------------------------------
def html(body: str, title: str = "page", head: str = "") -> bytes:
    """A small HTML page."""
    return (
        f"<!doctype html><html><head><title>{title}</title>{head}</head><body>{body}</body></html>"
    ).encode()


def article_html(title: str, *, charset_meta: str = "utf-8", paragraphs: int = 6) -> str:
    """An article page the extractor recognises (JSON-free: h1, time, paragraphs)."""
    text = "".join(
        f"<p>Paragraph {i} of {title} discusses café dosing, naïve patients and the “evidence” "
        f"gathered over many years by clinicians in several countries.</p>"
        for i in range(paragraphs)
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="{charset_meta}">'
        f'<title>{title}</title><meta property="og:type" content="article"></head><body>'
        f'<article><h1>{title}</h1><time datetime="2025-11-01">1 Nov 2025</time>{text}</article>'
        "</body></html>"
    )


def gzip_bomb_chunks(megabytes: int, chunk_mb: int = 1) -> tuple[bytes, bytes, int]:
    """A gzip stream of ``megabytes`` MiB of zeros as (first chunk, repeated chunk, repeats).

    After a full flush deflate's output for the same input repeats exactly, so a huge bomb costs
    one small compressed block sent many times.
    """
    block = b"\0" * (chunk_mb << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    second = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    third = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    assert second == third, "deflate output after a full flush should repeat"
    return first, second, megabytes // chunk_mb - 1


def http_date_in(seconds: float) -> str:
    """An HTTP date ``seconds`` from now."""
    return formatdate(time.time() + seconds, usegmt=True)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll an observable condition until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling an observable condition with a deadline


def process_gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (a zombie waiting for its parent counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return any(line.split()[1:2] == ["Z"] for line in status.splitlines() if "State:" in line)


def killed_parent(script: str, *args: str) -> int:
    """Run ``script`` (it starts a child, prints the child's pid, then SIGKILLs itself) from the
    repository root; check it died of the signal without a traceback, and return the pid."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert "Traceback" not in done.stderr  # nobody to answer: the child says nothing
    return int(done.stdout.split()[0])
