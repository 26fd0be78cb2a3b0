"""Sitemap parsing: namespaces, gzip, lastmod, and hostile XML refused safely."""

from __future__ import annotations

import gzip
import io
import zlib
from datetime import UTC, datetime

from pipeline.sitemaps import SitemapEntry, parse_sitemap

URLSET = (
    b'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
    b"<url><loc>http://a.test/1</loc><lastmod>2025-11-01</lastmod></url>"
    b"<url><loc> http://a.test/2 </loc><lastmod>2025-11-02T10:00:00+01:00</lastmod></url>"
    b"<url><loc>http://a.test/3</loc><lastmod>not a date</lastmod></url><url></url></urlset>"
)


def test_urlset_entries_with_lastmod_in_utc():
    sitemap = parse_sitemap(URLSET, max_bytes=10_000)
    assert not sitemap.is_index
    assert sitemap.entries == (
        SitemapEntry("http://a.test/1", datetime(2025, 11, 1, tzinfo=UTC)),
        SitemapEntry("http://a.test/2", datetime(2025, 11, 2, 9, tzinfo=UTC)),
        SitemapEntry("http://a.test/3", None),
    )


def test_gzipped_sitemap_is_read_and_capped_after_decompression():
    assert parse_sitemap(gzip.compress(URLSET), max_bytes=10_000).entries
    bomb = gzip.compress(URLSET[:-9] + b" " * 5_000_000 + b"</urlset>")
    assert parse_sitemap(bomb, max_bytes=100_000).entries == ()


def test_entity_expansion_and_garbage_are_refused_not_expanded():
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b"<urlset><url><loc>&b;</loc></url></urlset>"
    )
    assert parse_sitemap(laughs, max_bytes=10_000).entries == ()
    assert parse_sitemap(b"<html>not xml", max_bytes=10_000).entries == ()
    assert parse_sitemap(b"<rss><item/></rss>", max_bytes=10_000).entries == ()


def test_a_file_is_read_from_where_it_stands():
    for body in (URLSET, gzip.compress(URLSET)):
        file = io.BytesIO(b"ignored" + body)
        file.seek(len(b"ignored"))
        assert parse_sitemap(file, max_bytes=10_000) == parse_sitemap(body, max_bytes=10_000)
        assert len(parse_sitemap(body, max_bytes=10_000).entries) == 3


def test_a_gzip_bomb_in_a_file_is_not_inflated_whole():
    """200 MB of spaces zip to ~200 KB; past max_bytes the reading stops, well before the end."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [packer.compress(URLSET[:-9])]
    parts += [packer.compress(b" " * (1 << 20)) for _ in range(200)]
    bomb = b"".join([*parts, packer.compress(b"</urlset>"), packer.flush()])
    file = io.BytesIO(bomb)
    assert parse_sitemap(file, max_bytes=100_000).entries == ()
    assert file.tell() < len(bomb) // 2
    assert len(parse_sitemap(bomb, max_bytes=300_000_000).entries) == 3  # under the cap: read


def test_a_truncated_gzip_sitemap_is_an_empty_one():
    cut = gzip.compress(URLSET)[:40]
    assert parse_sitemap(cut, max_bytes=10_000).entries == ()
    assert parse_sitemap(io.BytesIO(cut), max_bytes=10_000).entries == ()


def test_entries_can_be_streamed_into_a_sink_all_or_none():
    taken: list[SitemapEntry] = []
    sitemap = parse_sitemap(URLSET, max_bytes=10_000, into=taken.extend)
    assert (sitemap.is_index, sitemap.entries) == (False, ())
    assert [e.loc for e in taken] == ["http://a.test/1", "http://a.test/2", "http://a.test/3"]

    # A sink that keeps all or none sees the stream fail when the XML breaks off halfway.
    def all_or_none(entries):
        kept = list(entries)  # raises before anything is kept
        taken.extend(kept)

    taken.clear()
    cut = URLSET[: URLSET.index(b"<url><loc>http://a.test/3")]  # two whole entries, then the end
    assert parse_sitemap(cut, max_bytes=10_000, into=all_or_none).entries == ()
    assert taken == []
    index = b"<sitemapindex><sitemap><loc>http://a.test/s.xml</loc></sitemap></sitemapindex>"
    sitemap = parse_sitemap(index, max_bytes=10_000, into=all_or_none)
    assert sitemap.is_index
    assert [e.loc for e in sitemap.entries] == ["http://a.test/s.xml"]
