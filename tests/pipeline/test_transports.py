"""Both transports under the run's httpx2 client (``crawl.transport``) against a real server.

``pipeline.fetch.transports.AiohttpTransport`` must hand ``fetch.py`` what httpx2's own transport
hands it: the same URL on the wire, the same response, and the same httpx2 exception (so the same
retry decision) for each way a server can fail. Each test runs once per transport.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading

import pytest

from pipeline.config import CrawlSettings
from pipeline.errors import FetchError, FetchTimeout
from pipeline.fetch import fetch_page, make_client
from pipeline.models import Fetched, Target, Validators
from tests.faults import FaultServer, Hit, Reply, html

pytestmark = pytest.mark.parametrize("transport", ["aiohttp", "httpx2"])


def fetch(transport: str, *urls: str, **crawl: object) -> list[Fetched | FetchError]:
    """``fetch_page`` each URL in turn on one client; a ``FetchError`` is returned, not raised."""
    settings = CrawlSettings(
        transport=transport, retries=0, timeout=crawl.pop("timeout", 2), deadline=5, **crawl
    )

    async def go() -> list[Fetched | FetchError]:
        out: list[Fetched | FetchError] = []
        async with make_client(settings) as client:
            for url in urls:
                try:
                    out.append(
                        await fetch_page(
                            client, Target(url=url, site="s"), settings=settings, scope=_any
                        )
                    )
                except FetchError as exc:
                    out.append(exc)
        return out

    return asyncio.run(go())


def _any(_url: str) -> None:
    return None


def page(text: str):
    return lambda hit, reply: reply.send(200, html(f"<p>{text}</p>"))


#: Escapes a URL library might "normalize": %7e is "~", %2f is "/" (which changes the query).
WIRE_PATH = "/caf%C3%A9/%7euser/a%2Fb/?q=%2f&x=%E2%9C%93"


def test_the_url_reaches_the_server_as_httpx2_encoded_it(transport):
    with FaultServer({"/*": page("ok")}) as server:
        [got] = fetch(transport, server.url(WIRE_PATH))
        [hit] = server.requests()
    assert isinstance(got, Fetched)
    assert got.status == 200
    assert hit.path == WIRE_PATH


def test_the_headers_sent_are_the_clients(transport):
    with FaultServer({"/": page("ok")}) as server:
        [got] = fetch(transport, server.url("/"))
        [hit] = server.requests()
    assert isinstance(got, Fetched)
    assert hit.headers["user-agent"] == CrawlSettings().user_agent
    assert hit.headers["accept-encoding"] == "gzip, deflate"
    assert hit.headers["accept"].startswith("text/html")
    assert hit.headers["host"] == f"127.0.0.1:{server.port}"


def test_conditional_get_and_keep_alive(transport):
    def conditional(hit: Hit, reply: Reply) -> None:
        if hit.headers.get("if-none-match") == '"v1"':
            reply.send(304, b"", etag='"v1"')
        else:
            reply.send(200, html("<p>v1</p>"), etag='"v1"')

    with FaultServer({"/p": conditional}) as server:
        settings = CrawlSettings(transport=transport, retries=0, timeout=2, deadline=5)

        async def go() -> list[Fetched]:
            async with make_client(settings) as client:
                target = Target(url=server.url("/p"), site="s")
                first = await fetch_page(client, target, settings=settings, scope=_any)
                second = await fetch_page(
                    client, target, settings=settings, scope=_any, validators=first.validators
                )
                return [first, second]

        first, second = asyncio.run(go())
        hits = server.requests()
    assert (first.status, first.validators) == (200, Validators(etag='"v1"'))
    assert "v1" in first.text
    assert second.not_modified
    assert second.status == 304
    assert [h.connection for h in hits] == [1, 1]  # the 304 came over the same connection


def test_gzip_is_decoded_by_the_client(transport):
    body = html("<p>" + "squeezed words " * 500 + "</p>")

    def gzipped(hit: Hit, reply: Reply) -> None:
        reply.send(200, gzip.compress(body), content_encoding="gzip")

    with FaultServer({"/": gzipped}) as server:
        [got] = fetch(transport, server.url("/"))
    assert isinstance(got, Fetched)
    assert got.text == body.decode()
    assert got.size == len(body)


def test_a_20_kb_header_line_is_accepted(transport):
    cookie = "c=" + "x" * 20_000

    def big_head(hit: Hit, reply: Reply) -> None:
        reply.send(200, html("<p>fine</p>"), set_cookie=cookie)

    with FaultServer({"/": big_head}) as server:
        [got] = fetch(transport, server.url("/"))
    assert isinstance(got, Fetched)
    assert "fine" in got.text


@pytest.mark.parametrize(
    "wire",
    [
        b"HTTP/1.1 two hundred OK\r\nContent-Length: 2\r\n\r\nhi",  # malformed status line
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n<html>cut short",  # truncated body
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot a chunk\r\n",
        b"",  # closed without a response
    ],
    ids=["bad-status-line", "truncated", "bad-chunking", "no-response"],
)
def test_a_broken_response_is_a_transient_fetch_error(transport, wire):
    with FaultServer({"/": lambda hit, reply: reply.raw(wire)}) as server:
        [got] = fetch(transport, server.url("/"))
        hits = server.requests()
    assert isinstance(got, FetchError)
    assert not isinstance(got, FetchTimeout)
    assert got.transient, got
    assert len(hits) == 1  # no attempt hidden in the transport: retries are fetch.py's, counted


def test_a_reset_is_not_resent_behind_our_back(transport):
    with FaultServer({"/": lambda hit, reply: reply.reset()}) as server:
        [got] = fetch(transport, server.url("/"))
        hits = server.requests()
    assert isinstance(got, FetchError)
    assert got.transient
    assert len(hits) == 1


def test_a_refused_connection_is_a_transient_fetch_error(transport):
    with socket.socket() as probe:  # a port nobody listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        [got] = fetch(transport, f"http://127.0.0.1:{port}/")
    assert isinstance(got, FetchError)
    assert got.transient
    assert "ConnectError" in str(got)


def test_a_server_that_stops_sending_hits_the_read_timeout(transport):
    def stall(hit: Hit, reply: Reply) -> None:
        reply.head(200, {"Content-Type": "text/html", "Content-Length": "100"})
        reply.body(b"<html>")
        hit_done.wait(5)  # hold the response open until the client has given up

    hit_done = threading.Event()
    with FaultServer({"/": stall}) as server:
        try:
            [got] = fetch(transport, server.url("/"), timeout=0.3)
        finally:
            hit_done.set()
    assert isinstance(got, FetchTimeout)
    assert "timed out after 0.3s" in str(got)  # the read timeout, not the 5 s deadline
