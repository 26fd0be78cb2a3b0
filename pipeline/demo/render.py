"""Render the demo site's model as HTTP responses: HTML pages, robots.txt, sitemap.xml, images.

``render_path(site, base_url, path)`` is the whole site as a pure function of the model: it
routes the path to a page of ``pages`` (or robots.txt, sitemap.xml, an image) and returns a
``Response`` carrying the page's ``Last-Modified``. ``server`` adds HTTP caching, gzip and a
request log on top.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import parse_qs, unquote, urlsplit

from pipeline.demo import pages
from pipeline.demo.article_page import article_page
from pipeline.demo.content import DemoArticle, DemoSite

__all__ = ["HTML_TYPE", "TINY_JPEG", "Response", "http_date", "render_path"]

HTML_TYPE = "text/html; charset=utf-8"
TINY_JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300010101010101010101010101010101010101"
    "01010101010101010101010101010101010101010101010101010101010101010101010101010101010101"
    "0101ffc0000b080001000101011100ffc40014000100000000000000000000000000000000ffc400141001"
    "00000000000000000000000000000000ffda0008010100003f003fffd9"
)
"""A valid 1x1 grey baseline JPEG (159 bytes), served for every card image."""


@dataclass(frozen=True, slots=True)
class Response:
    """One HTTP response before transport concerns (validators, gzip, Content-Length).

    Attributes:
        status: HTTP status code.
        content_type: the Content-Type header value.
        body: the identity-encoded body.
        headers: extra headers (``Last-Modified``, ``Location``, ``Retry-After``...).
    """

    status: int
    content_type: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


_Route = Callable[[DemoSite, str, "re.Match[str]", str], "Response | None"]


def render_path(site: DemoSite, base_url: str, path_with_query: str) -> Response | None:
    """Render the response for one request target of the demo site.

    Unknown paths get the 404 page; ``/topics/x/page/1/`` and paths missing their trailing
    slash get a 301 to the canonical form, as WordPress does.

    Args:
        site: the site model.
        base_url: scheme, host and port every absolute link is built from (no trailing slash).
        path_with_query: the request target, e.g. ``/topics/antibiotics/page/2/?x=1``.

    Returns:
        The response, or None when the target is not a path (``*`` or an absolute URL).
    """
    if not path_with_query.startswith("/"):
        return None
    base = base_url.rstrip("/")
    parts = urlsplit(path_with_query)
    path = unquote(parts.path)
    found = _route(site, base, path, parts.query)
    if found is None and not path.endswith("/") and _route(site, base, path + "/", ""):
        query = f"?{parts.query}" if parts.query else ""
        return _redirect(f"{base}{path}/{query}")
    if found is None:
        return _html(pages.not_found_page(site, base), site.now, status=404)
    return found


def http_date(moment: datetime) -> str:
    """An RFC 9110 HTTP date (``Thu, 20 Nov 2025 12:00:00 GMT``).

    Args:
        moment: an aware datetime.

    Returns:
        The date in GMT.
    """
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def _route(site: DemoSite, base: str, path: str, query: str) -> Response | None:
    """The response of the first route matching ``path``; None when none matches or it 404s."""
    for pattern, route in _ROUTES:
        match = pattern.fullmatch(path)
        if match:
            return route(site, base, match, query)
    return None


def _redirect(location: str) -> Response:
    """A permanent redirect."""
    body = f'<a href="{html.escape(location)}">Moved</a>'.encode()
    return Response(301, HTML_TYPE, body, {"Location": location})


def _html(text: str, modified: datetime, status: int = 200) -> Response:
    """An HTML response with its Last-Modified header."""
    return Response(status, HTML_TYPE, text.encode(), {"Last-Modified": http_date(modified)})


def _newest(articles: tuple[DemoArticle, ...], default: datetime) -> datetime:
    """The newest change among ``articles``."""
    return max((a.modified for a in articles), default=default)


def _home(site: DemoSite, base: str, match: re.Match[str], query: str) -> Response:
    """``/``."""
    return _html(pages.home_page(site, base), site.modified)


def _about(site: DemoSite, base: str, match: re.Match[str], query: str) -> Response:
    """``/about/``."""
    return _html(pages.about_page(site, base), site.now)


def _search(site: DemoSite, base: str, match: re.Match[str], query: str) -> Response:
    """``/search?q=``."""
    term = (parse_qs(query).get("q") or [""])[0].strip()
    return _html(pages.search_page(site, base, term), site.modified)


def _listing(
    site: DemoSite, base: str, listing: pages.Listing, page_text: str | None
) -> Response | None:
    """One listing page; None (404) past the last page, a 301 for an explicit page 1."""
    if page_text == "1":
        return _redirect(listing.first_url)
    page = int(page_text or "1")
    if page > site.page_count(len(listing.articles)):
        return None
    text = pages.listing_page(site, base, listing, page)
    return _html(text, _newest(listing.articles, site.now))


def _topic(site: DemoSite, base: str, match: re.Match[str], query: str) -> Response | None:
    """``/topics/<slug>/`` and ``/topics/<slug>/page/<n>/``."""
    topic = site.topic(match["slug"])
    if topic is None:
        return None
    listing = pages.Listing(
        f"{base}/topics/{topic.slug}/",
        topic.name,
        topic.description,
        site.topic_articles(topic.slug),
        f"archive category category-{topic.slug}",
    )
    return _listing(site, base, listing, match["page"])


def _author(site: DemoSite, base: str, match: re.Match[str], query: str) -> Response | None:
    """``/author/<slug>/``: a profile with plain links to the author's posts (not a listing)."""
    slug = match["slug"]
    if slug not in site.authors:
        return None
    articles = site.author_articles(slug)
    return _html(pages.author_page(site, base, slug), _newest(articles, site.now))


def _article(site: DemoSite, base: str, match: re.Match[str], query: str) -> Response | None:
    """``/<yyyy>/<mm>/<slug>/`` (404 when the year and month are not the article's)."""
    article = site.article(match["slug"])
    if article is None or article.path != match[0]:
        return None
    return _html(article_page(site, base, article), article.modified)


def _robots(site: DemoSite, base: str, match: re.Match[str], query: str) -> Response:
    """robots.txt: search and wp-admin are off limits; the sitemap is announced."""
    body = (
        f"User-agent: *\nDisallow: /search\nDisallow: /wp-admin/\n\nSitemap: {base}/sitemap.xml\n"
    )
    headers = {"Last-Modified": http_date(site.now)}
    return Response(200, "text/plain; charset=utf-8", body.encode(), headers)


def _sitemap(site: DemoSite, base: str, match: re.Match[str], query: str) -> Response:
    """sitemap.xml: home, every topic's first page and every article, each with lastmod."""
    entries = [(f"{base}/", site.modified)]
    entries += [
        (f"{base}/topics/{t.slug}/", _newest(site.topic_articles(t.slug), site.now))
        for t in site.topics
    ]
    entries += [(base + a.path, a.modified) for a in site.articles]
    urls = "\n".join(
        f"<url><loc>{html.escape(loc)}</loc><lastmod>{when.isoformat()}</lastmod></url>"
        for loc, when in entries
    )
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n{urls}\n</urlset>\n'
    )
    headers = {"Last-Modified": http_date(site.modified)}
    return Response(200, "application/xml; charset=utf-8", body.encode(), headers)


def _image(site: DemoSite, base: str, match: re.Match[str], query: str) -> Response | None:
    """``/img/<slug>.jpg``: the same tiny JPEG for every article."""
    article = site.article(match["slug"])
    if article is None:
        return None
    headers = {"Last-Modified": http_date(article.published)}
    return Response(200, "image/jpeg", TINY_JPEG, headers)


_ROUTES: tuple[tuple[re.Pattern[str], _Route], ...] = (
    (re.compile(r"/"), _home),
    (re.compile(r"/about/"), _about),
    (re.compile(r"/robots\.txt"), _robots),
    (re.compile(r"/sitemap\.xml"), _sitemap),
    (re.compile(r"/search/?"), _search),
    (re.compile(r"/topics/(?P<slug>[a-z0-9-]+)/(?:page/(?P<page>[1-9][0-9]*)/)?"), _topic),
    (re.compile(r"/author/(?P<slug>[a-z0-9-]+)/"), _author),
    (re.compile(r"/(?P<year>[0-9]{4})/(?P<month>[0-9]{2})/(?P<slug>[a-z0-9-]+)/"), _article),
    (re.compile(r"/img/(?P<slug>[a-z0-9-]+)\.jpg"), _image),
)
