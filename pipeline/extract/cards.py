"""Extract stage: find a listing's post cards without site-specific selectors.

A listing is recognised by structure, not by site-specific selectors: a group of at least two
repeated blocks (same tag and classes) each holding a link to a distinct same-site article-like
URL, with a title and at least one of date, comment count or excerpt. Each block is the largest
element around its link that holds no other article URL. Hands a ``CardGroup`` to ``listing``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from selectolax.lexbor import LexborNode

from pipeline.extract.dom import (
    Document,
    attr,
    block_text,
    classes,
    defrag,
    inline_text,
    is_inside,
    select,
    select_first,
)
from pipeline.extract.selectors import (
    ARCHIVE_BODY_CLASSES,
    BARE_NUMBER,
    CARD_COMMENTS,
    CARD_DATE,
    CARD_SUMMARY,
    CARD_TITLE,
    COUNT_LIKE,
    DATE_LIKE,
    HEADINGS,
    LISTING_PATH,
    MEDIA_PATH,
    NOISE,
    SINGLE_CARD,
)
from pipeline.models import Card

__all__ = ["CardGroup", "find_card_group", "read_card"]

MIN_CARDS = 2
MAX_GROUPS_TRIED = 4
_MULTI = ""  # marks an element holding links to two or more article URLs
_NUMBERED = re.compile(r"\d")
_NOT_CARDS = frozenset({"p", "span", "em", "strong", "b", "i", "small", "h1", "h2", "h3", "h4"})


@dataclass(frozen=True, slots=True)
class CardGroup:
    """The post cards of a listing: each card element with its article URL and read fields."""

    nodes: tuple[LexborNode, ...]
    cards: tuple[Card, ...]

    @property
    def ids(self) -> set[int]:
        """``mem_id`` of the card elements."""
        return {node.mem_id for node in self.nodes}


def find_card_group(
    doc: Document, scope: LexborNode, selectors: Mapping[str, str]
) -> CardGroup | None:
    """Find the page's group of post cards.

    Args:
        doc: the parsed page.
        scope: the main content area searched.
        selectors: site overrides; ``card`` names the card elements directly.

    Returns:
        The cards with their fields, or None when the page has no group of post cards.
    """
    if selectors.get("card"):
        nodes = select(doc.root, selectors["card"])
        pairs = [(node, url) for node in nodes if (url := _first_article_url(doc, node))]
        return _evaluate(doc, pairs, minimum=1, trusted=True)
    best: CardGroup | None = None
    for pairs in _candidate_groups(doc, scope)[:MAX_GROUPS_TRIED]:
        group = _evaluate(doc, pairs)
        if group is not None and (best is None or len(group.cards) > len(best.cards)):
            best = group
    if best is None and _is_archive(doc):
        return _single_card(doc, scope)
    return best


def _is_archive(doc: Document) -> bool:
    """Whether the page says it is a page of a listing (pagination, archive body class)."""
    body_classes = set(classes(doc.body)) if doc.body is not None else set()
    return bool(
        body_classes & ARCHIVE_BODY_CLASSES
        or select_first(doc.root, "link[rel~=prev], link[rel~=next]") is not None
    )


def _single_card(doc: Document, scope: LexborNode) -> CardGroup | None:
    """The one post card of a listing's last page (a group of one)."""
    noise = doc.region_ids(scope, NOISE)
    host, own = _host(doc.url), defrag(doc.url)
    pairs = []
    for node in select(scope, SINGLE_CARD):
        if is_inside(node, noise) or select_first(node, "h1") is not None:
            continue
        heading = select_first(node, CARD_TITLE) or select_first(node, HEADINGS)
        anchor = select_first(heading, "a[href]") if heading is not None else None
        url = doc.resolve(attr(anchor, "href")) if anchor is not None else None
        if url and _article_like(url := defrag(url), host, own):
            pairs.append((node, url))
    return _evaluate(doc, pairs, minimum=1) if len(pairs) == 1 else None


def _candidate_groups(doc: Document, scope: LexborNode) -> list[list[tuple[LexborNode, str]]]:
    """Repeated blocks around article links, grouped by tag+classes, largest group first."""
    noise = doc.region_ids(scope, NOISE)
    host = _host(doc.url)
    own = defrag(doc.url)
    links: list[tuple[str, list[LexborNode]]] = []
    holder: dict[int, str] = {}
    for anchor in select(scope, "a[href]"):
        url = doc.resolve(anchor.attributes.get("href"))
        if url is None or not _article_like(url := defrag(url), host, own):
            continue
        chain = _chain(anchor, scope, noise)
        if chain is None:
            continue
        links.append((url, chain))
        for node in chain:
            seen = holder.setdefault(node.mem_id, url)
            if seen != url:
                holder[node.mem_id] = _MULTI
    groups: dict[tuple[object, ...], dict[int, tuple[LexborNode, str]]] = {}
    for url, chain in links:
        found = _card_of(chain, holder)
        if found is not None:
            card, parent = found
            grandparent = parent.parent
            key = (card.tag, grandparent.mem_id if grandparent else 0, *_signature(parent))
            groups.setdefault(key, {}).setdefault(card.mem_id, (card, url))
    candidates = [list(group.values()) for group in groups.values() if len(group) >= MIN_CARDS]
    return sorted(candidates, key=len, reverse=True)


def _chain(anchor: LexborNode, scope: LexborNode, noise: set[int]) -> list[LexborNode] | None:
    """The anchor, its ancestors and ``scope`` last; None when it lies in a noise region."""
    chain = []
    node: LexborNode | None = anchor
    scope_id = scope.mem_id
    while node is not None and node.mem_id != scope_id:
        if node.mem_id in noise:
            return None
        chain.append(node)
        node = node.parent
    return [*chain, scope] if node is not None else None


def _card_of(
    chain: list[LexborNode], holder: dict[int, str]
) -> tuple[LexborNode, LexborNode] | None:
    """The highest element of the chain holding only this link's URL, and its parent (which
    holds more)."""
    for index, node in enumerate(chain[:-1]):
        parent = chain[index + 1]
        if holder[parent.mem_id] == _MULTI:
            return (node, parent) if node.tag not in _NOT_CARDS else None
    return None


def _signature(node: LexborNode) -> tuple[str, ...]:
    """Tag and classes of a card container, without per-item classes like ``post-123``."""
    tokens = sorted(t for t in classes(node) if not _NUMBERED.search(t))
    return (node.tag or "", *tokens)


def _host(url: str) -> str:
    """The host of a URL without ``www.``."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return host.removeprefix("www.")


def _article_like(url: str, host: str, own: str) -> bool:
    """Whether a URL may be an article of the same site (not a listing, file or this page)."""
    return url != own and _article_path(url, host)


@lru_cache(maxsize=8192)
def _article_path(url: str, host: str) -> bool:
    """Whether a URL is on ``host`` and its path may be an article's (cached: links repeat)."""
    try:
        parts = urlsplit(url)
        url_host = (parts.hostname or "").removeprefix("www.")
    except ValueError:
        return False
    if url_host != host or (parts.path in ("", "/") and not parts.query):
        return False
    return not LISTING_PATH.search(url) and not MEDIA_PATH.search(parts.path)


def _first_article_url(doc: Document, node: LexborNode) -> str | None:
    """The URL of the first link of a card given by a configured selector."""
    for anchor in [node, *select(node, "a[href]")]:
        url = doc.resolve(anchor.attributes.get("href")) if anchor.tag == "a" else None
        if url:
            return defrag(url)
    return None


def _evaluate(
    doc: Document,
    pairs: list[tuple[LexborNode, str]],
    minimum: int = MIN_CARDS,
    *,
    trusted: bool = False,
) -> CardGroup | None:
    """Read the cards of a candidate group; keep it if enough of them look like post cards
    (``trusted``: configured cards need a title only)."""
    nodes: list[LexborNode] = []
    cards: list[Card] = []
    rich = 0
    hints: dict[str, str] = {}  # cards of a group share markup: what matched once goes first
    for node, url in pairs:
        card = read_card(doc, node, url, hints)
        if card.title:
            nodes.append(node)
            cards.append(card)
            rich += bool(card.date or card.comments or card.summary)
    if len(cards) < minimum or (not trusted and rich < max(minimum, len(cards) // 2)):
        return None
    return CardGroup(nodes=tuple(nodes), cards=tuple(cards))


def read_card(
    doc: Document, card: LexborNode, url: str, hints: dict[str, str] | None = None
) -> Card:
    """The fields of one post card, as the card writes them.

    ``hints`` carries, from card to card of one group, the selector that found each field.
    """
    hints = {} if hints is None else hints
    title_node = next(_candidates(card, CARD_TITLE, hints, "title"), None)
    if title_node is not None:
        _remember(title_node, CARD_TITLE, hints, "title")
    else:
        title_node = select_first(card, HEADINGS)
    title = _card_title(doc, card, title_node, url)
    taken = {title_node.mem_id} if title_node is not None else set()
    summary_node, summary = _card_summary(card, taken, title, hints)
    if summary_node is not None:
        taken.add(summary_node.mem_id)
    return Card(
        url=url,
        title=title,
        date=_card_date(card, taken, hints),
        comments=_card_comments(card, taken, hints),
        summary=summary,
    )


def _candidates(
    card: LexborNode, query: str, hints: dict[str, str], field: str
) -> Iterator[LexborNode]:
    """Matches of a selector list in a card, those of the remembered selector first."""
    hint = hints.get(field)
    if hint:
        yield from select(card, hint)
    yield from select(card, query)


def _remember(node: LexborNode, query: str, hints: dict[str, str], field: str) -> None:
    """Note which selector of the list matched ``node``, for the next cards."""
    if field not in hints:
        for part in query.split(","):
            if node.css_matches(part.strip()):
                hints[field] = part.strip()
                return


def _card_title(
    doc: Document, card: LexborNode, heading: LexborNode | None, url: str
) -> str | None:
    """The heading's link text (or heading text), else the card link's text, else an img alt."""
    if heading is not None:
        text = inline_text(heading)
        if text:
            return text
    best = ""
    for anchor in select(card, "a[href]") if card.tag != "a" else [card]:
        if defrag(doc.resolve(anchor.attributes.get("href")) or "") == url:
            text = inline_text(anchor)
            best = text if len(text) > len(best) else best
    if best:
        return best
    return attr(select_first(card, "img[alt]"), "alt")


def _card_date(card: LexborNode, taken: set[int], hints: dict[str, str]) -> str | None:
    """The ``datetime`` of a ``<time>``, else a date-looking text in the card's meta."""
    for node in select(card, "time"):
        if not is_inside(node, taken, card):
            value = attr(node, "datetime") or inline_text(node)
            if value and DATE_LIKE.search(value):
                return value
    for node in _candidates(card, CARD_DATE, hints, "date"):
        if is_inside(node, taken, card):
            continue
        values = (attr(node, "content"), attr(node, "datetime"), attr(node, "title"))
        stated = next((v for v in values if v and DATE_LIKE.search(v)), None)
        text = stated or inline_text(node)
        if text and len(text) <= 60 and DATE_LIKE.search(text):
            _remember(node, CARD_DATE, hints, "date")
            return text
    return _leaf_text(card, taken, lambda text: len(text) <= 40 and DATE_LIKE.search(text))


def _card_comments(card: LexborNode, taken: set[int], hints: dict[str, str]) -> str | None:
    """A comment count: a comments element, an 'N comments' text, or a number in the meta."""
    for node in _candidates(card, CARD_COMMENTS, hints, "comments"):
        if is_inside(node, taken, card):
            continue
        text = attr(node, "content") or inline_text(node)
        if text and COUNT_LIKE.match(text):
            _remember(node, CARD_COMMENTS, hints, "comments")
            return text
    counted = _leaf_text(
        card, taken, lambda text: COUNT_LIKE.match(text) and not BARE_NUMBER.match(text)
    )
    if counted:
        return counted
    for node in select(card, "li, span, small"):
        text = inline_text(node)
        if BARE_NUMBER.match(text) and not is_inside(node, taken, card) and _in_meta(node, card):
            return text
    return None


def _in_meta(node: LexborNode, card: LexborNode) -> bool:
    """Whether an element sits in a card's meta line (a class naming meta or comments)."""
    current: LexborNode | None = node
    while current is not None and current.mem_id != card.mem_id:
        if any("meta" in token or "comment" in token for token in classes(current)):
            return True
        current = current.parent
    return False


def _card_summary(
    card: LexborNode, taken: set[int], title: str | None, hints: dict[str, str]
) -> tuple[LexborNode | None, str | None]:
    """The excerpt: an excerpt element, else the first paragraph-sized ``<p>``."""
    for node in _candidates(card, CARD_SUMMARY, hints, "summary"):
        text = block_text(node)
        if text and text != title and not is_inside(node, taken, card):
            _remember(node, CARD_SUMMARY, hints, "summary")
            return node, text
    for node in select(card, "p"):
        text = inline_text(node)
        if len(text) >= 20 and text != title and not is_inside(node, taken, card):
            return node, text
    return None, None


def _leaf_text(card: LexborNode, taken: set[int], accept: Callable[[str], object]) -> str | None:
    """The text of the first small element of the card that ``accept`` approves."""
    for node in select(card, "li, span, small, em, abbr, dd, div, p, a"):
        if node.child is None or is_inside(node, taken, card):
            continue
        text = inline_text(node)
        if text and len(text) <= 80 and accept(text):
            return text
    return None
