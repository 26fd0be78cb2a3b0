"""Fetch stage: URLs in, decoded HTML out. The only module that imports httpx2.

``make_client`` builds the one ``Client`` (an ``httpx2.AsyncClient``) of a run; ``fetch_page``
turns a ``Target`` into a ``Fetched`` (or raises a ``FetchError``/``PageSkipped``), handling
what servers do: redirects checked hop by hop against the scope, a whole-response deadline on
top of httpx2's connect/read timeouts, a size cap applied after decompression, non-HTML skipped
before its body is read, conditional GET, bounded retries with exponential backoff and jitter,
Retry-After.
Bytes are decoded here (BOM, HTTP header, ``<meta>`` prescan, detection): httpx2 does not look at
``<meta charset>`` and selectolax must get ``str``.
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import IO, Any, cast
from urllib.parse import urljoin

import httpx2
from charset_normalizer import from_bytes
from isal import isal_zlib

from pipeline.config import CrawlSettings
from pipeline.errors import BadStatus, FetchError, FetchTimeout, PageSkipped, TooLarge
from pipeline.fetch.transports import make_transport
from pipeline.models import Fetched, Target, Validators
from pipeline.politeness import RobotsResponse

__all__ = [
    "Client",
    "decode_html",
    "fetch_page",
    "fetch_robots",
    "fetch_sitemap",
    "make_client",
    "parse_retry_after",
]

logger = logging.getLogger(__name__)

HTML_TYPES = ("text/html", "application/xhtml+xml")
_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE
)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.IGNORECASE)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})  # not httpx2's is_redirect: it counts 304
_MAX_RETRY_AFTER_WAIT = 60.0  # longer Retry-After: give up on the URL now, the host is backed off

Scope = Callable[[str], str | None]
#: Bytes of an unwanted body (304, redirect, error) read to keep its connection for reuse.
_DRAIN_LIMIT = 64 * 1024
Sleep = Callable[[float], Awaitable[None]]


class Client(httpx2.AsyncClient):
    """The run's ``httpx2.AsyncClient``, with a lean GET for pages (``get_page``).

    ``client.stream`` builds each request through the client's merges (base URL, headers,
    cookies, query, timeout) and sends it through its auth and redirect layers, none of which a
    page fetch uses: redirects are followed by hand, there is no auth or base URL. That was
    30-40 us of CPU a request, 15-20 % of a 304's cost through the aiohttp transport
    (bench/README.md, twentieth round). ``get_page`` builds the request from the client's
    headers, cookies and timeout and hands it to the transport itself; robots.txt and sitemaps
    take httpx2's own path.
    """

    def __init__(self, *, transport: httpx2.AsyncBaseTransport, **kwargs: Any) -> None:
        super().__init__(transport=transport, **kwargs)
        self._page_transport = transport
        self._page_extensions = {"timeout": self.timeout.as_dict()}

    async def get_page(self, url: str, headers: dict[str, str]) -> httpx2.Response:
        """GET ``url`` with the client's headers and ``headers``, not following redirects; the
        response's body is not read yet: the caller reads or drops it, then closes the response.

        Raises:
            RuntimeError: the client is closed.
            httpx2.InvalidURL, httpx2.TransportError: as ``client.stream`` raises them.
        """
        if self.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        request = httpx2.Request(
            "GET",
            url,
            headers=[*self.headers.multi_items(), *headers.items()],
            extensions=self._page_extensions,
        )
        if self.cookies.jar:
            self.cookies.set_cookie_header(request)
        response = await self._page_transport.handle_async_request(request)
        response.request = request
        self.cookies.extract_cookies(response)
        return response


def make_client(
    settings: CrawlSettings, *, transport: httpx2.AsyncBaseTransport | None = None
) -> Client:
    """The HTTP client of one run: our User-Agent, timeouts, pool sized to the concurrency.

    Args:
        settings: the crawl settings.
        transport: another transport (tests pass ``httpx2.MockTransport``); by default the one
            ``crawl.transport`` names (``pipeline.fetch.transports``).
    """
    limits = httpx2.Limits(
        max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency
    )
    timeout = httpx2.Timeout(settings.timeout, connect=settings.timeout)
    if transport is None:
        transport = make_transport(settings.transport, limits)
    return Client(
        headers={
            "User-Agent": settings.user_agent,
            "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5",
            "Accept-Encoding": "gzip, deflate",
        },
        timeout=timeout,
        limits=limits,
        follow_redirects=False,  # followed by hand: every hop is checked against the scope
        trust_env=False,
        transport=transport,
    )


async def fetch_robots(
    client: httpx2.AsyncClient, url: str, *, settings: CrawlSettings
) -> RobotsResponse:
    """GET a robots.txt (capped at 500 KiB, redirects followed); status 0 when unreachable."""
    try:
        async with asyncio.timeout(settings.deadline):
            response = await client.get(url, follow_redirects=True)
    except (httpx2.HTTPError, TimeoutError) as exc:
        logger.info("robots.txt %s unreachable: %s", url, exc)
        return RobotsResponse(status=0)
    return RobotsResponse(status=response.status_code, body=response.content[:512_000])


async def fetch_sitemap(
    client: httpx2.AsyncClient,
    url: str,
    *,
    settings: CrawlSettings,
    into: IO[bytes],
    validators: Validators | None = None,
) -> Validators | None:
    """GET a sitemap's bytes (redirects followed, capped at ``crawl.sitemap_max_bytes``) into a
    file as they arrive: a large sitemap is never held whole.

    Args:
        client: from ``make_client``.
        url: the sitemap.
        settings: the crawl settings (deadline, ``sitemap_max_bytes``).
        into: where the body goes.
        validators: ETag / Last-Modified of the copy read last time, for a conditional GET.

    Returns:
        The response's validators (for the next conditional GET); None when the server said the
        sitemap is unchanged (304 to a conditional GET: nothing is written).

    Raises:
        FetchError: unreachable, a timeout, another status than 200 (or 304), or too large.
    """
    try:
        async with (
            asyncio.timeout(settings.deadline),
            client.stream(
                "GET", url, headers=_conditional_headers(validators), follow_redirects=True
            ) as response,
        ):
            if response.status_code == 304 and validators is not None:
                await _drain(response)
                return None
            if response.status_code != 200:
                raise _bad_status(response, url)
            cap = settings.sitemap_max_bytes
            async for chunk in _capped_chunks(response, url, cap, "crawl.sitemap_max_bytes"):
                into.write(chunk)
            return _validators(response)
    except (httpx2.HTTPError, TimeoutError) as exc:
        raise FetchError(f"sitemap {url} could not be fetched: {exc!r}", url=url) from exc


async def fetch_page(
    client: Client,
    target: Target,
    *,
    settings: CrawlSettings,
    scope: Scope,
    validators: Validators | None = None,
    sleep: Sleep = asyncio.sleep,
    on_retry_after: Callable[[float], None] | None = None,
) -> Fetched:
    """Fetch ``target`` with retries for transient failures.

    Args:
        client: from ``make_client``.
        target: what to fetch.
        settings: the crawl settings (timeouts, retries, size cap).
        scope: returns why a redirect target is out of scope (None when it is in scope) and
            canonicalizes nothing: redirect URLs are passed absolute.
        validators: ETag / Last-Modified for a conditional GET.
        sleep: how to wait between attempts (tests pass a fake).
        on_retry_after: told the seconds of every Retry-After received, at once, so the whole
            host waits (not just this request's retry).

    Returns:
        The fetched page, or a ``not_modified`` Fetched on 304.

    Raises:
        FetchError: FetchTimeout, BadStatus, TooLarge or a connection error, after retries.
        PageSkipped: not HTML, or a redirect out of scope.
    """
    attempt = 0
    while True:
        try:
            return await _fetch_once(
                client, target, settings=settings, scope=scope, validators=validators
            )
        except FetchError as exc:
            if not exc.transient or attempt >= settings.retries:
                raise
            wait = settings.backoff * (2**attempt) * random.uniform(0.5, 1.5)
            retry_after = exc.retry_after if isinstance(exc, BadStatus) else None
            if retry_after is not None:
                if on_retry_after is not None:
                    on_retry_after(retry_after)
                if retry_after > _MAX_RETRY_AFTER_WAIT:
                    raise
                wait = max(wait, retry_after)
            attempt += 1
            logger.info("retrying %s in %.1fs (attempt %s): %s", target.url, wait, attempt + 1, exc)
            await sleep(wait)


async def _fetch_once(
    client: Client,
    target: Target,
    *,
    settings: CrawlSettings,
    scope: Scope,
    validators: Validators | None,
) -> Fetched:
    started = time.monotonic()
    try:
        async with asyncio.timeout(settings.deadline):
            return await _follow(
                client,
                target,
                settings=settings,
                scope=scope,
                validators=validators,
                started=started,
            )
    except TimeoutError:
        raise FetchTimeout(
            f"no complete response within {settings.deadline:g}s from {target.url}; "
            "raise crawl.deadline in the config if the site is just slow",
            url=target.url,
        ) from None
    except httpx2.TimeoutException as exc:
        raise FetchTimeout(
            f"timed out after {settings.timeout:g}s fetching {target.url} ({type(exc).__name__}); "
            "raise crawl.timeout in the config if the site is just slow",
            url=target.url,
        ) from exc
    except (httpx2.TransportError, httpx2.DecodingError) as exc:
        transient = not isinstance(exc, httpx2.UnsupportedProtocol | httpx2.DecodingError)
        raise FetchError(
            f"fetching {target.url} failed: {type(exc).__name__}: {exc}",
            url=target.url,
            transient=transient,
        ) from exc


async def _follow(
    client: Client,
    target: Target,
    *,
    settings: CrawlSettings,
    scope: Scope,
    validators: Validators | None,
    started: float,
) -> Fetched:
    url = target.url
    seen = {url}
    for _hop in range(settings.max_redirects + 1):
        headers = _conditional_headers(validators) if url == target.url else {}
        try:
            response = await client.get_page(url, headers)
        except httpx2.InvalidURL as exc:
            # a redirect's Location that httpx2 cannot send (an invalid port or host); our own
            # URLs are canonical http(s), so this is always the server's Location.
            raise PageSkipped("redirect_out_of_scope", url=url, detail=str(exc)) from exc
        try:
            if response.status_code in _REDIRECTS:
                await _drain(response)
                url = _next_hop(url, response, seen, scope)
                continue
            return await _read(response, target, url, settings=settings, started=started)
        finally:
            await response.aclose()
    raise FetchError(
        f"more than {settings.max_redirects} redirects from {target.url}; "
        "raise crawl.max_redirects if the site really needs more",
        url=target.url,
        reason="too_many_redirects",
    )


def _next_hop(url: str, response: httpx2.Response, seen: set[str], scope: Scope) -> str:
    location = response.headers.get("location")
    if not location:
        raise BadStatus(
            f"redirect without Location from {url}", url=url, status=response.status_code
        )
    try:
        nxt: str = urljoin(url, location.strip())
        reason = scope(nxt)
    except ValueError as exc:  # urllib's "Invalid IPv6 URL", a bad port
        detail = f"to {location!r}: {exc}"
        raise PageSkipped("redirect_out_of_scope", url=url, detail=detail) from exc
    if reason is not None:
        raise PageSkipped("redirect_out_of_scope", url=url, detail=f"to {nxt} ({reason})")
    if nxt in seen:
        raise FetchError(f"redirect loop at {url} -> {nxt}", url=url, reason="redirect_loop")
    seen.add(nxt)
    return nxt


def _conditional_headers(validators: Validators | None) -> dict[str, str]:
    headers = {}
    if validators and validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators and validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    return headers


def _validators(response: httpx2.Response) -> Validators:
    """What a later conditional GET of the same URL sends back."""
    return Validators(
        etag=response.headers.get("etag"), last_modified=response.headers.get("last-modified")
    )


async def _read(
    response: httpx2.Response, target: Target, url: str, *, settings: CrawlSettings, started: float
) -> Fetched:
    now = datetime.now(UTC)
    validators = _validators(response)
    if response.status_code == 304:
        await _drain(response)
        return Fetched(
            target=target,
            url=url,
            status=304,
            text="",
            encoding="",
            fetched_at=now,
            validators=validators,
            elapsed=time.monotonic() - started,
            not_modified=True,
        )
    if response.status_code != 200:
        await _drain(response)
        raise _bad_status(response, url)
    content_type = response.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type and media_type not in HTML_TYPES:
        raise PageSkipped("not_html", url=url, detail=media_type)
    body = await _read_capped(response, url, settings.max_bytes)
    text, encoding = decode_html(body, content_type)
    return Fetched(
        target=target,
        url=url,
        status=200,
        text=text,
        encoding=encoding,
        fetched_at=now,
        content_type=media_type or "text/html",
        validators=validators,
        size=len(body),
        elapsed=time.monotonic() - started,
    )


def _bad_status(response: httpx2.Response, url: str) -> BadStatus:
    status = response.status_code
    retry_after = (
        parse_retry_after(response.headers.get("retry-after")) if status in (429, 503) else None
    )
    return BadStatus(f"HTTP {status} from {url}", url=url, status=status, retry_after=retry_after)


async def _drain(response: httpx2.Response, limit: int = _DRAIN_LIMIT) -> None:
    """Read and drop a body we do not need (304, redirect, error) so the connection is reused.

    A response closed before its end closes its connection: every 304 of a recrawl cost a new
    TCP connection. A body past ``limit`` is not worth reading; its connection is dropped.
    """
    if response.is_stream_consumed:  # already read (a response built in memory)
        return
    size = 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if size > limit:
            return


async def _read_capped(response: httpx2.Response, url: str, max_bytes: int) -> bytes:
    """The decompressed body, stopping as soon as it passes ``max_bytes`` (a gzip bomb included)."""
    return b"".join([chunk async for chunk in _capped_chunks(response, url, max_bytes)])


async def _capped_chunks(
    response: httpx2.Response, url: str, max_bytes: int, setting: str = "crawl.max_bytes"
) -> AsyncIterator[bytes]:
    """The decompressed body's chunks; ``TooLarge`` (naming ``setting``) as soon as they pass
    ``max_bytes``."""
    declared = response.headers.get("content-length")
    if (
        declared
        and declared.isdigit()
        and int(declared) > max_bytes
        and "content-encoding" not in response.headers
    ):
        raise TooLarge(f"{url} is {declared} bytes, over {setting}={max_bytes}", url=url)
    size = 0
    async for chunk in _decoded(response):
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(f"{url} passed {setting}={max_bytes} (after decompression)", url=url)
        yield chunk


#: Most a gzip body's chunk inflates to at once: a bomb's chunk is never inflated whole.
_INFLATE_PIECE = 256 * 1024
#: ISA-L's error class (its stubs declare it an instance of Exception).
_INFLATE_ERROR = cast("type[Exception]", isal_zlib.error)


def _decoded(response: httpx2.Response) -> AsyncIterator[bytes]:
    """The body's decompressed chunks: gzip inflated by ISA-L (``isal``: 2.4x zlib's speed on
    the bench site's pages, ~1 % of a crawl's CPU), any other coding by httpx2, and so is a
    body already read (a response built in memory: httpx2 decoded it then)."""
    coding = response.headers.get("content-encoding", "").strip().lower()
    if coding in ("gzip", "x-gzip") and not response.is_stream_consumed:
        return _gunzip(response)
    return response.aiter_bytes()


async def _gunzip(response: httpx2.Response) -> AsyncIterator[bytes]:
    """A gzip body inflated as httpx2 would (one member; a truncated one ends where its data
    does), in pieces of at most ``_INFLATE_PIECE``; bad data raises ``httpx2.DecodingError``."""
    inflater = isal_zlib.decompressobj(16 + isal_zlib.MAX_WBITS)
    try:
        async for chunk in response.aiter_raw():
            data = chunk
            while data and not inflater.eof:  # past the member's end: trailing bytes, ignored
                piece = inflater.decompress(data, _INFLATE_PIECE)
                if piece:
                    yield piece
                data = inflater.unconsumed_tail
        rest = inflater.flush()
        if rest:
            yield rest
    except _INFLATE_ERROR as exc:
        raise httpx2.DecodingError(f"bad gzip data: {exc}", request=response.request) from exc


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def decode_html(body: bytes, content_type: str = "") -> tuple[str, str]:
    """Decode an HTML body: BOM, then the HTTP charset, then ``<meta>`` in the first 4 KiB, then
    detection; invalid bytes are replaced, never raised.

    Returns:
        The text and the name of the encoding used.
    """
    for bom, name in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if body.startswith(bom):
            return body[len(bom) :].decode(name, errors="replace"), name
    header = _HEADER_CHARSET.search(content_type)
    codec = _codec_name(header.group(1)) if header else None
    if codec is None:  # the <meta> prescan only when the header names no usable charset
        meta = _META_CHARSET.search(body, 0, 4096)
        codec = _codec_name(meta.group(1).decode("ascii", "replace")) if meta else None
    if codec is not None:
        return body.decode(codec, errors="replace"), codec
    try:  # detection only for pages that declare nothing and are not valid UTF-8
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        name = _detect(body[:65536])
        return body.decode(name, errors="replace"), name


def _detect(sample: bytes) -> str:
    """The detector's best guess; windows-1252 when it ties with the best (WHATWG's default)."""
    matches = list(from_bytes(sample))
    if not matches:
        return "cp1252"
    best = matches[0]
    for match in matches:
        tie = (match.chaos, match.coherence) == (best.chaos, best.coherence)
        if tie and "cp1252" in match.could_be_from_charset:
            return "cp1252"
    return _codec_name(best.encoding) or "cp1252"


@functools.lru_cache(maxsize=256)  # a handful of labels, looked up for every page
def _codec_name(label: str | None) -> str | None:
    """Python's codec for an encoding label; latin-1/ascii mean windows-1252 on the web (WHATWG)."""
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip().lower()).name
    except LookupError:
        return None
    return "cp1252" if name in ("latin-1", "iso8859-1", "ascii") else name
