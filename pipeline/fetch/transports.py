"""What carries the fetch stage's requests: the transport under the run's ``httpx2.AsyncClient``.

The client (``pipeline.fetch.make_client``) is httpx2's in every case: its requests, responses,
redirect policy, content decoding, exceptions and ``MockTransport`` are what ``fetch.py`` and its
tests are written against. Underneath, ``crawl.transport`` picks who speaks HTTP/1.1 on the wire:

- ``aiohttp`` (the default): ``AiohttpTransport``, aiohttp's connection pool and C response
  parser behind httpx2's transport interface, the pattern of karpetrosyan/httpx-aiohttp (which
  targets httpx, not httpx2). On the bench site a conditional GET answered 304 costs ~0.27 ms
  of CPU through it against ~0.46 ms through httpx2's own pool, a full 40 KB page ~0.48 against
  ~0.78 (bench/README.md, "The fetch layer").
- ``httpx2``: httpx2's own ``AsyncHTTPTransport`` (httpcore2), with the idle-connection check
  below.

Either way the TLS settings are one ``SSLContext`` per process (certifi's CA bundle, verified).
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Iterable
from typing import Literal

import aiohttp
import anyio.abc
import httpx2
import yarl
from httpcore2 import AsyncNetworkStream
from httpcore2._backends.anyio import AnyIOBackend, AnyIOStream
from httpcore2._types import SOCKET_OPTION
from httpcore2._utils import is_socket_readable

__all__ = ["AiohttpTransport", "Transport", "make_transport", "tls_context"]

Transport = Literal["aiohttp", "httpx2"]

#: Longest status or header line, and one header's size, a response may have (h11, under
#: httpx2's own transport, allows ~100 KB of head; aiohttp's defaults are 8 KB and 128 fields).
_MAX_LINE = 64 * 1024
_MAX_HEADERS = 512
#: Statuses whose responses have no body (RFC 9110, 6.4.1).
_BODILESS = frozenset({204, 304})


def make_transport(kind: Transport, limits: httpx2.Limits) -> httpx2.AsyncBaseTransport:
    """The transport of one run's client.

    Args:
        kind: ``crawl.transport``.
        limits: the client's pool limits (aiohttp's pool takes ``max_connections``).
    """
    if kind == "aiohttp":
        return AiohttpTransport(max_connections=limits.max_connections)
    transport = httpx2.AsyncHTTPTransport(verify=tls_context(), limits=limits, trust_env=False)
    _use_quick_idle_checks(transport)
    return transport


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS settings of every run's client: httpx2's default (certifi's CA bundle, verified).

    Built once per process: loading the CA bundle took ~60 ms of CPU, paid again by every
    scheduled run of the daemon (a steady-state run takes 1-4 s). An ``SSLContext`` may be
    shared between clients and threads; a CA bundle updated on disk is read at the next start.
    """
    return httpx2.create_ssl_context(trust_env=False)


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """httpx2's transport interface over an ``aiohttp.ClientSession``.

    The session only moves bytes: headers, redirects, cookies and content decoding stay httpx2's
    (aiohttp adds no header the request already has, ``allow_redirects=False``, a dummy cookie
    jar, ``auto_decompress=False``), so a response reaches ``fetch.py`` as httpx2's own
    transport hands it over, gzip and all, and the size cap still applies after decompression.
    aiohttp's exceptions are raised as the httpx2 exceptions the same failure raises through
    httpx2's own transport (``_httpx2_error``).

    The session is opened on the first request (it must be made inside the running event loop)
    and closed by ``aclose``; httpx2's ``connect`` and ``read`` timeouts become aiohttp's
    ``sock_connect`` and ``sock_read``, its ``pool`` timeout aiohttp's ``connect`` (waiting for
    a pooled connection included). aiohttp has no write timeout; ``crawl.deadline`` bounds a
    whole response in ``fetch.py`` either way, and a bare ``TimeoutError`` aiohttp lets through
    is a ``FetchTimeout`` there too.
    """

    def __init__(self, *, max_connections: int | None) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections or 0,  # 0: no limit, as httpx2's None
                limit_per_host=0,
                ssl=tls_context(),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                max_line_size=_MAX_LINE,
                max_field_size=_MAX_LINE,
                max_headers=_MAX_HEADERS,
            )
            # aiohttp resends an idempotent request once, at once, when its connection is reset
            # or closed, even a fresh one; fetch.py retries transient failures itself, with
            # backoff and counted. A stale pooled connection is dropped before reuse either
            # way (aiohttp sees the server's close). Private, as httpx2's backend below: if a
            # release renames it, only the extra attempt comes back.
            if hasattr(self._session, "_retry_connection"):
                self._session._retry_connection = False
        return self._session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        timeouts = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeouts.get("pool"),
            sock_connect=timeouts.get("connect"),
            sock_read=timeouts.get("read"),
        )
        body = await request.aread()
        try:
            response = await self._open().request(
                request.method,
                yarl.URL(str(request.url), encoded=True),  # httpx2 has percent-encoded it
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                timeout=timeout,
            )
        except aiohttp.ClientError as exc:
            raise _httpx2_error(exc, request) from exc
        major, minor = response.version or (1, 1)
        reason = (response.reason or "").encode("latin-1", "replace")
        extensions = {"http_version": f"HTTP/{major}.{minor}".encode(), "reason_phrase": reason}
        if response.status in _BODILESS:
            # No body by definition (aiohttp's parser reads none): the connection goes back to
            # the pool now, and the response is handed over read, so that the 304s of a
            # recrawl do not each go through an empty body's async iterators.
            response.release()
            empty = httpx2.Response(
                response.status,
                headers=response.raw_headers,
                stream=httpx2.ByteStream(b""),
                extensions=extensions,
            )
            empty.read()
            return empty
        return httpx2.Response(
            response.status,
            headers=response.raw_headers,
            stream=_AiohttpBody(response, request),
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _AiohttpBody(httpx2.AsyncByteStream):
    """A response body read from aiohttp as it arrives; closing it before its end drops the
    connection (aiohttp reuses only a connection whose body was read to the end)."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx2.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except aiohttp.ClientError as exc:
            raise _httpx2_error(exc, self._request) from exc

    async def aclose(self) -> None:
        self._response.release()


#: aiohttp's exceptions (most specific first) and what httpx2's own transport raises for the
#: same failure: the kind decides whether ``fetch.py`` retries it.
_ERRORS: tuple[tuple[type[Exception], type[httpx2.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx2.ConnectTimeout),
    (aiohttp.ServerTimeoutError, httpx2.ReadTimeout),  # SocketTimeoutError: sock_read
    (aiohttp.ClientConnectorError, httpx2.ConnectError),  # refused, DNS, TLS handshake
    (aiohttp.ServerDisconnectedError, httpx2.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx2.RemoteProtocolError),  # truncated or bad chunking
    (aiohttp.ClientResponseError, httpx2.RemoteProtocolError),  # a malformed status or header
    (aiohttp.InvalidURL, httpx2.UnsupportedProtocol),
    (aiohttp.ClientOSError, httpx2.ReadError),  # reset by peer
)


def _httpx2_error(exc: aiohttp.ClientError, request: httpx2.Request) -> httpx2.TransportError:
    """The httpx2 exception for an aiohttp one (``NetworkError`` for any other ``ClientError``)."""
    message = f"{type(exc).__name__}: {exc}"
    for theirs, ours in _ERRORS:
        if isinstance(exc, theirs):
            return ours(message, request=request)
    return httpx2.NetworkError(message, request=request)


class _QuickIdleCheckStream(AnyIOStream):
    """An ``AnyIOStream`` that checks whether an idle connection was closed by its server
    without asking anyio for the socket.

    httpcore2's pool asks every idle connection, on every request, whether the server closed it
    (``get_extra_info("is_readable")``); anyio answers each question by building its table of
    socket attributes, a ``getpeername`` system call included. With a pool of 16-64 mostly idle
    connections that was 15 % of an all-304 recrawl's time.
    """

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        super().__init__(stream)
        self._socket = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)

    def get_extra_info(self, info: str) -> object:
        if info == "is_readable" and self._socket is not None:
            return is_socket_readable(self._socket)
        return super().get_extra_info(info)


class _QuickIdleCheckBackend(AnyIOBackend):
    """httpcore2's anyio backend, handing out ``_QuickIdleCheckStream``s (plain TCP; a TLS
    stream is anyio's own)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        stream = await super().connect_tcp(host, port, timeout, local_address, socket_options)
        if isinstance(stream, AnyIOStream):
            return _QuickIdleCheckStream(stream._stream)
        return stream


def _use_quick_idle_checks(transport: httpx2.AsyncHTTPTransport) -> None:
    """Put ``_QuickIdleCheckBackend`` under ``transport``'s pool (httpx2 has no option for it).

    Both attributes are private: if a release renames them, the pool keeps its own backend.
    """
    pool = getattr(transport, "_pool", None)
    if pool is not None and hasattr(pool, "_network_backend"):
        pool._network_backend = _QuickIdleCheckBackend()
