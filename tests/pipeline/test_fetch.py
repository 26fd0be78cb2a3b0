"""Fetch: error mapping, retries, redirects, size caps and decoding, with httpx2.MockTransport."""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import Callable

import httpx2
import pytest

from pipeline import fetch as fetch_module
from pipeline.config import CrawlSettings
from pipeline.errors import BadStatus, FetchError, FetchTimeout, PageSkipped, TooLarge
from pipeline.fetch import decode_html, fetch_page, make_client, parse_retry_after
from pipeline.models import Target, Validators

HTML = b"<html><head><title>t</title></head><body><p>caf\xc3\xa9</p></body></html>"
TARGET = Target(url="http://site.test/a/", site="s")


def run_fetch(
    handler: Callable[[httpx2.Request], httpx2.Response],
    *,
    settings: CrawlSettings | None = None,
    scope=lambda url: None,
    validators: Validators | None = None,
    target: Target = TARGET,
):
    settings = settings or CrawlSettings(retries=2, backoff=0.01)
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    async def go():
        async with make_client(settings, transport=httpx2.MockTransport(handler)) as client:
            return await fetch_page(
                client,
                target,
                settings=settings,
                scope=scope,
                validators=validators,
                sleep=fake_sleep,
            )

    return asyncio.run(go()), waits


def html_response(body: bytes = HTML, status: int = 200, **headers: str) -> httpx2.Response:
    return httpx2.Response(
        status, content=body, headers={"content-type": "text/html; charset=utf-8", **headers}
    )


def test_ok_page_is_decoded_and_carries_validators():
    fetched, _ = run_fetch(
        lambda r: html_response(etag='"v1"', **{"last-modified": "Sat, 01 Nov 2025 09:30:00 GMT"})
    )
    assert fetched.status == 200
    assert "café" in fetched.text
    assert fetched.validators == Validators(
        etag='"v1"', last_modified="Sat, 01 Nov 2025 09:30:00 GMT"
    )
    assert fetched.size == len(HTML)


def test_user_agent_and_conditional_headers_are_sent():
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(304)

    fetched, _ = run_fetch(
        handler, validators=Validators(etag='"v1"', last_modified="Sat, 01 Nov 2025 09:30:00 GMT")
    )
    assert fetched.not_modified
    assert fetched.text == ""
    assert seen[0].headers["user-agent"].startswith("crawldex/")
    assert seen[0].headers["if-none-match"] == '"v1"'
    assert seen[0].headers["if-modified-since"] == "Sat, 01 Nov 2025 09:30:00 GMT"


def test_a_page_request_is_the_request_client_stream_would_send():
    """``Client.get_page`` skips httpx2's merges and layers; what it sends must not change:
    the same headers (the client's, then the conditional ones), timeouts, and the cookies a
    response set."""
    settings = CrawlSettings(timeout=7.0)
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, headers={"set-cookie": "session=abc; Path=/"})

    conditional = {"If-None-Match": '"v1"'}

    async def go() -> None:
        transport = httpx2.MockTransport(handler)
        async with make_client(settings, transport=transport) as client:
            for _ in range(2):  # the first sets the cookie, the second sends it back
                async with client.stream("GET", TARGET.url, headers=conditional) as response:
                    await response.aread()
            response = await client.get_page(TARGET.url, conditional)
            await response.aclose()
            assert response.request is seen[2]

    asyncio.run(go())
    first, through_stream, through_page = seen
    assert "cookie" not in first.headers
    assert through_stream.headers["cookie"] == "session=abc"
    assert through_page.url == through_stream.url
    assert through_page.method == through_stream.method == "GET"
    assert through_page.headers.multi_items() == through_stream.headers.multi_items()
    assert through_page.extensions["timeout"] == through_stream.extensions["timeout"]
    assert through_page.extensions["timeout"]["read"] == 7.0


@pytest.mark.parametrize("location", ["http://site.test:x/b/", "http://[::1/b/"])
def test_a_redirect_nobody_can_send_is_skipped(location: str):
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/a/":
            return httpx2.Response(302, headers={"location": location})
        return html_response()

    with pytest.raises(PageSkipped) as info:
        run_fetch(handler)
    assert info.value.reason == "redirect_out_of_scope"


def test_404_is_permanent_and_not_retried():
    calls = []

    def handler(request):
        calls.append(request)
        return html_response(b"gone", status=404)

    with pytest.raises(BadStatus) as info:
        run_fetch(handler)
    assert info.value.status == 404
    assert not info.value.transient
    assert len(calls) == 1


def test_5xx_is_retried_with_growing_backoff_then_fails():
    calls = []

    def handler(request):
        calls.append(request)
        return html_response(b"oops", status=502)

    settings = CrawlSettings(retries=3, backoff=1.0)
    with pytest.raises(BadStatus) as info:
        run_fetch(handler, settings=settings)
    assert info.value.status == 502
    assert info.value.transient
    assert len(calls) == 4


def test_5xx_then_success_returns_the_page():
    responses = [html_response(status=503), html_response(status=500), html_response()]
    fetched, waits = run_fetch(lambda r: responses.pop(0))
    assert fetched.status == 200
    assert len(waits) == 2
    assert 0.005 <= waits[0] <= 0.015
    assert 0.01 <= waits[1] <= 0.03


def test_retry_after_seconds_is_waited():
    responses = [html_response(status=429, **{"retry-after": "7"}), html_response()]
    fetched, waits = run_fetch(lambda r: responses.pop(0))
    assert fetched.status == 200
    assert waits == [7.0]


def test_long_retry_after_gives_up_and_reports_it():
    with pytest.raises(BadStatus) as info:
        run_fetch(lambda r: html_response(status=503, **{"retry-after": "3600"}))
    assert info.value.retry_after == 3600.0


def test_parse_retry_after_http_date():
    from datetime import UTC, datetime

    now = datetime(2025, 11, 1, 9, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Sat, 01 Nov 2025 09:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None


def test_timeout_maps_to_fetch_timeout_with_a_hint():
    def handler(request):
        raise httpx2.ReadTimeout("slow", request=request)

    with pytest.raises(FetchTimeout, match=r"crawl\.timeout"):
        run_fetch(handler, settings=CrawlSettings(retries=0))


def test_connect_error_is_transient_fetch_error():
    calls = []

    def handler(request):
        calls.append(1)
        raise httpx2.ConnectError("refused", request=request)

    with pytest.raises(FetchError) as info:
        run_fetch(handler, settings=CrawlSettings(retries=1, backoff=0.0))
    assert info.value.transient
    assert len(calls) == 2


def test_non_html_is_skipped():
    with pytest.raises(PageSkipped) as info:
        run_fetch(
            lambda r: httpx2.Response(
                200, content=b"%PDF", headers={"content-type": "application/pdf"}
            )
        )
    assert info.value.reason == "not_html"


def test_redirect_in_scope_is_followed_and_final_url_reported():
    def handler(request):
        if request.url.path == "/a/":
            return httpx2.Response(301, headers={"location": "/b/"})
        return html_response()

    fetched, _ = run_fetch(handler)
    assert fetched.url == "http://site.test/b/"


def test_redirect_out_of_scope_is_skipped():
    def handler(request):
        return httpx2.Response(302, headers={"location": "http://elsewhere.test/x"})

    scope = lambda url: None if "site.test" in url else "host"  # noqa: E731
    with pytest.raises(PageSkipped) as info:
        run_fetch(handler, scope=scope)
    assert info.value.reason == "redirect_out_of_scope"


def test_redirect_loop_is_detected():
    def handler(request):
        nxt = "/b/" if request.url.path == "/a/" else "/a/"
        return httpx2.Response(302, headers={"location": nxt})

    with pytest.raises(FetchError, match="redirect loop"):
        run_fetch(handler)


def test_body_over_max_bytes_is_refused_even_when_gzipped():
    bomb = gzip.compress(b"<p>" + b"a" * 200_000)

    def handler(request):
        return httpx2.Response(
            200, content=bomb, headers={"content-type": "text/html", "content-encoding": "gzip"}
        )

    assert len(bomb) < 10_000
    with pytest.raises(TooLarge):
        run_fetch(handler, settings=CrawlSettings(max_bytes=50_000))


def _gzip_response(raw: bytes, chunk: int = 1000) -> httpx2.Response:
    """A gzip-coded HTML response whose body arrives in ``chunk``-byte pieces."""
    pieces = [raw[i : i + chunk] for i in range(0, len(raw), chunk)]
    return httpx2.Response(
        200,
        stream=httpx2.ByteStream(b"") if not pieces else _Chunks(pieces),
        headers={"content-type": "text/html; charset=utf-8", "content-encoding": "gzip"},
    )


class _Chunks(httpx2.AsyncByteStream):
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    async def __aiter__(self):
        for piece in self.pieces:
            yield piece


@pytest.mark.parametrize("coding", ["gzip", "x-gzip", " GZip "])
def test_gzip_bodies_arrive_whole_in_any_chunks(coding):
    page = HTML.replace(b"<p>", b"<p>" + b"word " * 30_000)  # ~150 KB, ~1 KB on the wire
    raw = gzip.compress(page)
    response = _gzip_response(raw, chunk=97)
    response.headers["content-encoding"] = coding
    fetched, _ = run_fetch(lambda r: response)
    assert fetched.text == page.decode("utf-8")
    assert fetched.size == len(page)


def test_a_gzip_body_with_trailing_bytes_or_cut_short_reads_as_httpx2_would():
    page = HTML * 50
    raw = gzip.compress(page)
    fetched, _ = run_fetch(lambda r: _gzip_response(raw + b"junk after the member"))
    assert fetched.text == page.decode("utf-8")
    cut, _ = run_fetch(lambda r: _gzip_response(raw[: len(raw) // 2]))
    assert page.decode("utf-8").startswith(cut.text)
    assert 0 < len(cut.text) < len(page)


def test_bad_gzip_data_is_a_permanent_fetch_error():
    with pytest.raises(FetchError, match="bad gzip data") as caught:
        run_fetch(lambda r: _gzip_response(b"\x1f\x8b\x08\x00 not deflate at all" * 10))
    assert not caught.value.transient


def test_a_gzip_chunk_is_never_inflated_whole():
    raw = gzip.compress(b"<p>" + b"a" * (20 << 20))  # 20 MiB from ~20 KB, in one chunk

    async def sizes() -> list[int]:
        response = _gzip_response(raw, chunk=len(raw))
        return [
            len(piece)
            async for piece in fetch_module._capped_chunks(response, "http://x/", 64 << 20)
        ]

    got = asyncio.run(sizes())
    assert sum(got) == (20 << 20) + 3
    assert max(got) <= fetch_module._INFLATE_PIECE


@pytest.mark.parametrize(
    ("body", "content_type", "expected", "encoding"),
    [
        (
            b"\xef\xbb\xbf<p>caf\xc3\xa9</p>",
            "text/html; charset=iso-8859-1",
            "<p>café</p>",
            "utf-8",
        ),  # BOM wins
        (b"<p>caf\xe9</p>", "text/html; charset=iso-8859-1", "<p>café</p>", "cp1252"),  # header
        (
            b'<meta charset="windows-1251"><p>\xcf\xf0\xe8</p>',
            "text/html",
            "При",
            "cp1251",
        ),  # meta prescan
        (
            b"<meta http-equiv=Content-Type content='text/html; charset=koi8-r'>"
            b"<p>\xf0\xd2\xc9</p>",
            "",
            "При",
            "koi8-r",
        ),
        (b"<p>caf\xc3\xa9</p>", "text/html", "<p>café</p>", "utf-8"),  # undeclared utf-8
        (
            b'<meta charset="no-such-codec"><p>ok</p>',
            "text/html; charset=bogus",
            "<p>ok</p>",
            "utf-8",
        ),
        (
            b'<meta charset="utf-8"><p>\xcf\xf0\xe8</p>',
            "text/html; charset=windows-1251",
            "При",
            "cp1251",
        ),  # the header wins over <meta>
        (
            b'<meta charset="windows-1251"><p>\xcf\xf0\xe8</p>',
            "text/html; charset=bogus",
            "При",
            "cp1251",
        ),  # an unusable header label falls back to <meta>
        (
            b"<p>" + b"x" * 4096 + b'</p><meta charset="koi8-r"><p>caf\xc3\xa9</p>',
            "text/html",
            "café",
            "utf-8",
        ),  # <meta> past the first 4 KiB is not a declaration
    ],
)
def test_decode_html_order(body, content_type, expected, encoding):
    text, used = decode_html(body, content_type)
    assert expected in text
    assert used == encoding


def test_decode_html_detects_only_when_nothing_is_declared(monkeypatch):
    detected: list[bytes] = []

    def detect(sample: bytes) -> str:
        detected.append(sample)
        return "cp1252"

    monkeypatch.setattr(fetch_module, "_detect", detect)
    latin = b"<p>caf\xe9 cr\xe8me br\xfbl\xe9e</p>"
    assert decode_html(latin, "text/html; charset=windows-1252")[1] == "cp1252"
    assert decode_html(b'<meta charset="windows-1252">' + latin, "text/html")[1] == "cp1252"
    assert decode_html("<p>café</p>".encode(), "text/html")[1] == "utf-8"
    assert detected == []
    text, used = decode_html(latin, "text/html")
    assert (text, used, detected) == ("<p>café crème brûlée</p>", "cp1252", [latin])


def test_decode_html_never_raises_on_invalid_bytes():
    text, _ = decode_html(b"<p>\xff\xfe\xfa broken \xc3</p>", "text/html; charset=utf-8")
    assert "broken" in text


def test_the_clients_pool_sees_a_connection_its_server_closed():
    """The run's client checks idle connections with ``_QuickIdleCheckStream`` (its own socket,
    no anyio attribute table), and that check still sees a server's close."""
    import select
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    async def go() -> tuple[bool, bool, str]:
        client = make_client(CrawlSettings(transport="httpx2"))
        backend = client._transport._pool._network_backend
        stream = await backend.connect_tcp("127.0.0.1", port, timeout=5)
        server_side, _ = listener.accept()
        before = stream.get_extra_info("is_readable")
        server_side.close()
        sock = stream.get_extra_info("socket")
        select.select([sock], [], [], 5)  # until the close has arrived (no sleeping)
        after = stream.get_extra_info("is_readable")
        await stream.aclose()
        await client.aclose()
        return before, after, type(stream).__name__

    try:
        before, after, kind = asyncio.run(go())
    finally:
        listener.close()
    assert kind == "_QuickIdleCheckStream"
    assert (before, after) == (False, True)


def test_every_client_verifies_tls_with_one_context_built_once():
    async def pools() -> list[object]:
        clients = [make_client(CrawlSettings(transport="httpx2")) for _ in range(2)]
        found = [c._transport._pool._ssl_context for c in clients]
        client = make_client(CrawlSettings(transport="aiohttp"))
        found.append(client._transport._open().connector._ssl)
        clients.append(client)
        for client in clients:
            await client.aclose()
        return found

    first, second, third = asyncio.run(pools())
    assert first is second is third  # the CA bundle is loaded once per process
    assert first.verify_mode == ssl.CERT_REQUIRED
    assert first.check_hostname
    assert first.get_ca_certs() or first.cert_store_stats()["x509_ca"] > 0
