"""Extract stage: turn a fetched page into a ``ListingPage``, ``ArticlePage`` or ``OtherPage``.

    fetch --Fetched--> extract --Extracted--> normalize

The only importer of selectolax. Each page is parsed once and classified without site-specific
selectors:

- a **listing** has a group of repeated post cards (``listing.find_card_group``) and a page
  heading naming the topic; a page with cards but no such heading (a blog's home page) is
  "other": it names no topic;
- an **article** declares itself (``og:type`` article, one JSON-LD Article-type entity) or has a
  title, body text and something only posts have (date, author, topics, comment count,
  h-entry/microdata article markup);
- anything else is **other**: only its links matter.

Values stay the page's own strings; ``normalize`` types them. Nothing here raises on bad HTML:
the worst a page gets is ``OtherPage``.
"""

from __future__ import annotations

from collections.abc import Mapping

from selectolax.lexbor import LexborNode

from pipeline.config import SiteConfig
from pipeline.extract.article import extract_article, has_article_evidence, page_title
from pipeline.extract.cards import find_card_group
from pipeline.extract.dom import (
    Document,
    is_inside,
    parse_document,
    select,
    select_first,
)
from pipeline.extract.listing import extract_listing, listing_heading
from pipeline.extract.selectors import MAIN, SITE_TITLE
from pipeline.extract.structured import JsonLd, read_jsonld, read_meta
from pipeline.models import Extracted, Fetched, OtherPage

__all__ = ["extract", "extract_page"]


def extract(fetched: Fetched, site: SiteConfig) -> Extracted:
    """Extract the fields of a fetched page.

    Args:
        fetched: the fetched page (its decoded text and final URL).
        site: the site's config; its ``selectors`` override the built-in ones per field.

    Returns:
        A ``ListingPage``, ``ArticlePage`` or ``OtherPage``.
    """
    return extract_page(fetched.text, fetched.url, selectors=site.selectors)


def extract_page(
    html: str,
    url: str,
    *,
    selectors: Mapping[str, str] | None = None,
    link_texts: bool = True,
) -> Extracted:
    """Classify a page and read its fields.

    Args:
        html: the page's HTML (anything: broken, truncated or non-HTML text is fine).
        url: the page's URL, for resolving relative links.
        selectors: CSS selector overrides per field (``title``, ``published``, ``updated``,
            ``author``, ``comments``, ``summary``, ``text``, ``topics``; for listings
            ``card``, ``name``, ``description``).
        link_texts: read the text of an article's or other page's links (``links.texts``);
            False leaves them empty (the crawl reads only a listing's, for its pagination).

    Returns:
        A ``ListingPage``, ``ArticlePage`` or ``OtherPage``; never raises for bad input.
    """
    doc = parse_document(html if isinstance(html, str) else "", url)
    if doc.body is None or doc.root is None:
        return OtherPage(url=url)
    overrides = dict(selectors or {})
    meta = read_meta(doc)
    jsonld = read_jsonld(doc)
    scope = _main_area(doc, doc.body)
    declared = _declares_article(meta, jsonld)
    exclude: set[int] = set()
    if not declared:
        group = find_card_group(doc, scope, overrides)
        if group is not None:
            heading = listing_heading(doc, scope, group, overrides)
            if heading[1] is not None:
                return extract_listing(doc, scope, group, heading, overrides)
            exclude = group.ids
    article = extract_article(
        doc,
        scope,
        jsonld=jsonld,
        meta=meta,
        selectors=overrides,
        exclude=exclude,
        link_texts=link_texts,
    )
    headed = not exclude or _has_main_heading(doc, scope, exclude)
    if declared or (headed and has_article_evidence(article)):
        return article
    return OtherPage(url=url, title=page_title(doc, meta, jsonld), links=article.links)


def _main_area(doc: Document, body: LexborNode) -> LexborNode:
    """The page's main content element, else its body."""
    for query in MAIN:
        node = select_first(doc.root, query)
        if node is not None:
            return node
    return body


def _has_main_heading(doc: Document, scope: LexborNode, exclude: set[int]) -> bool:
    """Whether the main area has an h1 that is neither a post card's nor the site's title."""
    excluded = doc.regions(doc.root, SITE_TITLE, also=exclude)
    return any(not is_inside(node, excluded) for node in select(scope, "h1"))


def _declares_article(meta: Mapping[str, str], jsonld: JsonLd) -> bool:
    """``og:type`` article, or exactly one top-level JSON-LD Article-type entity."""
    if meta.get("og:type", "").strip().lower().startswith("article"):
        return True
    return len(jsonld.articles) == 1
