"""Sitemaps (part of the frontier stage): sitemap XML in, URLs with their ``lastmod`` out.

Parses ``<urlset>`` and ``<sitemapindex>`` documents, gzipped or not, with defusedxml (no DTDs,
no entity expansion) and a size cap on the decompressed bytes, so a hostile sitemap can neither
blow up memory nor expand entities. Anything unparseable is an empty sitemap, logged. The XML is
read as a stream, one ``<url>`` at a time: a whole tree of a 100,000-URL sitemap took 35 MB more
than its entries. The crawl hands it a file the body was spooled to as it arrived, not the body:
reading a 100,000-URL sitemap (15 MB of XML) raised the crawl's peak memory by 39 MB when it was
held whole, by 24.5 MB (its entries) from a file. It takes the entries as a stream too (``into``:
the crawl's on-disk spool), so they are never all held at once either.
"""

from __future__ import annotations

import io
import logging
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

__all__ = ["UNUSABLE", "Sitemap", "SitemapEntry", "newest_first", "parse_sitemap"]

logger = logging.getLogger(__name__)

_GUNZIP_READ = 64 * 1024  # compressed bytes read, and unzipped bytes made, at a time


@dataclass(frozen=True, slots=True)
class SitemapEntry:
    """One ``<url>`` or ``<sitemap>``: where, and when it last changed (UTC) if stated."""

    loc: str
    lastmod: datetime | None = None


@dataclass(frozen=True, slots=True)
class Sitemap:
    """A parsed sitemap: page entries, or (``is_index``) entries that are more sitemaps;
    ``usable`` False when it was not read (too large, not a sitemap, broken XML)."""

    is_index: bool
    entries: tuple[SitemapEntry, ...]
    usable: bool = True


#: What a sitemap that could not be read gives.
UNUSABLE = Sitemap(False, (), usable=False)


def parse_sitemap(
    data: bytes | IO[bytes],
    *,
    max_bytes: int,
    url: str = "",
    into: Callable[[Iterator[SitemapEntry]], object] | None = None,
) -> Sitemap:
    """Parse a sitemap or sitemap index (gzip detected by its magic bytes).

    Args:
        data: the body as fetched, or a binary file holding it (read from where it is).
        max_bytes: the largest decompressed size accepted (``crawl.sitemap_max_bytes``).
        url: for log messages.
        into: takes a ``<urlset>``'s entries as they are parsed, instead of the ``Sitemap``
            returned. It must keep all of them or none: iterating them raises when the XML
            turns out to be unusable halfway through. An index's entries are returned as ever.

    Returns:
        The sitemap; an empty one, not ``usable``, when it is too large or not a sitemap.
    """
    file = io.BytesIO(data) if isinstance(data, bytes) else data
    start = file.tell()
    gzipped = file.read(2) == b"\x1f\x8b"
    file.seek(start)
    elements = _children(_Gunzipped(file, max_bytes) if gzipped else file)
    try:
        kind = _local(next(elements))
        if kind not in ("urlset", "sitemapindex"):
            return UNUSABLE
        stream = (e for e in map(_entry, elements) if e is not None)
        if into is not None and kind == "urlset":
            into(stream)
            return Sitemap(False, ())
        entries = tuple(stream)
    except _TooLarge:
        logger.warning("sitemap %s is over crawl.sitemap_max_bytes unzipped: ignored", url)
        return UNUSABLE
    except (ParseError, DefusedXmlException, ValueError, StopIteration, zlib.error) as exc:
        logger.warning("sitemap %s is not usable XML (%s): ignored", url, exc)
        return UNUSABLE
    finally:
        elements.close()
    return Sitemap(kind == "sitemapindex", entries)


class _TooLarge(Exception):
    """A gzipped sitemap unzips to more than ``crawl.sitemap_max_bytes``."""


class _Gunzipped(io.RawIOBase):
    """The unzipped bytes of a gzipped file, read as they are needed and never more than
    ``max_bytes`` of them (past that, ``_TooLarge``): a gzip bomb is not inflated whole."""

    def __init__(self, source: IO[bytes], max_bytes: int) -> None:
        self._source = source
        self._inflater = zlib.decompressobj(wbits=31)
        self._left = max_bytes
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            if self._inflater.eof:
                return 0
            compressed = self._inflater.unconsumed_tail or self._source.read(_GUNZIP_READ)
            if not compressed:
                return 0  # truncated: the XML parser says what is missing
            self._pending = self._inflater.decompress(compressed, _GUNZIP_READ)
            self._left -= len(self._pending)
            if self._left < 0:
                raise _TooLarge
        size = min(len(view), len(self._pending))
        view[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _children(source: IO[bytes] | io.RawIOBase) -> Generator[Element, None, None]:
    """The root element (as it starts), then each of its children once it has been read whole,
    dropped from the tree after use."""
    depth = 0
    root: Element | None = None
    for event, element in iterparse(source, events=("start", "end")):
        if event == "start":
            depth += 1
            if root is None:
                root = element
                yield root
            continue
        depth -= 1
        if depth == 1 and root is not None:
            yield element
            root.clear()  # the children read so far: the tree stays one entry deep


def newest_first(lastmod: datetime | None) -> float:
    """Sort key of a ``lastmod``: newest first, unknown last."""
    return -lastmod.timestamp() if lastmod is not None else float("inf")


def _local(element: Element) -> str:
    """A tag without its namespace."""
    return element.tag.rsplit("}", 1)[-1]


def _entry(element: Element) -> SitemapEntry | None:
    """A ``<url>``/``<sitemap>`` child as an entry (None without a ``<loc>``)."""
    fields = {_local(child): (child.text or "").strip() for child in element}
    if not fields.get("loc"):
        return None
    return SitemapEntry(fields["loc"], _parse_lastmod(fields.get("lastmod", "")))


def _parse_lastmod(value: str) -> datetime | None:
    """W3C datetime (a date, or a time with offset) as aware UTC; None when absent or invalid."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
