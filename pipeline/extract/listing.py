"""Extract stage: read a listing page around its post cards: the topic name and description,
pagination, and what kind of archive it is. Hands on a ``ListingPage``.

Cards are found by ``cards.find_card_group``. The archive kind decides whether the page names a
topic: author, date and search archives list posts too, but their heading is not a topic.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from selectolax.lexbor import LexborNode

from pipeline.extract.cards import CardGroup
from pipeline.extract.dom import (
    Document,
    ancestor_ids,
    attr,
    block_text,
    classes,
    defrag,
    inline_text,
    is_inside,
    select,
    select_first,
    select_ids,
)
from pipeline.extract.selectors import (
    ARCHIVE_HEADINGS,
    ARCHIVE_KINDS,
    ARCHIVE_PATHS,
    LABEL_PATH,
    LISTING_DESCRIPTION,
    LISTING_NAME,
    NAME_PREFIX,
    NAME_SUFFIX,
    NEXT_LINK,
    NEXT_TEXT,
    NOISE,
    PAGINATION_LINKS,
    SITE_TITLE,
)
from pipeline.models import ArchiveKind, ListingPage

__all__ = ["archive_kind", "extract_listing", "listing_heading"]

MAX_DESCRIPTION_PARAGRAPHS = 30


def listing_heading(
    doc: Document, scope: LexborNode, group: CardGroup, selectors: Mapping[str, str]
) -> tuple[LexborNode | None, str | None]:
    """The page heading that names the topic.

    Args:
        doc: the parsed page.
        scope: the main content area.
        group: the page's cards (a card's or an entry's heading never names the topic).
        selectors: site overrides; ``name`` selects the heading directly.

    Returns:
        The heading element and the topic name, or ``(None, None)`` when the page has none.
    """
    excluded = group.ids | doc.region_ids(scope, NOISE) | doc.region_ids(doc.root, SITE_TITLE)
    excluded |= select_ids(scope, "article, .hentry, .h-entry")
    configured = selectors.get("name")
    for query in (configured,) if configured else LISTING_NAME:
        for node in select(scope, query):
            if is_inside(node, excluded):
                continue
            name = _clean_name(inline_text(node))
            if name:
                return node, name
    label = LABEL_PATH.search(doc.url)
    return None, (unquote(label.group(1)).strip() or None) if label else None


def _clean_name(text: str) -> str:
    """A topic name without 'Category:'-style prefixes and an 'Archives' suffix."""
    return NAME_SUFFIX.sub("", NAME_PREFIX.sub("", text)).strip()


def extract_listing(
    doc: Document,
    scope: LexborNode,
    group: CardGroup,
    heading: tuple[LexborNode | None, str | None],
    selectors: Mapping[str, str],
) -> ListingPage:
    """Read a listing page around its card group.

    Args:
        doc: the parsed page.
        scope: the main content area.
        group: the page's cards (from ``find_card_group``).
        heading: the heading element and topic name (from ``listing_heading``).
        selectors: site overrides; ``description`` selects the topic description directly.

    Returns:
        The listing, cards in page order.
    """
    heading_node, name = heading
    configured = selectors.get("description")
    description = (
        block_text(select_first(doc.root, configured)) or None
        if configured
        else _description(scope, group, heading_node)
    )
    return ListingPage(
        url=doc.url,
        name=name,
        description=description,
        cards=group.cards,
        next_url=_next_url(doc),
        page_urls=_page_urls(doc),
        links=doc.links(),
        archive=archive_kind(doc, inline_text(heading_node) if heading_node is not None else ""),
    )


def archive_kind(doc: Document, heading: str) -> ArchiveKind:
    """What a listing lists, from its body classes, else its URL, else its heading's wording.

    Args:
        doc: the parsed page.
        heading: the text of the listing's heading as written ("Author: Jane Doe").

    Returns:
        ``author``, ``date`` or ``search`` when the page says so; else ``topic``.
    """
    body_classes = set(classes(doc.body)) if doc.body is not None else set()
    for kind, names in ARCHIVE_KINDS.items():
        if body_classes & names:
            return kind
    try:
        parts = urlsplit(doc.url)
    except ValueError:
        parts = None
    if parts is not None:
        where = parts.path + ("?" + parts.query if parts.query else "")
        for kind, pattern in ARCHIVE_PATHS.items():
            if pattern.search(where):
                return kind
    for kind, pattern in ARCHIVE_HEADINGS.items():
        if pattern.match(heading.strip()):
            return kind
    return "topic"


def _description(scope: LexborNode, group: CardGroup, heading: LexborNode | None) -> str | None:
    """The paragraphs between the heading and the cards (an archive description)."""
    for query in LISTING_DESCRIPTION:
        found = select_first(scope, query)
        if found is not None and not is_inside(found, group.ids):
            return block_text(found) or None
    if heading is None or not group.nodes:
        return None
    stop = set(ancestor_ids(group.nodes[0])) | {group.nodes[0].mem_id}
    paragraphs: list[str] = []
    node: LexborNode | None = heading
    while node is not None and node.mem_id != scope.mem_id:
        sibling = node.next
        while sibling is not None:
            if sibling.mem_id in stop or len(paragraphs) > MAX_DESCRIPTION_PARAGRAPHS:
                return "\n\n".join(paragraphs) or None
            if sibling.is_element_node:
                found_p = [sibling] if sibling.tag == "p" else select(sibling, "p")
                paragraphs.extend(t for p in found_p if (t := inline_text(p)))
            sibling = sibling.next
        node = node.parent
    return "\n\n".join(paragraphs) or None


def _next_url(doc: Document) -> str | None:
    """The next (older) page: ``<link rel=next>``, a next link, or an 'Older posts' link."""
    for node in select(doc.root, "link[rel~=next]"):
        url = doc.resolve(attr(node, "href"))
        if url:
            return url
    for query in NEXT_LINK:
        for node in select(doc.body, query):
            url = doc.resolve(attr(node, "href"))
            if url:
                return url
    for node in select(doc.body, "a[href]"):
        if NEXT_TEXT.match(inline_text(node)):
            url = doc.resolve(attr(node, "href"))
            if url:
                return url
    return None


def _page_urls(doc: Document) -> tuple[str, ...]:
    """Every pagination link of the page, once each, in page order (this page left out)."""
    urls: dict[str, None] = {}
    own = defrag(doc.url)
    for node in select(doc.body, PAGINATION_LINKS):
        url = doc.resolve(attr(node, "href"))
        if url and defrag(url) != own:
            urls.setdefault(url, None)
    return tuple(urls)
