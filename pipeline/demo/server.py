"""Serve the demo site over HTTP on loopback: the CLI's demo and the tests' fixture server.

``DemoServer`` runs a stdlib ``ThreadingHTTPServer`` in a background thread and answers with
``render.render_path`` (or a test's override route), adding what a real server adds: ``ETag``
and ``Last-Modified`` validators with 304 answers to conditional requests, gzip when asked,
``Content-Length`` always, HEAD. It records every request so tests can check, from the server's
side, what a crawler did.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TypeVar, overload
from urllib.parse import urlsplit

from pipeline.demo.content import DemoSite
from pipeline.demo.render import Response, http_date, render_path

__all__ = [
    "DemoServer",
    "Handler",
    "RequestHeaders",
    "RequestInfo",
    "RequestRecord",
    "serve_forever_blocking",
]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")
_NOT_COMPRESSED = ("image/",)
_POLL_SECONDS = 0.05  # how fast stop() returns: serve_forever checks for shutdown this often


def _title_case(name: str) -> str:
    """A header name in its usual spelling: ``user-agent`` -> ``User-Agent``."""
    return "-".join(part.capitalize() for part in name.split("-"))


class RequestHeaders(dict[str, str]):
    """Request headers as a dict: keys Title-Cased, looked up case-insensitively.

    ``headers["user-agent"]``, ``headers["User-Agent"]`` and ``"USER-AGENT" in headers`` all
    work whatever spelling the client sent.
    """

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__((_title_case(k), v) for k, v in items)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(_title_case(key))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(_title_case(key))

    @overload
    def get(self, key: str, default: None = None, /) -> str | None: ...
    @overload
    def get(self, key: str, default: str, /) -> str: ...
    @overload
    def get(self, key: str, default: _T, /) -> str | _T: ...
    def get(self, key: str, default: object = None, /) -> object:
        """The header's value, or ``default`` when the request has none."""
        return super().get(_title_case(key), default)


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """A request as an override route sees it.

    Attributes:
        method: ``GET`` or ``HEAD``.
        path: the request target: path and query as sent.
        headers: the request headers (case-insensitive keys).
        base_url: the server's base URL, for building absolute links.
    """

    method: str
    path: str
    headers: RequestHeaders
    base_url: str


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One logged request: what was asked and the status it got.

    Attributes:
        method: ``GET`` or ``HEAD``.
        path: the request target (path and query).
        headers: the request headers (case-insensitive keys).
        status: the status sent (304 for a conditional hit).
        time: ``time.monotonic()`` when the request arrived.
    """

    method: str
    path: str
    headers: RequestHeaders
    status: int
    time: float


Handler = Callable[[RequestInfo], Response]
"""An override route: gets the request, returns the response (validators and gzip are added)."""


class DemoServer:
    """The demo site served on a free loopback port from a background thread.

    Use it as a context manager::

        with DemoServer(build_site()) as server:
            urllib.request.urlopen(server.base_url + "/robots.txt")

    Args:
        site: the site to serve; ``set_site`` swaps it while running.
        host: the address to bind.
        port: the port to bind (0: any free port).
        routes: path prefix -> handler; the longest matching prefix wins over the site.
    """

    def __init__(
        self,
        site: DemoSite,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        routes: Mapping[str, Handler] | None = None,
    ) -> None:
        self._site = site
        self._address = (host, port)
        self._routes = sorted((routes or {}).items(), key=lambda kv: len(kv[0]), reverse=True)
        self._lock = threading.Lock()
        self._log: list[RequestRecord] = []
        self._connections: set[socket.socket] = set()
        self._httpd: _DemoHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> DemoServer:
        """Bind and serve in a daemon thread (no-op when already running).

        Returns:
            The server itself.

        Raises:
            OSError: the address cannot be bound (port in use).
        """
        if self._httpd is not None:
            return self
        httpd = _DemoHTTPServer(self._address, _DemoRequestHandler, demo=self)
        self._httpd = httpd
        host, port = httpd.server_address[:2]
        self._base_url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": _POLL_SECONDS},
            name=f"demo-server-{httpd.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        logger.debug("demo site serving at %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and open connections, join the thread (idempotent)."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            open_connections = list(self._connections)
        for connection in open_connections:  # idle keep-alive connections would linger
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                logger.debug("connection already closed")
        thread.join()
        self._httpd = self._thread = None

    def wait(self) -> None:
        """Block until the serving thread ends (``stop`` from another thread, or Ctrl-C)."""
        if self._thread is not None:
            self._thread.join()

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the server (after ``stop``: where it was).

        Raises:
            RuntimeError: the server was never started.
        """
        if self._base_url is None:
            raise RuntimeError("DemoServer was not started: call start() or use it in a with block")
        return self._base_url

    @property
    def site(self) -> DemoSite:
        """The site being served."""
        with self._lock:
            return self._site

    def set_site(self, site: DemoSite) -> None:
        """Serve ``site`` from the next request on (a site that changed between crawls).

        Args:
            site: the new site.
        """
        with self._lock:
            self._site = site

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the requests served so far, oldest first."""
        with self._lock:
            return list(self._log)

    def clear_requests(self) -> None:
        """Forget the requests logged so far."""
        with self._lock:
            self._log.clear()

    def respond(self, request: RequestInfo) -> tuple[int, dict[str, str], bytes]:
        """Answer one request: route or site, then validators, 304, gzip; and log it.

        Args:
            request: the request.

        Returns:
            Status, headers and the body to send (empty for 304; HEAD callers send none).
        """
        received = time.monotonic()
        site = self.site
        response = self._route(site, request)
        status, headers, body = _finish(request, response, site)
        record = RequestRecord(request.method, request.path, request.headers, status, received)
        with self._lock:
            self._log.append(record)
        return status, headers, body

    def _route(self, site: DemoSite, request: RequestInfo) -> Response:
        """The override route's response, else the site's (400 for a non-path target)."""
        path = urlsplit(request.path).path
        for prefix, handler in self._routes:
            if path.startswith(prefix):
                return handler(request)
        found = render_path(site, request.base_url, request.path)
        return found or Response(400, "text/plain; charset=utf-8", b"bad request target\n")

    def _track(self, connection: socket.socket, *, opened: bool) -> None:
        """Remember open connections, so ``stop`` can close idle keep-alive ones."""
        with self._lock:
            if opened:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)


def _finish(
    request: RequestInfo, response: Response, site: DemoSite
) -> tuple[int, dict[str, str], bytes]:
    """Add Content-Type, validators and encoding; turn a conditional hit into a 304."""
    body = response.body
    headers = {"Content-Type": response.content_type, **response.headers}
    headers.setdefault("Last-Modified", http_date(site.modified))
    headers["ETag"] = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    if not response.content_type.startswith(_NOT_COMPRESSED):
        headers["Vary"] = "Accept-Encoding"
        if body and _accepts_gzip(request.headers.get("Accept-Encoding", "")):
            body = gzip.compress(body, mtime=0)
            headers["Content-Encoding"] = "gzip"
    headers["Content-Length"] = str(len(body))  # for a 304 or HEAD: what a GET would get
    if response.status == 200 and not_modified(request.headers, headers):
        kept = ("ETag", "Last-Modified", "Vary", "Content-Length")
        return 304, {k: headers[k] for k in kept if k in headers}, b""
    return response.status, headers, body


def _accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding value allows gzip (``gzip`` or ``*`` with q > 0)."""
    for item in accept_encoding.split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            q = params.strip().removeprefix("q=")
            try:
                return not params or float(q) > 0
            except ValueError:
                return False
    return False


def not_modified(request: Mapping[str, str], headers: Mapping[str, str]) -> bool:
    """RFC 9110 evaluation: If-None-Match wins; else If-Modified-Since against Last-Modified."""
    if_none_match = request.get("If-None-Match")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or headers["ETag"] in tags
    if_modified_since = request.get("If-Modified-Since")
    if if_modified_since is None:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False  # an invalid date is ignored, as RFC 9110 says
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return parsedate_to_datetime(headers["Last-Modified"]) <= since


class _DemoHTTPServer(ThreadingHTTPServer):
    """The stdlib threading server, holding its ``DemoServer`` and logging errors quietly."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        demo: DemoServer,
    ) -> None:
        self.demo = demo
        super().__init__(address, handler)

    def handle_error(self, request: object, client_address: object) -> None:
        """Log a failed request instead of printing a traceback to stderr."""
        logger.debug("error serving %s", client_address, exc_info=True)


class _DemoRequestHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; GET and HEAD; silent (no stderr access log)."""

    protocol_version = "HTTP/1.1"
    server_version = "MedGuideDemo/1.0"
    sys_version = ""
    timeout = 30  # seconds an idle keep-alive connection is kept
    server: _DemoHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without NODELAY, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every keep-alive response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.demo._track(self.connection, opened=True)

    def finish(self) -> None:
        self.server.demo._track(self.connection, opened=False)
        super().finish()

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, *, send_body: bool) -> None:
        demo = self.server.demo
        headers = RequestHeaders(self.headers.items())
        request = RequestInfo(self.command, self.path, headers, demo.base_url)
        status, response_headers, body = demo.respond(request)
        self.send_response(status)
        for name, value in response_headers.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body and body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Send the access log to ``logging`` at debug level, never to stderr."""
        logger.debug("%s " + format, self.address_string(), *args)


def serve_forever_blocking(
    site: DemoSite,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    on_ready: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve ``site`` until ``stop`` is set or Ctrl-C (for ``crawldex demo --serve``).

    Prints nothing: the caller learns the URL through ``on_ready`` and prints it.

    Args:
        site: the site to serve.
        host: the address to bind.
        port: the port to bind (0: any free port).
        on_ready: called with the base URL once the server accepts connections.
        stop: set it (from another thread) to stop serving; None serves until interrupted.

    Raises:
        OSError: the address cannot be bound.
    """
    with DemoServer(site, host=host, port=port) as server:
        if on_ready is not None:
            on_ready(server.base_url)
        (stop or threading.Event()).wait()
