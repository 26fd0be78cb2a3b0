"""Extract stage: read an article page's fields, each from the most trustworthy source.

Per field the sources of ``selectors.FIELD_SOURCES`` are tried in order and the first value
that looks right (a date that reads as a date, a count that reads as a count) wins; the winner
is recorded in ``ArticlePage.sources``. Dates, authors and topics are only taken from the
article itself (its element, or near its title): never from a sidebar, a comment or the footer.
Hands on an ``ArticlePage``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from selectolax.lexbor import LexborNode

from pipeline.extract.dom import (
    Document,
    Regions,
    ancestor_ids,
    attr,
    block_text,
    inline_text,
    is_inside,
    select,
    select_first,
    select_ids,
)
from pipeline.extract.selectors import (
    ARTICLE_BODY,
    ARTICLE_ROOT,
    AUTHOR,
    CLOSED,
    COMMENT_LINK,
    COMMENT_TITLE,
    COMMENT_TITLE_COUNT,
    CONTENT_NOISE_OR_COMMENTS,
    COUNT_LIKE,
    DATE_LIKE,
    DATE_TEXT,
    FIELD_SOURCES,
    NOISE_OR_COMMENTS,
    SITE_TITLE,
    TITLE_SEPARATORS,
    TOPICS,
)
from pipeline.extract.structured import (
    Fields,
    JsonLd,
    article_scopes,
    entry_roots,
    jsonld_fields,
    jsonld_topics,
    meta_fields,
    microdata_fields,
    microformat_fields,
)
from pipeline.models import ArticlePage, TopicRef

__all__ = ["extract_article", "has_article_evidence", "page_title"]

MIN_ARTICLE_TEXT = 150
"""Characters of body text an article without structured article data must have."""
_NEAR_TITLE_LEVELS = 3
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?=$|[-_])")


@dataclass(slots=True)
class _Page:
    """What the field readers share about one article page."""

    doc: Document
    scope: LexborNode
    jsonld: JsonLd
    meta: dict[str, str]
    selectors: Mapping[str, str]
    exclude: set[int]
    skip: set[int] | Regions = field(default_factory=set)
    root: LexborNode | None = None
    title_node: LexborNode | None = None


def extract_article(
    doc: Document,
    scope: LexborNode,
    *,
    jsonld: JsonLd,
    meta: dict[str, str],
    selectors: Mapping[str, str],
    exclude: set[int] | None = None,
    link_texts: bool = True,
) -> ArticlePage:
    """Read an article page.

    Args:
        doc: the parsed page.
        scope: the main content area.
        jsonld: the page's JSON-LD entities.
        meta: the page's meta tags.
        selectors: site overrides (``title``, ``published``, ``updated``, ``author``,
            ``comments``, ``summary``, ``text``, ``topics``).
        exclude: elements (post cards) that are not part of the article.
        link_texts: read the text of each link (``Document.links``).

    Returns:
        The article's fields as the page states them, with the source of each.
    """
    page = _Page(doc, scope, jsonld, meta, selectors, set(exclude or ()))
    # a "widget" that holds the main area (or the article) is not noise
    page.skip = skip = doc.regions(
        doc.body, NOISE_OR_COMMENTS, also=page.exclude, never=_around(scope)
    )
    page.root = _article_root(page)
    skip.keep(_around(page.root))
    page.title_node = _title_node(page)
    readers = _Readers(page)
    values, sources = _read_fields(readers)
    text, text_source = _content(page, readers)
    topics, topics_source = _topics(page)
    sources.update(text=text_source or "", topics=topics_source or "")
    return ArticlePage(
        url=doc.url,
        title=values.get("title"),
        published=values.get("published"),
        updated=values.get("updated"),
        author=values.get("author"),
        comments=values.get("comments"),
        summary=values.get("summary"),
        text=text,
        topics=topics,
        language=_primary_language(values.get("language")),
        canonical_url=_canonical(doc),
        links=doc.links(texts=link_texts),
        sources={k: v for k, v in sources.items() if v},
    )


def has_article_evidence(article: ArticlePage) -> bool:
    """Whether a page without declared article data still reads as an article.

    It needs a title, some body text, and something only posts have: a date, an author,
    topics, a comment count, or h-entry/microdata article markup.
    """
    if not article.title or len(article.text or "") < MIN_ARTICLE_TEXT:
        return False
    structured = {"microdata", "microformats"} & set(article.sources.values())
    return bool(
        structured or article.published or article.author or article.topics or article.comments
    )


def page_title(doc: Document, meta: dict[str, str], jsonld: JsonLd) -> str | None:
    """A page's title for an ``OtherPage``: its h1, og:title, or ``<title>`` without the site."""
    h1 = select_first(doc.body, "h1")
    if h1 is not None and not is_inside(h1, doc.regions(doc.root, SITE_TITLE)):
        text = inline_text(h1)
        if text:
            return text
    site = _site_name(doc, meta, jsonld)
    og_title = meta.get("og:title")
    if og_title:
        return _strip_site(og_title, site)
    return _title_tag(doc, site)


def _read_fields(readers: _Readers) -> tuple[dict[str, str], dict[str, str]]:
    """Each field's value from the first source that gives a right-looking one, and the source."""
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for name, order in FIELD_SOURCES.items():
        for source in order:
            value = readers.value(source, name)
            if value and _looks_right(name, value):
                values[name], sources[name] = value, source
                break
    if values.get("comments", "").strip() == "0":  # "Comments are closed" beats a count of 0
        visible = readers.value("text", "comments")
        if visible and CLOSED.match(visible):
            values["comments"], sources["comments"] = visible, "text"
    return values, sources


def _looks_right(name: str, value: str) -> bool:
    """Whether a value can be what the field holds (a date reads as a date, ...)."""
    if name in ("published", "updated"):
        return DATE_LIKE.search(value) is not None
    if name == "comments":
        return COUNT_LIKE.match(value.strip()) is not None
    return bool(value.strip())


# --- where the article is -----------------------------------------------------------------------


def _article_root(page: _Page) -> LexborNode:
    """The element of the article itself: h-entry, schema.org item, ``<article>``, else main."""
    for query in ARTICLE_ROOT:
        found = [n for n in select(page.scope, query) if not is_inside(n, page.skip)]
        if found:
            with_title = [n for n in found if select_first(n, "h1") is not None]
            return (with_title or found)[0]
    return page.scope


def _around(node: LexborNode) -> set[int]:
    """``mem_id`` of an element and of its ancestors."""
    return {node.mem_id, *ancestor_ids(node)}


def _title_node(page: _Page) -> LexborNode | None:
    """The article's main heading (an h1 in the article, else in the main area)."""
    site_title = page.doc.regions(page.doc.root, SITE_TITLE)
    for container, query in ((page.root, "h1"), (page.scope, "h1"), (page.root, ".entry-title")):
        for node in select(container, query):
            if is_inside(node, page.skip) or is_inside(node, site_title):
                continue
            if inline_text(node):
                return node
    return None


def _near_title(page: _Page) -> list[LexborNode]:
    """Where the article's own dates are: a few levels around the title, then the article."""
    regions: list[LexborNode] = []
    node = page.title_node
    root_id = page.root.mem_id if page.root is not None else None
    for _ in range(_NEAR_TITLE_LEVELS):
        node = node.parent if node is not None else None
        if node is None or node.mem_id == root_id:
            break
        regions.append(node)
    if page.root is not None and page.root.mem_id != page.scope.mem_id:
        regions.append(page.root)
    return regions


class _Readers:
    """Field values per source, each read only when asked for and only once."""

    def __init__(self, page: _Page) -> None:
        self.page = page
        self._cache: dict[str, Fields] = {}
        self._single: dict[tuple[str, str], str | None] = {}
        self._bulk: dict[str, Callable[[], Fields]] = {
            "selector": self._selector,
            "jsonld": lambda: jsonld_fields(page.jsonld),
            "microdata": self._microdata,
            "microformats": self._microformats,
            "meta": self._meta,
            "time": self._time,
        }
        self._per_field: dict[tuple[str, str], Callable[[], str | None]] = {
            ("markup", "title"): lambda: inline_text(page.title_node) or None,
            ("markup", "author"): self._byline,
            ("markup", "language"): lambda: attr(page.doc.root, "lang"),
            ("text", "published"): self._date_line,
            ("text", "comments"): self._visible_comments,
            ("title_tag", "title"): lambda: _title_tag(page.doc, self.site_name),
        }

    def value(self, source: str, name: str) -> str | None:
        """What one source says about one field (None when it says nothing)."""
        if source in self._bulk:
            if source not in self._cache:
                self._cache[source] = self._bulk[source]()
            return self._cache[source].get(name)
        key = (source, name)
        if key not in self._single:
            reader = self._per_field.get(key)
            self._single[key] = reader() if reader is not None else None
        return self._single[key]

    @cached_property
    def site_name(self) -> str | None:
        """The site's name, to strip from titles."""
        return _site_name(self.page.doc, self.page.meta, self.page.jsonld)

    def _selector(self) -> Fields:
        """Values of the site's configured selectors."""
        fields: Fields = {}
        for name in ("title", "published", "updated", "author", "comments", "summary"):
            query = self.page.selectors.get(name)
            node = select_first(self.page.doc.root, query) if query else None
            if node is not None:
                value = attr(node, "datetime") or attr(node, "content") or inline_text(node)
                if value:
                    fields[name] = value
        return fields

    def _microdata(self) -> Fields:
        """Values of the first article-typed microdata item outside cards and sidebars."""
        for root in article_scopes(self.page.doc):
            if not is_inside(root, self.page.skip):
                return microdata_fields(root)
        return {}

    def _microformats(self) -> Fields:
        """Values of the first h-entry outside cards and sidebars."""
        for root in entry_roots(self.page.doc):
            if not is_inside(root, self.page.skip):
                return microformat_fields(root, self.page.skip)
        return {}

    def _meta(self) -> Fields:
        """Values of meta tags; og:title without a site-name suffix."""
        fields = meta_fields(self.page.meta)
        if "title" in fields:
            fields["title"] = _strip_site(fields["title"], self.site_name)
        return fields

    def _byline(self) -> str | None:
        """The author named in the article's byline (never in a comment)."""
        page = self.page
        for query in AUTHOR:
            for node in select(page.root, query):
                text = inline_text(node)
                if text and not is_inside(node, page.skip):
                    return text
        return None

    def _time(self) -> Fields:
        """``<time datetime>`` near the title: published, and updated when classed so."""
        fields: Fields = {}
        for region in _near_title(self.page):
            for node in select(region, "time"):
                if is_inside(node, self.page.skip):
                    continue
                value = attr(node, "datetime") or inline_text(node)
                css = node.attributes.get("class") or ""
                updated = re.search(r"updated|modified", css, re.I) and "published" not in css
                if value and DATE_LIKE.search(value):
                    fields.setdefault("updated" if updated else "published", value)
            if fields:
                break
        return fields

    def _date_line(self) -> str | None:
        """A visible date near the title (``<span class="posted-on">Nov, 1 2025</span>``)."""
        for region in _near_title(self.page):
            for node in select(region, DATE_TEXT):
                text = attr(node, "title") or inline_text(node)
                near = not is_inside(node, self.page.skip)
                if near and len(text) <= 80 and DATE_LIKE.search(text):
                    return text
        return None

    def _visible_comments(self) -> str | None:
        """'9 Comments', 'Leave a comment' or 'Comments are closed' in the article, else the
        count in the comments section heading ('9 thoughts on ...')."""
        page = self.page
        for container in _root_then_scope(page):
            for node in select(container, COMMENT_LINK):
                text = inline_text(node)
                if text and COUNT_LIKE.match(text) and not is_inside(node, page.skip):
                    return text
        for node in select(page.doc.root, COMMENT_TITLE):
            match = COMMENT_TITLE_COUNT.match(inline_text(node))
            if match:
                return f"{match.group(1)} {match.group(2)}"
        return None


# --- text, topics, the rest ---------------------------------------------------------------------


def _content(page: _Page, readers: _Readers) -> tuple[str | None, str | None]:
    """The article body as paragraphs, and where it came from."""
    node, source = _content_node(page)
    if node is not None:
        skip = select_ids(node, CONTENT_NOISE_OR_COMMENTS) | page.exclude
        if page.title_node is not None:
            skip.add(page.title_node.mem_id)
        text = block_text(node, skip)
        if text:
            return text, source
    body = readers.value("jsonld", "text")
    return (body, "jsonld") if body else (None, None)


def _content_node(page: _Page) -> tuple[LexborNode | None, str | None]:
    """The element holding the article body: configured, a known body class, else the
    element with the most paragraph text."""
    configured = select_first(page.doc.root, page.selectors.get("text") or "")
    if configured is not None:
        return configured, "selector"
    for container in _root_then_scope(page):
        for query in ARTICLE_BODY:
            for node in select(container, query):
                if not is_inside(node, page.skip):
                    return node, _body_source(query)
    scores: dict[int, int] = {}
    parents: dict[int, LexborNode] = {}
    for paragraph in select(page.root, "p"):
        parent = paragraph.parent
        if parent is None or is_inside(paragraph, page.skip):
            continue
        scores[parent.mem_id] = scores.get(parent.mem_id, 0) + len(paragraph.text(deep=True))
        parents[parent.mem_id] = parent
    if not scores:
        return None, None
    return parents[max(scores, key=scores.__getitem__)], "markup"


def _root_then_scope(page: _Page) -> list[LexborNode]:
    """The article element, then the main area when that is wider."""
    if page.root is None or page.root.mem_id == page.scope.mem_id:
        return [page.scope]
    return [page.root, page.scope]


def _body_source(query: str) -> str:
    """The source name of a body selector."""
    if query.startswith("[itemprop"):
        return "microdata"
    return "microformats" if query == ".e-content" else "markup"


def _topics(page: _Page) -> tuple[tuple[TopicRef, ...], str | None]:
    """The article's own category/tag links in page order, else JSON-LD sections/keywords."""
    query = page.selectors.get("topics")
    containers = [(page.doc.root, query, "selector")] if query else []
    containers += [(page.root, TOPICS, "markup"), (page.scope, TOPICS, "markup")]
    for container, selector, source in containers:
        topics: dict[tuple[str, str | None], TopicRef] = {}
        for node in select(container, selector or TOPICS):
            name = inline_text(node)
            if name and not is_inside(node, page.skip):
                url = page.doc.resolve(attr(node, "href")) if node.tag == "a" else None
                topics.setdefault((name.lower(), url), TopicRef(name=name, url=url))
        if topics:
            return tuple(topics.values()), source
    fallback = jsonld_topics(page.jsonld)
    return fallback, "jsonld" if fallback else None


def _canonical(doc: Document) -> str | None:
    """The ``<link rel=canonical>`` URL, absolute."""
    node = select_first(doc.root, "link[rel~=canonical][href]")
    return doc.resolve(attr(node, "href")) if node is not None else None


def _primary_language(value: str | None) -> str | None:
    """The lowercase primary subtag of a language tag (``en-GB`` -> ``en``)."""
    match = _LANGUAGE.match(value.strip()) if value else None
    return match.group(0).lower() if match else None


def _site_name(doc: Document, meta: dict[str, str], jsonld: JsonLd) -> str | None:
    """The site's name: og:site_name, the JSON-LD WebSite, else the header's site title."""
    name = meta.get("og:site_name") or jsonld.site_name
    if name:
        return name.strip()
    node = select_first(doc.root, SITE_TITLE)
    return (inline_text(node) or None) if node is not None else None


def _title_tag(doc: Document, site: str | None) -> str | None:
    """``<title>`` without the site name (or, when unknown, without its last segment)."""
    node = select_first(doc.root, "title")
    text = " ".join(node.text(deep=True).split()) if node is not None else ""
    if not text:
        return None
    stripped = _strip_site(text, site)
    if stripped != text or site:
        return stripped
    for separator in TITLE_SEPARATORS:
        head, found, _ = text.rpartition(separator)
        if found and head.strip():
            return head.strip()
    return text


def _strip_site(title: str, site: str | None) -> str:
    """A title without a trailing separator and site name (``Title | Site`` -> ``Title``)."""
    title = title.strip()
    if not site or not title.endswith(site) or len(title) <= len(site):
        return title
    head = title[: -len(site)].rstrip()
    for separator in TITLE_SEPARATORS:
        if head.endswith(separator.strip()):
            return head[: -len(separator.strip())].rstrip() or title
    return title
