"""The benchmark's static server answers as a static server should: the crawls it serves are
what ``bench/`` measures, and an unchanged recrawl is all its 304s."""

from __future__ import annotations

import gzip
import http.client
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from bench.site_server import start_server


@pytest.fixture(scope="module")
def server() -> Iterator[http.client.HTTPConnection]:
    with start_server(articles=12, topics=2, layout="plain") as (base, _info):
        parts = urlsplit(base)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        yield connection  # one keep-alive connection for every request of the module
        connection.close()


def _get(
    connection: http.client.HTTPConnection, path: str, method: str = "GET", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    connection.request(method, path, headers={k.replace("_", "-"): v for k, v in headers.items()})
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def test_a_page_is_gzipped_when_accepted_and_plain_otherwise(server):
    status, headers, body = _get(server, "/", Accept_Encoding="gzip, deflate")
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Connection"] == "keep-alive"
    assert int(headers["Content-Length"]) == len(body)
    html = gzip.decompress(body)
    assert b"<html" in html

    status, headers, body = _get(server, "/")
    assert status == 200
    assert "Content-Encoding" not in headers
    assert body == html


def test_a_matching_etag_or_date_is_answered_304_without_a_body(server):
    _, headers, _ = _get(server, "/", Accept_Encoding="gzip")
    etag, modified = headers["ETag"], headers["Last-Modified"]

    for condition in ({"If_None_Match": etag}, {"IF_NONE_MATCH": f'"other", W/{etag}'}):
        status, answer, body = _get(server, "/", Accept_Encoding="gzip", **condition)
        assert (status, body) == (304, b"")
        assert answer["ETag"] == etag
        assert "Content-Encoding" not in answer
        assert "Content-Type" not in answer

    assert _get(server, "/", If_Modified_Since=modified)[0] == 304
    # a tag that does not match wins over a date that would
    status, _, body = _get(server, "/", If_None_Match='"other"', If_Modified_Since=modified)
    assert status == 200
    assert body


def test_head_has_the_get_length_and_no_body_and_stats_count_each_answer(server):
    _, get_headers, body = _get(server, "/", Accept_Encoding="gzip")
    status, headers, head_body = _get(server, "/", "HEAD", Accept_Encoding="gzip")
    assert status == 200
    assert head_body == b""
    assert headers["Content-Length"] == get_headers["Content-Length"] == str(len(body))

    status, _, _ = _get(server, "/no/such/page/")
    assert status == 404
    stats_body = _get(server, "/__stats")[2]
    assert b'"404": 1' in stats_body
    assert b'"misses": 1' in stats_body


def test_connection_close_is_honoured(server):
    status, headers, _ = _get(server, "/robots.txt", Connection="close")
    assert status == 200
    assert headers["Connection"] == "close"
    status, _, body = _get(server, "/robots.txt")  # http.client opens a new connection
    assert status == 200
    assert b"Sitemap:" in body
