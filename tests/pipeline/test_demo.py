"""The bundled demo site: deterministic model, truth that matches the pages, a real HTTP server."""

# The curly quotes and dashes are what the site writes.

from __future__ import annotations

import gzip
import html
import json
import math
import re
import threading
import unicodedata
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

import pytest

from pipeline.demo import (
    ANCHOR,
    DemoServer,
    DemoSite,
    RequestInfo,
    Response,
    build_site,
    render_path,
    serve_forever_blocking,
)

BASE = "http://127.0.0.1:8123"
TOPIC_NAMES = [
    "Immunomodulation",
    "Antidepressants",
    "Pain Management",
    "Autoimmune Disease",
    "Drug Interactions",
    "Heart Health",
    "Antibiotics",
    "Diabetes Care",
]
CARD_LINK = re.compile(r'<h2 class="entry-title"><a href="([^"]+)">')


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def fetch(url: str, method: str = "GET", **headers: str) -> tuple[int, Any, bytes]:
    """Status, headers and raw body of one request (no proxies, no redirects followed)."""
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with _OPENER.open(request, timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


@pytest.fixture(scope="module")
def site() -> DemoSite:
    return build_site()


@pytest.fixture(scope="module")
def server(site):
    with DemoServer(site) as running:
        yield running


def render(site: DemoSite, path: str, base: str = BASE) -> Response:
    response = render_path(site, base, path)
    assert response is not None
    return response


def page(site: DemoSite, path: str) -> str:
    response = render(site, path)
    assert response.status == 200, path
    return response.body.decode("utf-8")


def search(pattern: str, text: str) -> re.Match[str]:
    found = re.search(pattern, text, re.S)
    assert found is not None, pattern
    return found


class _EntryText(HTMLParser):
    """What a reader sees of entry-content: its paragraphs, without script or figure."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0  # div depth inside entry-content (0: outside)
        self.skip = 0
        self.current: list[str] | None = None
        self.paragraphs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "div" and (self.depth or ("class", "entry-content") in attrs):
            self.depth += 1
        elif self.depth and tag in ("script", "figure"):
            self.skip += 1
        elif self.depth and not self.skip and tag == "p":
            self.current = []

    def handle_endtag(self, tag):
        if tag == "div" and self.depth:
            self.depth -= 1
        elif self.depth and tag in ("script", "figure"):
            self.skip -= 1
        elif tag == "p" and self.current is not None:
            self.paragraphs.append(unicodedata.normalize("NFC", "".join(self.current)))
            self.current = None

    def handle_data(self, data):
        if self.current is not None and not self.skip:
            self.current.append(data)


def entry_text(markup: str) -> str:
    parser = _EntryText()
    parser.feed(markup)
    return "\n\n".join(parser.paragraphs)


# --- the model ---------------------------------------------------------------------------------


def test_same_arguments_give_byte_identical_pages(site):
    again = build_site()
    article = site.articles[17].path
    for path in (
        "/",
        "/topics/antibiotics/page/2/",
        article,
        "/sitemap.xml",
        "/author/owen-price/",
    ):
        assert render(site, path).status == 200, path
        assert render(site, path).body == render(again, path).body, path
    assert build_site(seed=8).articles[0].title != site.articles[0].title


def test_site_has_the_seeds_topics_and_consistent_articles(site):
    assert [t.name for t in site.topics] == TOPIC_NAMES
    assert len(site.articles) == 200
    assert len({a.title for a in site.articles}) == 200
    assert len({a.slug for a in site.articles}) == 200
    for topic in site.topics:
        assert 1 <= len(topic.description) <= 2
        dates = [site.article(s).published for s in topic.article_slugs]
        assert dates == sorted(dates, reverse=True)
    for article in site.articles:
        assert 1 <= len(article.topics) <= 3
        assert len(set(article.topic_slugs)) == len(article.topics)
        assert all(article.slug in site.topic(s).article_slugs for s in article.topic_slugs)
        assert 4 <= len(article.paragraphs) <= 9
        assert all(40 <= len(p.split()) <= 120 for p in article.paragraphs)
        assert article.has_jsonld == (article.post_id % 2 == 0)
        joined = ["".join(span.text for span in spans) for spans in article.markup]
        assert joined == list(article.paragraphs)
    assert len({a.author for a in site.articles}) == 8


def test_dates_are_london_time_over_two_years(site):
    offsets = {a.published.isoformat()[-6:] for a in site.articles}
    assert offsets == {"+00:00", "+01:00"}
    for article in site.articles:
        published = article.published
        assert ANCHOR - timedelta(days=731) < published < ANCHOR
        assert published.second == 0
        assert published.microsecond == 0
        assert article.path.startswith(f"/{published:%Y}/{published:%m}/")
        if article.updated is not None:
            assert published < article.updated <= ANCHOR
        assert all(published < c.posted <= ANCHOR for c in article.comments)
    assert len({a.published.hour for a in site.articles}) > 10
    assert 25 <= sum(a.updated is not None for a in site.articles) <= 60


def test_comment_counts_cover_closed_none_one_and_many(site):
    def bucket(count: int | None) -> str:
        return "closed" if count is None else str(count) if count < 2 else "many"

    counts = Counter(bucket(a.comment_count) for a in site.articles)
    assert 3 <= counts["closed"] <= 20
    assert 8 <= counts["0"] <= 35
    assert 3 <= counts["1"] <= 20
    many = [a.comment_count for a in site.articles if bucket(a.comment_count) == "many"]
    assert all(2 <= c <= 150 for c in many)
    for article in site.articles:
        assert len(article.comments) == min(article.comment_count or 0, 3)


def test_every_article_has_a_word_no_other_text_or_title_has(site):
    truths = site.expected_articles(BASE)
    for article, truth in zip(site.articles, truths, strict=True):
        word = article.keyword
        assert word in truth["text"].split()
        assert word not in truth["title"]
        assert sum(word in t["text"] or word in t["title"] for t in truths) == 1


def test_text_carries_real_world_punctuation_and_accents(site):
    text = "\n".join(a["text"] + a["title"] + a["summary"] for a in site.expected_articles(BASE))
    for needle in ("Sjögren’s", "naïve", "café", "—", "“", "&"):
        assert needle in text
    assert all(unicodedata.is_normalized("NFC", text) for text in text.split("\n"))


def test_build_site_checks_its_arguments_and_anchors_to_now():
    with pytest.raises(ValueError, match="topics"):
        build_site(topics=11)
    with pytest.raises(ValueError, match="aware"):
        build_site(now=datetime(2024, 1, 1))
    now = datetime.fromisoformat("2024-06-30T10:00:00+00:00")
    small = build_site(articles=12, topics=10, per_page=5, now=now)
    assert all(a.published < now for a in small.articles)
    assert all(t.article_slugs for t in small.topics), "the first articles go one per topic"
    assert small.page_count(11) == 3
    assert small.page_count(0) == 1


def test_with_article_moves_cards_and_keeps_the_rest(site):
    oldest = site.articles[-1]
    bumped = replace(oldest, published=ANCHOR - timedelta(hours=1))
    changed = site.with_article(bumped)
    assert changed.articles[0].slug == oldest.slug
    assert len(changed.articles) == len(site.articles)
    for slug in oldest.topic_slugs:
        assert changed.topic(slug).article_slugs[0] == oldest.slug
    gone = changed.without_article(oldest.slug)
    assert len(gone.articles) == len(site.articles) - 1
    assert render(gone, oldest.path).status == 404
    assert all(oldest.slug not in t.article_slugs for t in gone.topics)


# --- the truth against the pages --------------------------------------------------------------


def test_truth_has_the_record_contract_shape(site):
    truth = site.expected_articles(BASE + "/")[0]
    assert set(truth) == {
        "url",
        "title",
        "published_at",
        "updated_at",
        "author",
        "comment_count",
        "summary",
        "text",
        "topics",
        "language",
    }
    article = site.articles[0]
    assert truth["url"] == BASE + article.path
    assert truth["language"] == "en"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:00[+]0[01]:00", truth["published_at"])
    topic = site.expected_topics(BASE)[0]
    assert topic["url"] == f"{BASE}/topics/immunomodulation/"
    assert topic["article_count"] == len(topic["article_urls"])
    assert topic["description"] == "\n\n".join(site.topics[0].description)


def test_listing_pages_show_the_truths_cards_in_order(site):
    for truth in site.expected_topics(BASE):
        pages = math.ceil(truth["article_count"] / site.per_page)
        first = truth["url"].removeprefix(BASE)
        links: list[str] = []
        for n in range(1, pages + 1):
            links += CARD_LINK.findall(page(site, first if n == 1 else f"{first}page/{n}/"))
        assert links == truth["article_urls"]
        assert render(site, f"{first}page/{pages + 1}/").status == 404
        head = page(site, first)
        description = search(r'<div class="archive-description">(.*?)</div>', head)
        paragraphs = re.findall(r"<p>(.*?)</p>", description.group(1))
        assert "\n\n".join(html.unescape(p) for p in paragraphs) == truth["description"]
        assert f'<h1 class="page-title">{html.escape(truth["name"])}</h1>' in head
        if pages > 1:
            assert "archive-description" not in page(site, f"{first}page/2/")


def test_cards_write_dates_and_counts_like_the_seed(site):
    by_url = {BASE + a.path: a for a in site.articles}
    markup = page(site, "/topics/heart-health/")
    for card in re.findall(r'<article class="post-card.*?</article>', markup, re.S):
        article = by_url[search(CARD_LINK.pattern, card).group(1)]
        day = article.published
        assert f'<li class="posted-on">{day:%b}, {day.day} {day.year}</li>' in card
        count = re.search(r'<li class="comments-count">(\d+)</li>', card)
        shown = int(count.group(1)) if count else None
        assert shown == article.comment_count
        assert f'alt="{html.escape(article.title)}"' in card


def test_article_pages_agree_with_the_truth(site):
    for article, truth in list(zip(site.articles, site.expected_articles(BASE), strict=True))[:40]:
        markup = page(site, article.path)
        assert f'<h1 class="entry-title">{html.escape(truth["title"])}</h1>' in markup
        assert f'<link rel="canonical" href="{truth["url"]}">' in markup
        assert f'class="entry-date published" datetime="{truth["published_at"]}"' in markup
        assert (f'<time class="updated" datetime="{truth["updated_at"]}"' in markup) == bool(
            truth["updated_at"]
        )
        assert f'rel="author" href="{BASE}/author/{article.author_slug}/">' in markup
        assert entry_text(markup) == truth["text"]
        topics = re.findall(r'rel="category tag">([^<]+)</a>', markup)
        assert [html.unescape(t) for t in topics] == truth["topics"]
        assert "trackRead" in markup
        assert "trackRead" not in truth["text"]
        assert "Updated 12/01/2025" in markup
        assert "?utm_source=sidebar&amp;utm_medium=widget" in markup


def test_jsonld_only_on_even_posts_and_matching_the_truth(site):
    for article, truth in list(zip(site.articles, site.expected_articles(BASE), strict=True))[:30]:
        markup = page(site, article.path)
        found = re.search(r'<script type="application/ld\+json">(.*?)</script>', markup, re.S)
        assert bool(found) == (article.post_id % 2 == 0)
        if found:
            data = json.loads(found.group(1))
            assert data["headline"] == truth["title"]
            assert data["datePublished"] == truth["published_at"]
            assert data.get("dateModified") == truth["updated_at"]
            assert data["author"]["name"] == truth["author"]
            assert data.get("commentCount") == truth["comment_count"]


@pytest.mark.parametrize(
    ("wanted", "link", "section"),
    [
        (None, '<span class="comments-link">Comments are closed</span>', "Comments are closed."),
        (0, '<a href="#respond">Leave a comment</a>', "No comments yet"),
        (1, '<a href="#comments">1 Comment</a>', "1 thought on “"),
        ("many", '<a href="#comments">{n} Comments</a>', "{n} thoughts on “"),
    ],
)
def test_comment_wording_variants(site, wanted, link, section):
    def matches(count: int | None) -> bool:
        return (count or 0) > 3 if wanted == "many" else count == wanted

    article = next(a for a in site.articles if matches(a.comment_count))
    markup = page(site, article.path)
    n = article.comment_count
    assert link.format(n=n) in markup
    assert section.format(n=n) in markup
    assert markup.count('<li class="comment">') == min(n or 0, 3)


def test_some_articles_write_accents_decomposed_and_entities(site):
    decomposed = [
        a for a in site.articles if a.post_id % 3 == 0 and "naïve" in " ".join(a.paragraphs)
    ]
    markup = page(site, decomposed[0].path)
    assert unicodedata.normalize("NFD", "naïve") in markup
    assert "&#8217;" in markup
    assert entry_text(markup) == "\n\n".join(decomposed[0].paragraphs)


def test_redirects_and_not_found(site):
    topic = site.topics[0].slug
    moved = render(site, f"/topics/{topic}/page/1/")
    assert (moved.status, moved.headers["Location"]) == (301, f"{BASE}/topics/{topic}/")
    slashless = render(site, site.articles[0].path.rstrip("/") + "?a=1")
    assert slashless.headers["Location"] == BASE + site.articles[0].path + "?a=1"
    for path in (
        "/nope/",
        "/topics/nope/",
        "/2001/01/" + site.articles[0].slug + "/",
        "/img/x.jpg",
    ):
        assert render(site, path).status == 404, path
    assert render_path(site, BASE, "*") is None


def test_every_link_leads_to_a_page_and_every_record_is_reachable(site):
    """A crawl of the rendered site (minus /search and images) meets no 404 and finds it all."""
    seen, queue = {f"{BASE}/"}, [f"{BASE}/"]
    while queue:
        url = queue.pop()
        response = render(site, url.removeprefix(BASE))
        assert response.status == 200, url
        for href in re.findall(r'href="([^"]+)"', response.body.decode()):
            link = html.unescape(href).split("?")[0].split("#")[0]
            if link.startswith(BASE) and not link.startswith(f"{BASE}/search") and link not in seen:
                seen.add(link)
                queue.append(link)
    assert {a["url"] for a in site.expected_articles(BASE)} <= seen
    assert {t["url"] for t in site.expected_topics(BASE)} <= seen
    assert {f"{BASE}/author/{slug}/" for slug in site.authors} <= seen


def test_home_about_and_author_pages_have_no_cards(site):
    home = page(site, "/")
    assert [f"{BASE}{a.path}" for a in site.articles[:10]] == re.findall(
        r'<li><a href="([^"]+)">', search(r'class="latest-posts">(.*?)</section>', home).group(1)
    )
    for topic in site.topics:
        assert f'href="{BASE}/topics/{topic.slug}/"' in home
    slug, name = next(iter(site.authors.items()))
    profile = page(site, f"/author/{slug}/")
    assert f'<h1 class="profile-name">{html.escape(name)}</h1>' in profile
    posts = search(r'<ul class="author-posts">(.*?)</ul>', profile).group(1)
    assert re.findall(r'href="([^"]+)"', posts) == [
        BASE + a.path for a in site.articles if a.author_slug == slug
    ]
    for markup in (home, page(site, "/about/"), profile):
        assert "post-card" not in markup
        assert 'class="entry-content"' not in markup
    assert render(site, "/author/nobody/").status == 404


def test_robots_and_sitemap(site):
    robots = render(site, "/robots.txt")
    assert robots.content_type.startswith("text/plain")
    assert robots.body.decode().splitlines() == [
        "User-agent: *",
        "Disallow: /search",
        "Disallow: /wp-admin/",
        "",
        f"Sitemap: {BASE}/sitemap.xml",
    ]
    root = ET.fromstring(render(site, "/sitemap.xml").body)
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    locs = [u.findtext("s:loc", namespaces=ns) for u in root.findall("s:url", ns)]
    expected = [f"{BASE}/"] + [t["url"] for t in site.expected_topics(BASE)]
    assert locs == expected + [a["url"] for a in site.expected_articles(BASE)]
    lastmods = {
        u.findtext("s:loc", namespaces=ns): u.findtext("s:lastmod", namespaces=ns)
        for u in root.findall("s:url", ns)
    }
    for truth in site.expected_articles(BASE):
        assert lastmods[truth["url"]] == (truth["updated_at"] or truth["published_at"])


# --- the server --------------------------------------------------------------------------------


def test_server_serves_pages_with_validators(server, site):
    status, headers, body = fetch(server.base_url + site.articles[3].path)
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert int(headers["Content-Length"]) == len(body)
    assert re.fullmatch(r'"[0-9a-f]{32}"', headers["ETag"])
    modified = site.articles[3].modified
    assert parsedate_to_datetime(headers["Last-Modified"]) == modified
    assert body == render(site, site.articles[3].path, server.base_url).body
    status, headers, body = fetch(server.base_url + "/img/" + site.articles[0].slug + ".jpg")
    assert status == 200
    assert headers["Content-Type"] == "image/jpeg"
    assert body.startswith(b"\xff\xd8")
    assert body.endswith(b"\xff\xd9")
    assert fetch(server.base_url + "/about")[0] == 301
    assert fetch(server.base_url + "/missing")[0] == 404
    assert fetch(server.base_url + "/missing/")[0] == 404


def test_conditional_get_answers_304(server):
    url = server.base_url + "/topics/antibiotics/"
    _, headers, _body = fetch(url)
    etag, modified = headers["ETag"], headers["Last-Modified"]
    status, hit, empty = fetch(url, **{"If-None-Match": etag})
    assert (status, empty, hit["ETag"]) == (304, b"", etag)
    assert fetch(url, **{"If-None-Match": f'"other", W/{etag}'})[0] == 304
    assert fetch(url, **{"If-None-Match": '"other"'})[0] == 200
    assert fetch(url, **{"If-Modified-Since": modified})[0] == 304
    earlier = format_datetime(parsedate_to_datetime(modified) - timedelta(seconds=1), usegmt=True)
    assert fetch(url, **{"If-Modified-Since": earlier})[0] == 200
    assert fetch(url, **{"If-None-Match": '"other"', "If-Modified-Since": modified})[0] == 200
    assert fetch(url, **{"If-Modified-Since": "not a date"})[0] == 200


def test_gzip_when_asked_and_head(server):
    url = server.base_url + "/"
    _, plain_headers, plain = fetch(url)
    status, headers, packed = fetch(url, **{"Accept-Encoding": "gzip, deflate"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed) == plain
    assert int(headers["Content-Length"]) == len(packed)
    assert headers["ETag"] == plain_headers["ETag"]
    assert "Content-Encoding" not in plain_headers
    assert fetch(url, **{"Accept-Encoding": "gzip;q=0"})[1]["Content-Encoding"] is None
    status, head_headers, nothing = fetch(url, method="HEAD")
    assert (status, nothing) == (200, b"")
    assert head_headers["Content-Length"] == str(len(plain))


def test_request_log_records_what_the_client_did(site):
    with DemoServer(site) as server:
        fetch(server.base_url + "/robots.txt", **{"User-Agent": "crawldex-test/1.0"})
        fetch(server.base_url + "/about/", **{"If-None-Match": '"x"'})
        log = server.requests
        assert [(r.method, r.path, r.status) for r in log] == [
            ("GET", "/robots.txt", 200),
            ("GET", "/about/", 200),
        ]
        assert (
            log[0].headers["user-agent"] == log[0].headers.get("User-Agent") == "crawldex-test/1.0"
        )
        assert "IF-NONE-MATCH" in log[1].headers
        assert log[0].time <= log[1].time
        assert not [r for r in log if r.path.startswith("/search")]
        server.clear_requests()
        assert server.requests == []


def test_override_routes_win_over_the_site(site):
    def unavailable(request: RequestInfo) -> Response:
        return Response(503, "text/plain", b"busy", {"Retry-After": "2"})

    def teapot(request: RequestInfo) -> Response:
        return Response(418, "text/plain", request.path.encode())

    with DemoServer(site, routes={"/status/": unavailable, "/status/418": teapot}) as server:
        status, headers, body = fetch(server.base_url + "/status/500")
        assert (status, headers["Retry-After"], body) == (503, "2", b"busy")
        assert "ETag" in headers
        assert "Last-Modified" in headers
        assert fetch(server.base_url + "/status/418?x=1")[2] == b"/status/418?x=1"
        assert fetch(server.base_url + "/about/")[0] == 200


def test_set_site_swaps_what_is_served():
    before, after = build_site(articles=20, topics=2), build_site(articles=21, topics=2)
    with DemoServer(before) as server:
        _, headers, _ = fetch(server.base_url + "/")
        server.set_site(after)
        assert server.site is after
        status, _, body = fetch(server.base_url + "/", **{"If-None-Match": headers["ETag"]})
        assert status == 200
        assert body == render(after, "/", server.base_url).body


def test_lifecycle_is_idempotent_and_quiet(site, capfd):
    server = DemoServer(site)
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.base_url
    server.start()
    assert server.start() is server
    base = server.base_url
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base)
    assert fetch(base + "/nope/")[0] == 404
    server.stop()
    server.stop()
    with pytest.raises(urllib.error.URLError):
        fetch(base + "/")
    assert capfd.readouterr().err == ""


def test_serve_forever_blocking_reports_its_url_and_stops(site):
    stop, seen = threading.Event(), []

    def ready(base_url: str) -> None:
        seen.append(fetch(base_url + "/robots.txt")[0])
        stop.set()

    serve_forever_blocking(site, on_ready=ready, stop=stop)
    assert seen == [200]
