"""Extract stage: fixture pages in, ``Extracted`` out; plus the tricky cases and fuzzing.

Every field of every fixture page under ``tests/sites/fixtures/`` is checked against the
``extracted`` part of the JSON beside it.
"""

from __future__ import annotations

import json
import pickle
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import SiteConfig
from pipeline.extract import dom, extract, extract_page
from pipeline.models import (
    ArticlePage,
    Fetched,
    Link,
    Links,
    ListingPage,
    OtherPage,
    Target,
    TopicRef,
)
from pipeline.run import jsonable
from pipeline.workers import extract_here

SITES = Path(__file__).parent.parent / "sites"
FIXTURES = SITES / "fixtures"
CASES = sorted(
    [path.stem for path in FIXTURES.glob("*.json")]
    + [f"{p.parent.name}/{p.stem}" for p in SITES.glob("*/*.json") if p.parent != FIXTURES]
)
"""Fixture pages: ``fixtures/<name>`` (demo-style) and ``<cms family>/<page>``."""


def fixture_path(name: str, suffix: str) -> Path:
    """The file of a fixture case: ``fixtures/<name>`` or ``<family>/<page>``."""
    return (SITES / name if "/" in name else FIXTURES / name).with_suffix(suffix)


def load_case(name: str) -> tuple[str, dict[str, Any]]:
    """A fixture page's HTML and its expected JSON."""
    html = (fixture_path(name, ".html")).read_text(encoding="utf-8")
    expected = json.loads(fixture_path(name, ".json").read_text(encoding="utf-8"))
    return html, expected


def article(body: str, head: str = "", url: str = "https://blog.example/2025/05/post/") -> Any:
    """Extract a small page made of ``head`` and ``body``."""
    html = f"<!doctype html><html lang='en'><head>{head}</head><body>{body}</body></html>"
    return extract_page(html, url)


OG_ARTICLE = "<meta property='og:type' content='article'>"
LONG = "<p>" + "This paragraph is long enough to count as the body of a real post. " * 4 + "</p>"


# --- fixtures -----------------------------------------------------------------------------------


def test_fixtures_are_present() -> None:
    assert len(CASES) >= 10
    assert {"demo_topic", "demo_article_jsonld", "ghost_tag", "blogger_post"} <= set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_fixture_page_extracts_as_expected(name: str) -> None:
    html, expected = load_case(name)
    page = extract_page(html, expected["url"])
    got = jsonable(page)
    want = expected["extracted"]
    assert got.keys() == want.keys()
    for field in want:
        assert got[field] == want[field], f"{name}: field {field!r}"


@pytest.mark.parametrize("name", CASES)
def test_without_link_texts_only_a_non_listings_link_texts_are_left_empty(name: str) -> None:
    """The crawl extracts with ``link_texts=False``: the same page, except that an article's or
    other page's links carry no text; a listing keeps them (its pagination reads them)."""
    html, expected = load_case(name)
    full = extract_page(html, expected["url"])
    lean = extract_page(html, expected["url"], link_texts=False)
    if isinstance(full, ListingPage):
        assert lean == full
        return
    assert any(full.links.texts), name  # else this case tests nothing
    assert lean.links.texts == ("",) * len(full.links)
    assert lean.links.urls == full.links.urls
    assert lean.links.rels == full.links.rels
    assert replace(lean, links=full.links) == full


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("demo_topic", "listing"),
        ("demo_topic_page3", "listing"),
        ("ghost_tag", "listing"),
        ("demo_article_jsonld", "article"),
        ("demo_article_plain", "article"),
        ("blogger_post", "article"),
        ("jsonld_graph", "article"),
        ("no_date", "article"),
        ("demo_home", "other"),
        ("demo_about", "other"),
    ],
)
def test_pages_are_classified(name: str, kind: str) -> None:
    html, expected = load_case(name)
    assert extract_page(html, expected["url"]).kind == kind


def test_extract_reads_fetched_page_with_site_selectors() -> None:
    html, expected = load_case("demo_article_plain")
    target = Target(url=expected["url"], site="demo")
    fetched = Fetched(
        target=target, url=expected["url"], status=200, text=html, encoding="utf-8",
        fetched_at=datetime(2025, 11, 20, tzinfo=UTC),
    )  # fmt: skip
    site = SiteConfig(
        name="demo", start_urls=["http://demo.test/"], selectors={"author": ".site-title"}
    )
    page = extract(fetched, site)
    assert isinstance(page, ArticlePage)
    assert page.author == "MedGuide Demo"
    assert page.sources["author"] == "selector"


def test_the_crawls_extraction_reads_only_a_listings_link_texts() -> None:
    site = SiteConfig(name="demo", start_urls=["http://demo.test/"])
    texts = {}
    for name in ("demo_article_plain", "demo_topic"):
        html, expected = load_case(name)
        target = Target(url=expected["url"], site="demo")
        fetched = Fetched(
            target=target, url=expected["url"], status=200, text=html, encoding="utf-8",
            fetched_at=datetime(2025, 11, 20, tzinfo=UTC),
        )  # fmt: skip
        page, _record = extract_here(fetched, target, site)
        texts[page.kind] = set(page.links.texts)
    assert texts["article"] == {""}
    assert "2" in texts["listing"]  # a page number, as the frontier reads it


def test_site_selectors_find_what_detection_cannot() -> None:
    html = (
        "<h3 class='topic'>Odd Theme Topic</h3><div class='blurb'><p>About it.</p></div>"
        "<div class='grid'><div class='tile'><a href='/p/1'>One</a></div>"
        "<div class='tile'><a href='/p/2'>Two</a></div></div>"
    )
    url = "https://odd.example/t/odd/"
    assert isinstance(extract_page(html, url), OtherPage)
    selectors = {"card": ".tile", "name": ".topic", "description": ".blurb"}
    page = extract_page(html, url, selectors=selectors)
    assert isinstance(page, ListingPage)
    assert (page.name, page.description) == ("Odd Theme Topic", "About it.")
    assert [(c.url, c.title) for c in page.cards] == [
        ("https://odd.example/p/1", "One"), ("https://odd.example/p/2", "Two"),
    ]  # fmt: skip


def test_site_selectors_for_article_text_and_topics() -> None:
    head = OG_ARTICLE + "<meta property='article:published_time' content='2025-01-02'>"
    body = (
        "<div id='x'><p>Custom body one.</p><p>Custom body two.</p></div>"
        "<div class='entry-content'><p>Generic body.</p></div>"
        "<span class='subj'>Subject A</span><span class='subj'>Subject B</span>"
        "<b class='when'>2024-12-31</b>"
    )
    selectors = {"text": "#x", "topics": ".subj", "published": ".when", "bogus": "[["}
    page = extract_page(f"<head>{head}</head>{body}", "https://x.example/a/", selectors=selectors)
    assert isinstance(page, ArticlePage)
    assert page.text == "Custom body one.\n\nCustom body two."
    assert page.topics == (TopicRef("Subject A"), TopicRef("Subject B"))
    assert page.published == "2024-12-31"
    assert page.sources["text"] == page.sources["topics"] == page.sources["published"] == "selector"


# --- never invent a value -----------------------------------------------------------------------


def test_no_date_from_footer_comment_or_sidebar() -> None:
    page = article(
        "<main><article><h1>Spacers</h1><p class='byline'>By <a rel='author' href='/a/'>Ann</a></p>"
        f"{LONG}</article>"
        "<section id='comments'><div class='comment'><time datetime='2025-01-02'>2 Jan</time>"
        "<span class='author'>Bob</span></div></section></main>"
        "<aside><span class='post-date'>Nov, 3 2025</span></aside>"
        "<footer><p>© 2025 Site. Updated 12/01/2025</p></footer>"
    )
    assert isinstance(page, ArticlePage)
    assert page.published is None
    assert page.updated is None
    assert page.author == "Ann"


def test_author_never_from_a_comment() -> None:
    page = article(
        f"<article><h1>Post</h1><time datetime='2025-05-01'>May 1</time>{LONG}</article>"
        "<div id='comments'><div class='comment'><span class='author vcard'>"
        "<span class='fn'>Commenter</span></span></div></div>"
    )
    assert isinstance(page, ArticlePage)
    assert page.published == "2025-05-01"
    assert page.author is None


# --- structured data ----------------------------------------------------------------------------


def test_jsonld_array_nested_authors_and_interaction_statistic() -> None:
    data = [
        {"@type": "Organization", "name": "Example News"},
        {
            "@type": "NewsArticle",
            "headline": "Markets &amp; Medicine",
            "datePublished": 1730452200,
            "author": [{"@type": "Person", "name": "A. One"}, {"name": "B. Two"}],
            "interactionStatistic": {
                "@type": "InteractionCounter",
                "interactionType": {"@type": "CommentAction"},
                "userInteractionCount": "14",
            },
            "keywords": "pharma, markets",
        },
    ]
    head = f"<script type='application/ld+json'>{json.dumps(data)}</script>"
    page = article(f"<article>{LONG}</article>", head)
    assert isinstance(page, ArticlePage)
    assert (page.title, page.published, page.author, page.comments) == (
        "Markets &amp; Medicine", "1730452200", "A. One, B. Two", "14",
    )  # fmt: skip
    assert page.topics == (TopicRef("pharma"), TopicRef("markets"))
    assert page.sources["topics"] == "jsonld"


def test_jsonld_that_is_broken_is_skipped_or_repaired() -> None:
    head = (
        '<script type=\'application/ld+json\'>{"@type": "BlogPosting", oops}</script>'
        '<script type=\'application/ld+json\'><!--\n{"@type": "BlogPosting",'
        ' "headline": "Repaired", "commentCount": 3,}\n--></script>'
        "<script type='application/ld+json'>" + "[" * 5000 + "]" * 5000 + "</script>"
    )
    page = article(f"<article><h1>Visible</h1>{LONG}</article>", head)
    assert isinstance(page, ArticlePage)
    assert page.title == "Repaired"
    assert page.comments == "3"


def test_h_entry_microformats_ignore_nested_comment_entries() -> None:
    page = article(
        "<div class='h-entry'><h2 class='p-name'>Microformat Post</h2>"
        "<a class='p-author h-card' href='/me'>Kim Lee</a>"
        "<time class='dt-published' datetime='2025-04-02T08:00:00+02:00'>2 Apr</time>"
        f"<div class='e-content'>{LONG}</div>"
        "<a class='p-category' href='/t/x/'>X</a>"
        "<div class='h-cite p-comment'><span class='p-author h-card'>Spammer</span>"
        "<time class='dt-published' datetime='2025-04-09'>9 Apr</time></div></div>"
    )
    assert isinstance(page, ArticlePage)
    assert (page.title, page.author, page.published) == (
        "Microformat Post", "Kim Lee", "2025-04-02T08:00:00+02:00",
    )  # fmt: skip
    assert page.topics == (TopicRef("X", "https://blog.example/t/x/"),)
    assert page.sources["published"] == "microformats"


def test_dublin_core_meta_and_title_tag_without_site_name() -> None:
    head = (
        "<title>Dublin Core Post | Some Site</title>"
        "<meta name='DC.date.issued' content='2024-06-01'>"
        "<meta name='DC.creator' content='Pat Doe'>"
        "<meta http-equiv='content-language' content='fr-CA'>"
    )
    html = f"<html><head>{head}</head><body><article><p>x</p>{LONG}</article></body></html>"
    page = extract_page(html, "https://x.example/p/")
    assert isinstance(page, ArticlePage)
    assert (page.title, page.published, page.author, page.language) == (
        "Dublin Core Post", "2024-06-01", "Pat Doe", "fr",
    )  # fmt: skip
    assert page.sources["title"] == "title_tag"


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("<a href='#comments'>1 Comment</a>", "1 Comment"),
        ("<a href='#respond'>Leave a comment</a>", "Leave a comment"),
        ("<span class='comments-link'>Comments are closed</span>", "Comments are closed"),
        ("<span class='comments-link'><a href='#c'>No comments</a></span>", "No comments"),
    ],
)
def test_visible_comment_wording(link: str, expected: str) -> None:
    page = article(
        f"<article><header><h1>T</h1><time datetime='2025-01-01'>x</time>{link}</header>"
        f"{LONG}</article>"
    )
    assert isinstance(page, ArticlePage)
    assert page.comments == expected


def test_text_skips_script_style_noscript_template_figure() -> None:
    page = article(
        "<article><h1>Title</h1><div class='entry-content'>"
        "<p>Kept <em>inline</em> text<script>bad()</script><style>p{}</style>.</p>"
        "<noscript>no js</noscript><template><p>tpl</p></template>"
        "<figure><img alt='a'><figcaption>caption</figcaption></figure>"
        "<p>Line one<br>line two<br><br>new paragraph</p></div>"
        "<time datetime='2025-01-01'></time></article>",
        OG_ARTICLE,
    )
    assert isinstance(page, ArticlePage)
    assert page.text == "Kept inline text.\n\nLine one line two\n\nnew paragraph"


def test_links_are_absolute_and_skip_non_http_and_fragments() -> None:
    page = extract_page(
        "<a href='/a b'>A</a><a href='javascript:x()'>j</a><a href='mailto:x@y'>m</a>"
        "<a href='tel:1'>t</a><a href='data:text/html,x'>d</a><a href='#top'>f</a>"
        "<a href=' ../up/?q=1#frag ' rel='nofollow'>Up</a><a href='http://[bad'>bad</a>"
        "<a href='//cdn.example/x'><img alt='logo'></a>",
        "https://site.example/dir/page.html",
    )
    assert tuple(page.links) == (
        Link("https://site.example/a b", "A"),
        Link("https://site.example/up/?q=1#frag", "Up", "nofollow"),
        Link("https://cdn.example/x", "logo"),
    )


def test_absolute_links_are_remembered_across_pages_and_relative_ones_are_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dom, "_ABSOLUTE", {})
    monkeypatch.setattr(dom, "_ABSOLUTE_LIMIT", 3)
    html = (
        "<a href='https://site.example/a'>A</a><a href='http://[bad'>bad</a>"
        "<a href='next.html'>N</a><a href=' https://site.example/b '>B</a>"
    )
    first = extract_page(html, "https://site.example/one/page.html").links.urls
    second = extract_page(html, "https://site.example/two/page.html").links.urls
    assert first == (
        "https://site.example/a",
        "https://site.example/one/next.html",
        "https://site.example/b",
    )
    assert second == (  # a relative link follows each page's own base URL
        "https://site.example/a",
        "https://site.example/two/next.html",
        "https://site.example/b",
    )
    assert dom._ABSOLUTE == {  # the malformed one too, as None
        "https://site.example/a": "https://site.example/a",
        "http://[bad": None,
        " https://site.example/b ": "https://site.example/b",
    }
    extract_page("<a href='https://other.example/'>o</a>", "https://site.example/")
    assert dom._ABSOLUTE == {"https://other.example/": "https://other.example/"}  # started over


def test_a_pages_links_read_as_a_sequence_of_link_and_as_columns() -> None:
    page = extract_page(
        "<a href='/a'>A</a><a href='/b' rel=' next '>B</a><a href='/c'><img alt='C'></a>",
        "https://site.example/",
    )
    links = page.links
    expected = [
        Link("https://site.example/a", "A"),
        Link("https://site.example/b", "B", "next"),
        Link("https://site.example/c", "C"),
    ]
    assert (len(links), list(links), links[1], links[-1]) == (3, expected, expected[1], expected[2])
    assert links.urls == tuple(link.url for link in expected)
    assert links.texts == ("A", "B", "C")
    assert links.rels == ("", "next", "")
    assert links[1:] == Links.of(expected[1:])
    assert links == Links.of(expected)
    assert links != Links.of(expected[:2])
    assert expected[0] in links
    assert pickle.loads(pickle.dumps(links, 5)) == links
    with pytest.raises(ValueError, match="as long as each other"):
        Links(("https://site.example/a",), (), ())


# --- robustness ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "html",
    ["", "   ", "<", "\x00\x01\x02", "not html at all", "<html><body></body>", "\ufeff<p>x",
     "<script type='application/ld+json'>", "<?xml version='1.0'?><rss></rss>", "%PDF-1.4 \x89"],
)  # fmt: skip
def test_garbage_gives_other_page(html: str) -> None:
    assert isinstance(extract_page(html, "https://x.example/"), OtherPage)


@pytest.mark.parametrize("name", CASES)
def test_truncated_fixtures_never_raise(name: str) -> None:
    html, expected = load_case(name)
    for cut in range(0, len(html), max(1, len(html) // 23)):
        extract_page(html[:cut], expected["url"])


def test_absurdly_nested_page_is_fast_and_safe() -> None:
    html = "<div>" * 60_000 + "<p>deep</p>" + "<span>" * 20_000
    start = time.perf_counter()
    page = extract_page(html, "https://x.example/")
    assert isinstance(page, OtherPage)
    assert time.perf_counter() - start < 3


TAGS = ["div", "p", "a", "article", "h1", "h2", "time", "span", "li", "ul", "main", "script",
        "style", "aside", "br", "meta", "title", "header", "footer", "abbr", "td"]  # fmt: skip
ATTRS = ["href='/2025/01/x/'", "href='/2025/02/y/'", "class='post-card'", "class='entry-title'",
         "datetime='2025-01-01'", "rel='tag'", "class='comments-link'", "itemprop='headline'",
         "itemscope itemtype='https://schema.org/Article'", "class='h-entry'",
         "type='application/ld+json'", "property='og:type' content='article'",
         "class='archive author'", "class='date-header'", "class='field--name-created'",
         "class='dek'", "class='timestamp'", "href='/search/label/X'", "rel='next' href='?page=2'",
         "class='field--name-field-tags'", "class='page-title'"]  # fmt: skip
TEXTS = [
    "Nov, 1 2025",
    "9",
    "12 Comments",
    "3. März 2025",
    "1.2k comments",
    "Author: Ann",
    "Title here",
    '{"@type": "Article"}',
    "&amp;",
    "",
]


@st.composite
def html_ish(draw: st.DrawFn) -> str:
    """Random soups of the tags, attributes and texts extraction cares about."""
    parts = []
    for _ in range(draw(st.integers(0, 40))):
        choice = draw(st.integers(0, 3))
        tag = draw(st.sampled_from(TAGS))
        if choice == 0:
            parts.append(f"<{tag} {draw(st.sampled_from(ATTRS))}>")
        elif choice == 1:
            parts.append(f"</{tag}>")
        elif choice == 2:
            parts.append(draw(st.sampled_from(TEXTS)))
        else:
            parts.append(draw(st.text(max_size=20)))
    return "".join(parts)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_text_never_raises(text: str) -> None:
    page = extract_page(text, "https://x.example/2025/01/page/")
    assert isinstance(page, ListingPage | ArticlePage | OtherPage)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(html_ish())
def test_any_tag_soup_never_raises(html: str) -> None:
    page = extract_page(html, "https://x.example/topics/t/")
    assert isinstance(page, ListingPage | ArticlePage | OtherPage)
    assert all(link.url.startswith(("http://", "https://")) for link in page.links)


@pytest.mark.parametrize(
    ("name", "archive"),
    [("wordpress/category", "topic"), ("wordpress/author", "author"), ("blogger/label", "topic"),
     ("hugo/list", "topic"), ("drupal/listing", "topic"), ("news/section", "topic")],
)  # fmt: skip
def test_listing_archive_kind(name: str, archive: str) -> None:
    html, expected = load_case(name)
    page = extract_page(html, expected["url"])
    assert isinstance(page, ListingPage)
    assert page.archive == archive


@pytest.mark.parametrize(
    ("url", "body", "heading", "archive"),
    [("https://x.example/2025/05/", "", "May 2025", "date"),
     ("https://x.example/?s=flu", "", "Flu", "search"),
     ("https://x.example/people/ann/", "", "Ann", "author"),
     ("https://x.example/t/x/", "", "Posts by Ann", "author"),
     ("https://x.example/t/x/", "archive date", "X", "date"),
     ("https://x.example/search/label/Flu", "", "Flu", "topic")],
)  # fmt: skip
def test_archive_kind_from_url_body_class_and_heading(
    url: str, body: str, heading: str, archive: str
) -> None:
    cards = "".join(
        f"<article class='post'><h2 class='entry-title'><a href='/p/{n}/'>Post {n}</a></h2>"
        f"<time datetime='2025-05-0{n}'>May {n}</time></article>"
        for n in (1, 2)
    )
    html = f"<html><body class='{body}'><main><h1>{heading}</h1>{cards}</main></body></html>"
    page = extract_page(html, url)
    assert isinstance(page, ListingPage)
    assert page.archive == archive


def test_selector_unions_select_what_their_parts_select():
    from pipeline.demo import build_site
    from pipeline.demo.render import render_path
    from pipeline.extract.dom import parse_document, select_ids
    from pipeline.extract.selectors import (
        COMMENTS,
        CONTENT_NOISE,
        CONTENT_NOISE_OR_COMMENTS,
        NOISE,
        NOISE_OR_COMMENTS,
        selector_union,
    )

    assert selector_union("a, b", " b,c ") == "a, b, c"
    site = build_site(articles=3, topics=1, layout="heavy")
    response = render_path(site, "http://demo.test", site.articles[0].path)
    assert response is not None
    body = parse_document(response.body.decode(), "http://demo.test/").body
    for union, parts in [
        (NOISE_OR_COMMENTS, (NOISE, COMMENTS)),
        (CONTENT_NOISE_OR_COMMENTS, (CONTENT_NOISE, COMMENTS)),
    ]:
        expected = set().union(*(select_ids(body, part) for part in parts))
        assert select_ids(body, union) == expected
        assert len(expected) > 5


def test_pagination_links_below_every_container_kind_once_each_in_page_order():
    # lexbor's ``:is(X) a`` misses links below a child element of X: each container kind
    # here holds its link two levels down, and the ``.page-numbers`` links are the containers.
    from pipeline.extract.dom import parse_document, select
    from pipeline.extract.selectors import PAGINATION, PAGINATION_LINKS

    containers = PAGINATION.split(", ")
    html = "<body><a href='/before'>x</a>"
    for n, container in enumerate(containers):
        tag, _, cls = container.partition(".")
        if container.startswith("["):
            tag, attrs = "div", "aria-label='Pagination'"
        else:
            tag, attrs = (tag or "div"), (f"class='{cls}'" if cls else f"id='{container[1:]}'")
        html += f"<{tag} {attrs}><ul><li><a href='/c{n}'>{n}</a></li></ul></{tag}>"
    html += "<div class='nav-links'><a class='page-numbers' href='/pn'><b>9</b></a></div>"
    html += "<p><a class='page-numbers' href='/alone'>10</a></p><a href='/after'>y</a></body>"
    doc = parse_document(html, "http://site.test/")
    found = [node.attributes["href"] for node in select(doc.body, PAGINATION_LINKS)]
    assert found == [f"/c{n}" for n in range(len(containers))] + ["/pn", "/alone"]


def test_select_gives_each_match_of_a_list_once():
    from pipeline.extract.dom import parse_document, select

    doc = parse_document("<body><p class='a b'>1</p><p class='b'>2</p></body>", "http://s.test/")
    assert [n.text() for n in select(doc.body, ".a, .b")] == ["1", "2"]
    assert [n.text() for n in select(doc.body, "p:is(.a, .b)")] == ["1", "2"]
    assert [n.text() for n in select(doc.body, "p[title='x,y'], .b, .a")] == ["1", "2"]
