"""Frontier: canonical URLs, scope, pagination metadata, per-cycle dedupe and resume."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import DEFAULT_STRIP_PARAMS, SiteConfig
from pipeline.frontier import Frontier, canonicalize_url, out_of_scope_reason, path_and_query
from pipeline.models import Card, Link, Links, ListingPage, Target
from pipeline.politeness import robots_url
from pipeline.store import Store

T0 = datetime(2025, 11, 20, tzinfo=UTC)
SITE = SiteConfig(name="s", start_urls=["http://site.test/"], exclude=[r"/wp-admin/"])


@settings(max_examples=300, deadline=None)
@given(
    scheme=st.sampled_from(["http", "HTTPS"]),
    netloc=st.sampled_from(
        [
            "site.test",
            "Site.test:8080",
            "u:p@site.test",
            "u@site.test",
            "u:8@site.test",
            "other.test",
            "u:p@other.test",
            "other.test:99",
            "site.test@other.test",
        ]
    ),
    rest=st.sampled_from(["", "/", "/a?b", "?q", "#f", ":", "/p:q@r"]),
)
def test_a_link_dropped_for_its_host_before_canonicalizing_is_one_the_scope_check_drops(
    scheme, netloc, rest
):
    """The quick drop of a plain off-site host must agree with the full path: a userinfo
    ``user:password@`` is not a host followed by a port."""
    frontier = Frontier([SITE], None, strip_params=DEFAULT_STRIP_PARAMS, max_depth=3)  # type: ignore[arg-type]
    raw = f"{scheme}://{netloc}{rest}"
    _url, scope, _trap = frontier._verdict(raw, SITE)
    try:
        want = out_of_scope_reason(canonicalize_url(raw, DEFAULT_STRIP_PARAMS), SITE)
    except ValueError:
        want = "bad_url"
    assert scope == want


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTP://Site.TEST:80/a/../b/?z=1&a=2#frag", "http://site.test/b/?a=2&z=1"),
        ("https://site.test:443", "https://site.test/"),
        ("http://site.test:8080/x", "http://site.test:8080/x"),
        ("http://site.test/p/?utm_source=sidebar&utm_medium=widget", "http://site.test/p/"),
        ("http://site.test/p/?id=3&fbclid=abc&gclid=1", "http://site.test/p/?id=3"),
        ("http://site.test/caf%c3%a9/", "http://site.test/caf%C3%A9/"),
    ],
)
def test_canonicalize(url, expected):
    assert canonicalize_url(url, DEFAULT_STRIP_PARAMS) == expected


_SEGMENTS = st.one_of(
    st.sampled_from(["", ".", "..", ".a", "a.", "%41", "%7e", "A", ";jsessionid=1", "?b=1#c"]),
    st.text("Aa0_-~.%/;?#", max_size=6),
)
_PATHS = st.lists(_SEGMENTS, max_size=4).map(lambda segments: "".join("/" + s for s in segments))


@settings(max_examples=400, deadline=None)
@given(
    scheme=st.sampled_from(["http", "https", "HTTP"]),
    host=st.sampled_from(["site.test", "Site.test", "127.0.0.1", "a-b.c0", "-a.test", "x" * 64]),
    port=st.sampled_from(["", ":80", ":443", ":8080", ":0080", ":"]),
    path=_PATHS,
)
def test_a_url_taken_as_already_canonical_is_what_the_full_canonicalization_gives(
    scheme, host, port, path
):
    from pipeline.frontier import _canonicalize

    url = f"{scheme}://{host}{port}{path}"
    assert canonicalize_url(url, DEFAULT_STRIP_PARAMS) == _canonicalize(url, DEFAULT_STRIP_PARAMS)


@settings(max_examples=200, deadline=None)
@given(
    scheme=st.sampled_from(["http", "HTTPS", "ftp"]),
    netloc=st.sampled_from(
        ["Site.test", "site.test:8080", "u:p@Site.test", "[::1]:80", "a.b.", "", "h_x.test"]
    ),
    rest=st.sampled_from(["", "/", "/a?b", "?q", "#f", ":", "/p:q@r"]),
)
def test_a_url_s_host_and_scope_are_what_urlsplit_gives(scheme, netloc, rest):
    from urllib.parse import urlsplit

    url = f"{scheme}://{netloc}{rest}"
    assert Frontier.host(url) == (urlsplit(url).hostname or "").lower()
    site = SiteConfig(name="s", start_urls=["http://site.test/"])
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        want: str | None = "scheme"
    else:
        want = None if (parts.hostname or "").lower() == "site.test" else "host"
    assert out_of_scope_reason(url, site) == want


@settings(max_examples=300, deadline=None)
@given(
    scheme=st.sampled_from(["http", "https", "HTTP", "ftp", " http"]),
    netloc=st.sampled_from(
        ["site.test", "Site.test:8080", "u:p@site.test", "[::1]:80", "a.b.", "", "h_x.test", "h\tx"]
    ),
    rest=st.sampled_from(["", "/", "/a?b", "?q", "#f", ":", "/p:q@r", "/a\nb"]),
)
def test_a_url_s_robots_txt_is_at_the_origin_urlsplit_gives(scheme, netloc, rest):
    from urllib.parse import urlsplit

    url = f"{scheme}://{netloc}{rest}"
    parts = urlsplit(url)
    assert robots_url(url) == f"{parts.scheme}://{parts.netloc}/robots.txt"


@settings(max_examples=300, deadline=None)
@given(
    scheme=st.sampled_from(["http", "https", "HTTP", "ftp", " http"]),
    netloc=st.sampled_from(
        ["site.test", "Site.test:8080", "u:p@site.test", "[::1]:80", "", "h\tx"]
    ),
    rest=st.text(alphabet="/?#=&a1.%\t\n ", max_size=12),
)
def test_a_url_s_path_and_query_are_what_urlsplit_gives(scheme, netloc, rest):
    from urllib.parse import urlsplit

    url = f"{scheme}://{netloc}{rest}"
    parts = urlsplit(url)
    assert path_and_query(url) == (parts.path, parts.query)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://site.test/a/", None),
        ("https://site.test/a/", None),
        ("ftp://site.test/a", "scheme"),
        ("http://other.test/a", "host"),
        ("http://site.test/wp-admin/x", "excluded"),
    ],
)
def test_scope(url, reason):
    assert out_of_scope_reason(url, SITE) == reason


def test_include_rules_limit_scope():
    site = SiteConfig(
        name="s", start_urls=["http://site.test/"], include=[r"/topics/", r"/20\d\d/"]
    )
    assert out_of_scope_reason("http://site.test/topics/x/", site) is None
    assert out_of_scope_reason("http://site.test/about/", site) == "not_included"


@pytest.fixture
def frontier(tmp_path):
    with Store(tmp_path) as store:
        f = Frontier([SITE], store.queue, strip_params=DEFAULT_STRIP_PARAMS, max_depth=3)
        with store.transaction():
            f.start(T0)
        yield f


def test_links_from_a_listing_carry_topic_and_page_numbers(frontier):
    parent = Target(url="http://site.test/topics/x/", site="s", depth=1)
    page = ListingPage(
        url=parent.url,
        name="X",
        description=None,
        cards=(Card(url="http://site.test/2025/11/a/?utm_source=x"),),
        next_url="http://site.test/topics/x/page/2/",
        page_urls=("http://site.test/topics/x/page/2/", "http://site.test/topics/x/page/3/"),
        links=Links.of(
            [
                Link("http://site.test/topics/x/page/3/", "3"),
                Link("http://other.test/"),
                Link("mailto:x@y"),
            ]
        ),
    )
    targets = {t.url: t for t in frontier.links_from(parent, page)}
    assert targets["http://site.test/topics/x/page/2/"].page_no == 2
    assert targets["http://site.test/topics/x/page/3/"].page_no == 3
    assert targets["http://site.test/topics/x/page/3/"].topic_url == parent.url
    assert targets["http://site.test/2025/11/a/"].depth == 2
    assert "http://other.test/" not in targets
    assert frontier.dropped["host"] == 1
    assert frontier.dropped["scheme"] == 1


def test_depth_limit_drops_deep_links(frontier):
    parent = Target(url="http://site.test/deep/", site="s", depth=3)
    page = ListingPage(
        url=parent.url,
        name=None,
        description=None,
        cards=(),
        links=Links.of([Link("http://site.test/deeper/")]),
    )
    assert frontier.links_from(parent, page) == []
    assert frontier.dropped["max_depth"] == 1


def test_verdicts_remembered_across_pages_still_count_drops_and_query_variants(tmp_path):
    """Each page's theme links are judged once; drops are still counted per page, and the
    query-variant trap still counts variants rather than trusting a remembered answer."""
    with Store(tmp_path) as store:
        f = Frontier(
            [SITE], store.queue, strip_params=DEFAULT_STRIP_PARAMS, max_depth=3,
            max_query_variants=2,
        )  # fmt: skip
        links = Links.of(
            [
                Link("http://other.test/"),
                Link("http://site.test/wp-admin/"),
                Link("http://site.test/a/b/a/b/a/b/a/b/a/b/"),
                Link("http://site.test/search/?q=1"),
                Link("http://site.test/search/?q=2"),
                Link("http://site.test/search/?q=3"),
                Link("http://site.test/post/"),
            ]
        )
        pages = [
            ListingPage(url=f"http://site.test/p{n}/", name=None, description=None, cards=(),
                        links=links)
            for n in range(3)
        ]  # fmt: skip
        kept = [
            sorted(t.url for t in f.links_from(Target(url=p.url, site="s", depth=1), p))
            for p in pages
        ]
    # q=1 and q=2 are the two variants allowed; seen again on later pages they stay allowed.
    expected = [
        "http://site.test/post/",
        "http://site.test/search/?q=1",
        "http://site.test/search/?q=2",
    ]
    assert kept == [expected] * 3
    assert f.dropped == {
        "host": 3,
        "excluded": 3,
        "repeated_segments": 3,
        "query_variants": 3,
    }


def test_fragments_and_foreign_hosts_cost_no_canonicalization(frontier):
    """A post's comment anchors are one URL, canonicalized once; a share button's plain foreign
    host is dropped before canonicalization; odd hosts still take the full path."""
    seen: list[str] = []
    real = frontier._canonical

    def spy(url: str) -> str:
        seen.append(url)
        return real(url)

    frontier._canonical = spy
    post = "http://site.test/2025/11/post/"
    links = Links.of(
        [
            *(Link(f"{post}#comment-{n}") for n in range(5)),
            Link("https://www.facebook.com/sharer.php?u=" + post),
            Link("https://TWITTER.com/intent/tweet?url=" + post),
            Link("http://user@other.test/"),  # userinfo: not a plain host
            Link("HTTP://SITE.TEST/2025/11/post/#top"),
        ]
    )
    page = ListingPage(url="http://site.test/", name=None, description=None, cards=(), links=links)
    targets = frontier.links_from(Target(url=page.url, site="s", depth=0), page)
    assert [t.url for t in targets] == [post]
    assert seen == [post, "http://user@other.test/", "HTTP://SITE.TEST/2025/11/post/"]
    assert frontier.dropped["host"] == 3


def test_a_url_queued_a_moment_ago_is_not_sent_to_the_queue_again(frontier):
    sent: list[str] = []
    enqueue = frontier.queue.enqueue

    def spy(items, cycle):
        items = list(items)
        sent.extend(t.url for t, _host in items)
        return enqueue(items, cycle)

    frontier.queue.enqueue = spy
    nav = [Target(url=f"http://site.test/{p}/", site="s", depth=1) for p in ("a", "b")]
    assert frontier.add([*nav, Target(url="http://site.test/c/", site="s", depth=1)]) == 3
    assert frontier.add([*nav, Target(url="http://site.test/d/", site="s", depth=2)]) == 1
    assert sent == [f"http://site.test/{p}/" for p in "abcd"]
    later = Target(url="http://site.test/e/", site="s", depth=1)
    assert frontier.not_just_queued([*nav, later]) == [later]
    frontier.settled_runs.add(("s", "http://site.test/page/", "/"), 2, 9)
    frontier.forget_recent()  # as after a rolled-back transaction: the queue decides again
    assert not frontier.settled_runs.covers(("s", "http://site.test/page/", "/"), 2, 9)
    assert frontier.not_just_queued(nav) == nav
    assert frontier.add(nav) == 0
    assert sent[4:] == [t.url for t in nav]


def test_start_resumes_an_unfinished_cycle(tmp_path):
    with Store(tmp_path) as store:
        first = Frontier([SITE], store.queue, strip_params=(), max_depth=3)
        with store.transaction():
            assert first.start(T0) == {"s": False}
            first.add([Target(url="http://site.test/a/", site="s", depth=1)])
        store.queue.claim(["s"], (), 10)  # both in flight when the "crash" happens
    with Store(tmp_path) as store:
        again = Frontier([SITE], store.queue, strip_params=(), max_depth=3)
        with store.transaction():
            assert again.start(T0) == {"s": True}
        assert store.queue.count(["s"]) == 2
        assert again.cycles == first.cycles
