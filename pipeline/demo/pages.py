"""The demo site's HTML: the shared frame and every page but the article page, as strings.

Follows the shared markup spec: WordPress-like classes, card dates like ``Nov, 1 2025``,
utm-tagged sidebar links, the misleading footer date, pagination with rel next/prev.
``article_page`` builds the article page on the same frame; ``render`` picks the page for a
path and wraps it in a response.
"""

# Curly quotes and dashes in the markup are deliberate (the spec's real-world punctuation).

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime

from pipeline.demo.content import SITE_NAME, DemoArticle, DemoSite
from pipeline.demo.prose import ABOUT

__all__ = [
    "FOOTER_TEXT",
    "Frame",
    "Listing",
    "about_page",
    "author_page",
    "card_date",
    "document",
    "esc",
    "home_page",
    "link_tag",
    "listing_page",
    "meta_tag",
    "not_found_page",
    "page_url",
    "search_page",
]

FOOTER_TEXT = "© 2019–2025 MedGuide Demo. Updated 12/01/2025."
"""The footer's site-wide date: deliberately not any page's date (a trap for date extraction)."""
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_UTM = "?utm_source=sidebar&utm_medium=widget"


def card_date(moment: datetime) -> str:
    """A date as cards and entry meta write it: ``Nov, 1 2025`` (day without a leading zero).

    Args:
        moment: an aware datetime, written in its own (London) time.

    Returns:
        The formatted date.
    """
    return f"{_MONTHS[moment.month - 1]}, {moment.day} {moment.year}"


def page_url(first: str, page: int) -> str:
    """The URL of listing page ``page``.

    Args:
        first: the listing's first-page URL, ending in ``/``.
        page: 1-based page number.

    Returns:
        ``first`` for page 1, else ``first + "page/<n>/"``.
    """
    return first if page == 1 else f"{first}page/{page}/"


def esc(text: str) -> str:
    """Text escaped for an element or a double-quoted attribute.

    Args:
        text: plain text.

    Returns:
        The text with ``& < > " '`` escaped.
    """
    return html.escape(text, quote=True)


def link_tag(rel: str, href: str) -> str:
    """A ``<link rel href>`` element.

    Args:
        rel: the relation (``canonical``, ``next``...).
        href: the absolute URL.

    Returns:
        The element's HTML.
    """
    return f'<link rel="{rel}" href="{esc(href)}">'


def meta_tag(attr: str, key: str, value: str) -> str:
    """A ``<meta>`` element.

    Args:
        attr: ``name`` or ``property``.
        key: its value (``description``, ``og:title``...).
        value: the content.

    Returns:
        The element's HTML.
    """
    return f'<meta {attr}="{key}" content="{esc(value)}">'


@dataclass(frozen=True, slots=True)
class Frame:
    """The page-specific parts of the shared document frame.

    Attributes:
        title: the title, before the site name.
        head: extra head elements after the title.
        body_class: the body element's classes.
        main: the HTML inside ``<main>``.
    """

    title: str
    head: list[str]
    body_class: str
    main: str


def document(site: DemoSite, base: str, frame: Frame) -> str:
    """A whole page: head, the site header and menu, ``main``, sidebar and footer.

    Args:
        site: the site model (menu topics, recent posts).
        base: the base URL links are built from.
        frame: the page-specific parts.

    Returns:
        The page's HTML.
    """
    if site.layout == "heavy":
        from pipeline.demo.heavy import heavy_document  # heavy builds on this module

        return heavy_document(site, base, frame)
    menu = "\n".join(
        f'    <li><a href="{base}/topics/{t.slug}/">{esc(t.name)}</a></li>' for t in site.topics
    )
    recent = "\n".join(
        f'    <li><a href="{esc(base + a.path + _UTM)}">{esc(a.title)}</a> '
        f'<span class="post-date">{card_date(a.published)}</span></li>'
        for a in site.articles[:5]
    )
    head = "\n".join(frame.head)
    return f"""<!doctype html>
<html lang="en-GB">
<head>
<meta charset="utf-8">
<title>{esc(frame.title)} – {SITE_NAME}</title>
{head}
</head>
<body class="{frame.body_class}">
<header class="site-header">
  <a class="site-title" href="{base}/">{SITE_NAME}</a>
  <nav class="main-navigation"><ul class="menu">
{menu}
    <li><a href="{base}/search?q=">Search</a></li>
  </ul></nav>
</header>
<main id="main" class="site-main">
{frame.main}
</main>
<aside id="secondary" class="widget-area">
  <section class="widget widget_recent_entries"><h2 class="widget-title">Recent Posts</h2>
    <ul>
{recent}
    </ul></section>
</aside>
<footer class="site-footer"><p>{FOOTER_TEXT}</p><a href="{base}/about/">About</a></footer>
</body></html>
"""


def home_page(site: DemoSite, base: str) -> str:
    """The home page: every topic, the ten newest posts and the about link; no cards.

    Args:
        site: the site model.
        base: the base URL links are built from.

    Returns:
        The page's HTML.
    """
    topics = "\n".join(
        f'  <li><a href="{base}/topics/{t.slug}/">{esc(t.name)}</a> ({len(t.article_slugs)})</li>'
        for t in site.topics
    )
    latest = "\n".join(
        f'  <li><a href="{base}{a.path}">{esc(a.title)}</a> '
        f'<span class="post-date">{card_date(a.published)}</span></li>'
        for a in site.articles[:10]
    )
    main = (
        f'<section class="topic-index"><h2>Browse by topic</h2><ul>\n{topics}\n</ul></section>\n'
        f'<section class="latest-posts"><h2>Latest posts</h2><ul>\n{latest}\n</ul></section>\n'
        f'<p><a href="{base}/about/">About {SITE_NAME}</a></p>'
    )
    head = [link_tag("canonical", f"{base}/"), meta_tag("name", "description", ABOUT[0])]
    frame = Frame("Plain-English guides to medicines", head, "home blog", main)
    return document(site, base, frame)


def about_page(site: DemoSite, base: str) -> str:
    """The about page: an "other" page with neither cards nor an article.

    Args:
        site: the site model.
        base: the base URL links are built from.

    Returns:
        The page's HTML.
    """
    paragraphs = "".join(f"<p>{esc(p)}</p>" for p in ABOUT)
    main = f'<div class="page-content"><h1>About {SITE_NAME}</h1>{paragraphs}</div>'
    head = [link_tag("canonical", f"{base}/about/")]
    return document(site, base, Frame("About", head, "page-template-default page", main))


def author_page(site: DemoSite, base: str, slug: str) -> str:
    """An author's profile: name, one line of bio, bare links to their posts, newest first.

    Deliberately not a listing (no cards, no dates or counts beside the links), so a crawl
    finds no extra "topics" here; yet the byline link every article carries leads somewhere
    (a 404 would count as a failed page).

    Args:
        site: the site model.
        base: the base URL links are built from.
        slug: the author's slug (must be one of ``site.authors``).

    Returns:
        The page's HTML.
    """
    name = site.authors[slug]
    posts = "\n".join(
        f'  <li><a href="{base}{a.path}">{esc(a.title)}</a></li>'
        for a in site.author_articles(slug)
    )
    main = (
        f'<div class="profile"><h1 class="profile-name">{esc(name)}</h1>\n'
        f"<p>{esc(name)} writes plain-English guides for {SITE_NAME}.</p>\n"
        f'<ul class="author-posts">\n{posts}\n</ul></div>'
    )
    head = [link_tag("canonical", f"{base}/author/{slug}/")]
    return document(site, base, Frame(name, head, f"page profile profile-{slug}", main))


def search_page(site: DemoSite, base: str, term: str) -> str:
    """A plain search results page (robots.txt disallows it: crawlers must not come here).

    Args:
        site: the site model.
        base: the base URL links are built from.
        term: the query; titles and texts containing it (case-insensitive) are listed.

    Returns:
        The page's HTML.
    """
    needle = term.casefold()
    hits = [
        a
        for a in site.articles
        if needle and needle in f"{a.title}\n{' '.join(a.paragraphs)}".casefold()
    ]
    items = "\n".join(f'  <li><a href="{base}{a.path}">{esc(a.title)}</a></li>' for a in hits[:20])
    main = (
        f'<header class="page-header"><h1>Search results for “{esc(term)}”</h1></header>\n'
        f'<ul class="search-results">\n{items}\n</ul>'
    )
    head = [meta_tag("name", "robots", "noindex")]
    return document(site, base, Frame("Search", head, "search search-results", main))


def not_found_page(site: DemoSite, base: str) -> str:
    """The 404 page.

    Args:
        site: the site model.
        base: the base URL links are built from.

    Returns:
        The page's HTML.
    """
    main = (
        '<header class="page-header"><h1>Page not found</h1></header>\n'
        "<p>Try one of the topics above.</p>"
    )
    return document(site, base, Frame("Page not found", [], "error404", main))


@dataclass(frozen=True, slots=True)
class Listing:
    """What differs between a topic archive and an author archive.

    Attributes:
        first_url: absolute URL of page 1.
        name: the h1 (topic or author name).
        description: paragraphs shown on page 1 only (none for authors).
        articles: the listing's articles, newest first.
        body_class: the body element's classes.
    """

    first_url: str
    name: str
    description: tuple[str, ...]
    articles: tuple[DemoArticle, ...]
    body_class: str


def _card(article: DemoArticle, base: str) -> str:
    """One post card of a listing page."""
    url, title = base + article.path, esc(article.title)
    count = article.comment_count
    comments = "" if count is None else f'\n    <li class="comments-count">{count}</li>'
    image = f'<img src="{base}/img/{article.slug}.jpg" alt="{title}">'
    return f"""<article class="post-card post-{article.post_id}">
  <a class="post-thumbnail" href="{url}">{image}</a>
  <h2 class="entry-title"><a href="{url}">{title}</a></h2>
  <ul class="entry-meta">
    <li class="posted-on">{card_date(article.published)}</li>{comments}
  </ul>
  <p class="entry-summary">{esc(article.summary)}</p>
</article>"""


def _pagination(first: str, page: int, pages: int) -> str:
    """The pagination nav of a listing (empty for a single page)."""
    if pages == 1:
        return ""
    links = []
    if page > 1:
        href = page_url(first, page - 1)
        links.append(f'<a class="prev page-numbers" href="{href}">« Newer posts</a>')
    numbers = (
        f'<span class="page-numbers current">{n}</span>'
        if n == page
        else f'<a class="page-numbers" href="{page_url(first, n)}">{n}</a>'
        for n in range(1, pages + 1)
    )
    links.append(" ".join(numbers))
    if page < pages:
        href = page_url(first, page + 1)
        links.append(f'<a class="next page-numbers" href="{href}">Older posts »</a>')
    inner = "\n    ".join(links)
    return f'<nav class="navigation pagination"><div class="nav-links">\n    {inner}\n</div></nav>'


def _listing_head(listing: Listing, page: int, pages: int) -> list[str]:
    """A listing page's canonical, next/prev links and meta description."""
    head = [link_tag("canonical", page_url(listing.first_url, page))]
    if page < pages:
        head.append(link_tag("next", page_url(listing.first_url, page + 1)))
    if page > 1:
        head.append(link_tag("prev", page_url(listing.first_url, page - 1)))
    if listing.description:
        first_sentence = re.split(r"(?<=[.!?])\s", listing.description[0], maxsplit=1)[0]
        head.append(meta_tag("name", "description", first_sentence))
    return head


def listing_page(site: DemoSite, base: str, listing: Listing, page: int) -> str:
    """One page of a topic or author archive: h1, description (page 1), cards, pagination.

    Args:
        site: the site model (for paging and the frame).
        base: the base URL links are built from.
        listing: the archive.
        page: 1-based page number, within range.

    Returns:
        The page's HTML.
    """
    pages = site.page_count(len(listing.articles))
    description = ""
    if listing.description and page == 1:
        paragraphs = "".join(f"<p>{esc(p)}</p>" for p in listing.description)
        description = f'\n    <div class="archive-description">\n      {paragraphs}\n    </div>'
    cards = "\n".join(_card(a, base) for a in site.page_of(listing.articles, page))
    main = f"""  <header class="page-header">
    <h1 class="page-title">{esc(listing.name)}</h1>{description}
  </header>
  <div class="post-list">
{cards}
  </div>
  {_pagination(listing.first_url, page, pages)}"""
    head = _listing_head(listing, page, pages)
    frame = Frame(f"{listing.name} Archives", head, listing.body_class, main)
    return document(site, base, frame)
