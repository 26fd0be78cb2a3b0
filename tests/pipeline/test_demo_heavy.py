"""The demo site's layouts: ``plain`` unchanged byte for byte, ``heavy`` realistic and crawlable."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pipeline.demo import DemoServer, DemoSite, build_site, render_path
from pipeline.demo.heavy import COMMENTS_SHOWN
from pipeline.run import export_records, run_once
from tests.conftest import crawl_settings
from tests.pipeline.test_run import ARTICLE_FIELDS

BASE = "http://127.0.0.1:8000"
PLAIN_DIGEST = "8919cf2e5e257085f76df4c7c3f1b81f291869cf0e48f97523407592588ec50d"
"""sha256 of every page of ``build_site()`` (see ``_site_digest``) before the heavy layout was
added. The tests and ``crawldex demo`` use the plain layout: a change here is a change to them."""
_HREF = re.compile(r'<a [^>]*href="([^"#]+)')


def _paths(site: DemoSite) -> list[str]:
    """Every kind of request target of the site: pages, archives, robots, sitemap, 404, image."""
    paths = ["/", "/about/", "/robots.txt", "/sitemap.xml", "/search?q=dose", "/no-such-page/"]
    for topic in site.topics:
        pages = site.page_count(len(site.topic_articles(topic.slug)))
        paths.append(f"/topics/{topic.slug}/")
        paths += [f"/topics/{topic.slug}/page/{n}/" for n in range(2, pages + 1)]
    paths += [f"/author/{slug}/" for slug in site.authors]
    return [*paths, *(a.path for a in site.articles), f"/img/{site.articles[0].slug}.jpg"]


def _site_digest(site: DemoSite) -> str:
    digest = hashlib.sha256()
    for path in _paths(site):
        response = render_path(site, BASE, path)
        assert response is not None
        headers = repr(sorted(response.headers.items())).encode()
        digest.update(f"{path}\0{response.status}".encode() + headers + response.body)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def heavy_site() -> DemoSite:
    return build_site(articles=40, topics=4, layout="heavy")


def test_the_default_plain_layout_is_byte_identical_to_before():
    assert _site_digest(build_site()) == PLAIN_DIGEST
    assert _site_digest(build_site(layout="plain")) == PLAIN_DIGEST


def test_the_layout_changes_pages_not_content(heavy_site):
    plain = build_site(articles=40, topics=4)
    assert heavy_site.expected_articles(BASE) == plain.expected_articles(BASE)
    assert heavy_site.expected_topics(BASE) == plain.expected_topics(BASE)
    assert _site_digest(heavy_site) != _site_digest(plain)


def test_an_unknown_layout_is_refused():
    with pytest.raises(ValueError, match="plain, heavy"):
        build_site(layout="fancy")


def test_heavy_articles_weigh_30_to_60_kb_and_topic_pages_over_30(heavy_site):
    sizes = [len(render_path(heavy_site, BASE, a.path).body) for a in heavy_site.articles]
    assert min(sizes) >= 30 * 1024
    assert max(sizes) <= 60 * 1024
    topic = render_path(heavy_site, BASE, f"/topics/{heavy_site.topics[0].slug}/")
    assert len(topic.body) > 30 * 1024


def test_heavy_comments_show_the_count_the_record_says(heavy_site):
    seen = set()
    for article in heavy_site.articles:
        body = render_path(heavy_site, BASE, article.path).body.decode()
        count = article.comment_count
        listed = body.count('<li id="comment-')
        seen.add((count or 0) > COMMENTS_SHOWN)
        if count is None:
            assert "Comments are closed." in body
            assert listed == 0
            continue
        assert listed == min(count, COMMENTS_SHOWN)
        if count:
            assert f"{count} thought" in body
        more = count - listed
        assert (f"Load {more} more comments" in body) == (more > 0)
    assert seen == {True, False}, "the sample has both short and paged comment threads"


def test_every_heavy_link_on_the_site_leads_to_a_page(heavy_site):
    for path in _paths(heavy_site):
        response = render_path(heavy_site, BASE, path)
        if response is None or not response.content_type.startswith("text/html"):
            continue
        for href in _HREF.findall(response.body.decode()):
            parts = urlsplit(href.replace("&amp;", "&"))
            if parts.netloc != urlsplit(BASE).netloc or parts.path.startswith("/search"):
                continue
            target = render_path(heavy_site, BASE, parts.path)
            assert target is not None, f"{path} links {href}"
            assert target.status == 200, f"{path} links {href}"


def test_a_crawl_of_the_heavy_layout_extracts_the_truth(heavy_site, tmp_path: Path):
    with DemoServer(heavy_site) as server:
        settings = crawl_settings(tmp_path, server.base_url)
        report = run_once(settings)
        export_records(settings, tmp_path / "records.jsonl")
        base = server.base_url
    assert report.status == "finished"
    assert report.failed == {}
    lines = (tmp_path / "records.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    got = {r["url"]: r for r in records if r["kind"] == "article"}
    expected = {a["url"]: a for a in heavy_site.expected_articles(base)}
    assert set(got) == set(expected)
    for url, truth in expected.items():
        wrong = {f: (got[url][f], truth[f]) for f in ARTICLE_FIELDS if got[url][f] != truth[f]}
        assert not wrong, f"{url}: {wrong}"
    topics = {r["url"]: r for r in records if r["kind"] == "topic"}
    for truth in heavy_site.expected_topics(base):
        assert topics[truth["url"]]["article_urls"] == truth["article_urls"]
        assert topics[truth["url"]]["description"] == truth["description"]
