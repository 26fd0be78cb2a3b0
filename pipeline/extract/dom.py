"""Extract stage helpers: the parsed document, safe selection, page text and URLs.

selectolax's ``.text()`` includes the content of ``<script>``/``<style>`` and knows nothing of
paragraphs, so page text is read here by one iterative walk (no recursion: absurdly nested
pages must not overflow the stack) that skips non-text elements and splits at block elements.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import cast
from urllib.parse import urldefrag, urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from pipeline.extract.selectors import BLOCK_TAGS, SKIP_TAGS
from pipeline.models import Links

__all__ = [
    "Document",
    "Regions",
    "SimpleSelectors",
    "ancestor_ids",
    "attr",
    "block_text",
    "classes",
    "defrag",
    "inline_text",
    "is_inside",
    "parse_document",
    "select",
    "select_first",
    "select_ids",
]

MAX_DEPTH = 1000
"""Deepest element nesting parsed; lexbor's parse time grows with depth x elements."""
_DEPTH_CHECK = 2 * MAX_DEPTH  # cheap first check: unclosed-tag surplus below this is harmless
_SMALL_PAGE = 4000  # tags: below this even the deepest nesting parses in milliseconds
_OPEN_RUN = re.compile(r"(?:<[A-Za-z][^<>]*>[^<]*){512}")  # many opening tags in a row
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)[^>]*?(/?)>")
# Void elements and those the parser closes by itself: they never make a real tree deep.
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
     "track", "wbr", "p", "li", "dt", "dd", "option", "tr", "td", "th"}
)  # fmt: skip
_NO_IDS: set[int] = set()
#: Absolute hrefs resolved, for every page: a theme repeats its links (~100 an article) on each
#: page, and an absolute href resolves the same whatever the page's base URL.
_ABSOLUTE: dict[str, str | None] = {}
_ABSOLUTE_LIMIT = 4096
_UNKNOWN = object()
_LINK_SCHEMES = ("http", "https")


class Document:
    """A page parsed once: the tree, its URL and base URL for resolving links."""

    __slots__ = ("_regions", "_resolved", "_verdicts", "base", "tree", "url")

    def __init__(self, tree: LexborHTMLParser, url: str) -> None:
        self.tree = tree
        self.url = url
        self._resolved: dict[str, str | None] = {}
        self._regions: dict[tuple[str, int], set[int]] = {}
        self._verdicts: dict[tuple[str, int], dict[int, bool]] = {}
        base = select_first(tree.head, "base[href]") if tree.head is not None else None
        href = attr(base, "href") if base is not None else None
        self.base = (_join(url, href) or url) if href else url

    @property
    def root(self) -> LexborNode | None:
        """The ``<html>`` element."""
        return self.tree.root

    @property
    def body(self) -> LexborNode | None:
        """The ``<body>`` element."""
        return self.tree.body

    def region_ids(self, node: LexborNode | None, query: str) -> set[int]:
        """``select_ids(node, query)``, computed once per page (callers must not mutate it)."""
        if node is None:
            return _NO_IDS
        key = (query, node.mem_id)
        found = self._regions.get(key)
        if found is None:
            found = self._regions[key] = select_ids(node, query)
        return found

    def regions(
        self,
        node: LexborNode | None,
        query: str,
        *,
        also: set[int] | None = None,
        never: set[int] | None = None,
    ) -> Regions:
        """What ``region_ids(node, query)`` holds (and ``also``, less ``never``), for
        ``is_inside``, without selecting: each element asked about is matched on its own.

        ``region_ids`` makes lexbor walk the whole tree once per selector of the list: ~190 us
        an article page for ``NOISE_OR_COMMENTS``' 32, where an article's field readers ask
        about some 40 elements (their candidates and those candidates' ancestors).
        """
        known = self._verdicts.setdefault((query, node.mem_id if node is not None else 0), {})
        return Regions(self, node, query, known, frozenset(also or ()), frozenset(never or ()))

    def resolve(self, href: str | None) -> str | None:
        """The absolute http(s) URL of a link, or None for javascript:, mailto:, #frag, junk."""
        if not href:
            return None
        known: object = _ABSOLUTE.get(href, _UNKNOWN)
        if known is _UNKNOWN:
            known = self._resolved.get(href, _UNKNOWN)
        if known is not _UNKNOWN:
            return cast("str | None", known)
        stripped = href.strip()
        url = None if not stripped or stripped.startswith("#") else _join(self.base, stripped)
        if stripped.startswith(("http://", "https://")):  # the same on any page: remembered
            if len(_ABSOLUTE) >= _ABSOLUTE_LIMIT:
                _ABSOLUTE.clear()
            _ABSOLUTE[href] = url
        else:
            self._resolved[href] = url
        return url

    def links(self, *, texts: bool = True) -> Links:
        """Every ``<a href>`` of the page, absolute, in page order. With ``texts`` False each
        link's text is left empty: reading them was ~40 % of this call on an article, and only
        a listing's pagination needs them."""
        urls: list[str] = []
        found: list[str] = []
        rels: list[str] = []
        resolve = self.resolve
        for node in select(self.tree.root, "a[href]"):  # ~100 an article, ~500 a topic page
            attributes = node.attributes  # selectolax builds this dict on each access
            url = resolve(attributes.get("href"))
            if url is None:
                continue
            urls.append(url)
            if texts:
                found.append(inline_text(node) or attr(select_first(node, "img[alt]"), "alt") or "")
            rel = attributes.get("rel")
            rels.append(rel.strip() if rel else "")
        return Links(tuple(urls), tuple(found) if texts else ("",) * len(urls), tuple(rels))


class Regions:
    """The regions of ``Document.regions``: decided an element at a time, each answer kept.

    An element is a region when it is in ``also``, or lies in ``within``'s subtree (``within``
    included, as lexbor's ``css`` has it) and matches ``query``; never when it is one of those
    given to ``keep`` (or ``never``). Matching is ``SimpleSelectors.verdict`` in Python; where
    that cannot be sure (quirks-mode case folding, odd whitespace in a class, a selector that
    is not simple) the answer comes from lexbor's own ``region_ids``, so it is always the one
    ``region_ids`` would give.

    ``covers`` remembers its answer for every element of the chain it walked: a page's
    candidates share most of their ancestors, so the next one stops at the first it shares.
    """

    __slots__ = ("_covered", "_doc", "_known", "_query", "_simple", "_within", "also", "never")

    def __init__(
        self,
        doc: Document,
        within: LexborNode | None,
        query: str,
        known: dict[int, bool],
        also: frozenset[int],
        never: frozenset[int],
    ) -> None:
        self._doc = doc
        self._within = within
        self._query = query
        self._simple = SimpleSelectors.parse(query)
        self._known = known
        self.also = also
        self.never = never
        #: mem_id -> _COVERED and/or _INSIDE bits, for ``covers`` without ``stop``
        self._covered: dict[int, int] = {}

    def keep(self, ids: set[int]) -> None:
        """Count the elements ``ids`` as no region from now on."""
        self.never = self.never | ids
        self._covered.clear()

    def covers(self, node: LexborNode, stop: LexborNode | None = None) -> bool:
        """Whether ``node`` is, or lies inside, a region (below ``stop``)."""
        if stop is not None:
            return self._covers_below(node, stop)
        known = self._covered
        path: list[tuple[LexborNode, int]] = []
        state = 0  # above the root: neither covered nor inside
        current: LexborNode | None = node
        while current is not None:
            mem_id = current.mem_id
            found = known.get(mem_id)
            if found is not None:
                state = found
                break
            path.append((current, mem_id))
            current = current.parent
        within_id = self._within.mem_id if self._within is not None else None
        for element, mem_id in reversed(path):  # from the top down
            if mem_id == within_id:
                state |= _INSIDE
            if not state & _COVERED and self._region(element, mem_id, state):
                state |= _COVERED
            known[mem_id] = state
        return bool(state & _COVERED)

    def _region(self, element: LexborNode, mem_id: int, state: int) -> bool:
        """Whether ``element`` itself is a region (``state``: what its parent's chain is)."""
        if mem_id in self.never:
            return False
        return mem_id in self.also or bool(state & _INSIDE and self._matches(element))

    def _covers_below(self, node: LexborNode, stop: LexborNode) -> bool:
        """``covers`` for the elements below ``stop`` only: each element's own answer, read
        from what ``covers`` remembers of ``node``'s chain (every ancestor of an element it
        remembers is remembered too)."""
        self.covers(node)
        known = self._covered
        current: LexborNode | None = node
        stop_id = stop.mem_id
        while current is not None:
            mem_id = current.mem_id
            if current is not node and mem_id == stop_id:
                return False
            if self._region(current, mem_id, known[mem_id]):
                return True
            current = current.parent
        return False

    def _matches(self, element: LexborNode) -> bool:
        mem_id = element.mem_id
        found = self._known.get(mem_id)
        if found is None:
            verdict = self._simple.verdict(element) if self._simple is not None else None
            if verdict is None:
                verdict = mem_id in self._doc.region_ids(self._within, self._query)
            found = self._known[mem_id] = verdict
        return found


_COVERED = 1
_INSIDE = 2


#: Characters ``str.split()`` splits at that HTML's class attribute does not.
_ODD_SPACE = re.compile(r"[^\S \t\n\f\r]")
_SIMPLE = re.compile(
    r"(?P<tag>[a-z][a-z0-9-]*)|\.(?P<cls>-?[_a-zA-Z][_a-zA-Z0-9-]*)"
    r"|#(?P<id>-?[_a-zA-Z][_a-zA-Z0-9-]*)"
    r"|\[(?P<attr>[a-z][a-z0-9-]*)=(?P<value>[_a-zA-Z][_a-zA-Z0-9-]*)\]"
)


class SimpleSelectors:
    """A selector list of simple selectors (``tag``, ``.class``, ``#id``, ``[name=value]``),
    matched against one element in Python: True, False, or None when only lexbor can tell.

    None is for what depends on the document: in quirks mode lexbor matches classes and ids
    ignoring ASCII case, so a match that needs case folding is unsure; so is a class token
    that Python's ``split`` (which splits at more characters than HTML) may have cut out.
    Whatever Python splits or folds, a token lexbor matches is found here too, so a False is
    always right.
    """

    __slots__ = ("attributes", "classes", "folded_classes", "folded_ids", "ids", "tags")

    def __init__(
        self,
        tags: frozenset[str],
        classes: frozenset[str],
        ids: frozenset[str],
        attributes: tuple[tuple[str, str], ...],
    ) -> None:
        self.tags = tags
        self.classes = classes
        self.ids = ids
        self.attributes = attributes
        self.folded_classes = frozenset(name.lower() for name in classes)
        self.folded_ids = frozenset(name.lower() for name in ids)

    @staticmethod
    @lru_cache(maxsize=64)
    def parse(query: str) -> SimpleSelectors | None:
        """The list ``query`` as simple selectors; None when any of its parts is another kind."""
        tags: set[str] = set()
        classes: set[str] = set()
        ids: set[str] = set()
        attributes: list[tuple[str, str]] = []
        for part in query.split(","):
            match = _SIMPLE.fullmatch(part.strip())
            if match is None:
                return None
            if match["tag"]:
                tags.add(match["tag"])
            elif match["cls"]:
                classes.add(match["cls"])
            elif match["id"]:
                ids.add(match["id"])
            else:
                attributes.append((match["attr"], match["value"]))
        return SimpleSelectors(
            frozenset(tags), frozenset(classes), frozenset(ids), tuple(attributes)
        )

    def verdict(self, element: LexborNode) -> bool | None:
        """Whether ``element`` matches the list: True, False, or None (ask lexbor)."""
        if element.tag in self.tags:
            return True
        attributes = element.attributes
        if not attributes:
            return False
        unsure = False
        for check in (self._by_attributes, self._by_id, self._by_class):
            found = check(attributes)
            if found:
                return True
            unsure = unsure or found is None
        return None if unsure else False

    def _by_attributes(self, attributes: dict[str, str | None]) -> bool | None:
        unsure = False
        for name, value in self.attributes:
            found = attributes.get(name)
            if found == value:
                return True
            if found is not None and found.lower() == value.lower():
                unsure = True  # lexbor may fold the case of some attributes' values
        return None if unsure else False

    def _by_id(self, attributes: dict[str, str | None]) -> bool | None:
        value = attributes.get("id")
        if not value or not self.ids:
            return False
        if value in self.ids:
            return True
        return None if _folded_in(value, self.folded_ids) else False

    def _by_class(self, attributes: dict[str, str | None]) -> bool | None:
        value = attributes.get("class")
        if not value or not self.classes:
            return False
        unsure = False
        for token in value.split():
            if token in self.classes:
                if _ODD_SPACE.search(value) is None:
                    return True
                unsure = True
            elif _folded_in(token, self.folded_classes):
                unsure = True
        return None if unsure else False


def _folded_in(value: str, folded: frozenset[str]) -> bool:
    """Whether ``value`` lowercased is in ``folded`` (lowercase names) but not as it is."""
    return not value.islower() and value.lower() in folded


def defrag(url: str) -> str:
    """``url`` without its fragment (``urldefrag``, which costs ~1.5 us even without one)."""
    return url if "#" not in url else urldefrag(url).url


def _join(base: str, href: str) -> str | None:
    """``urljoin`` that drops non-http(s) results and malformed URLs instead of raising."""
    if "\n" in href or "\t" in href or "\r" in href:
        href = href.replace("\n", "").replace("\t", "").replace("\r", "")
    if href.startswith(("http://", "https://")):
        return _checked(href)  # most links of a themed page: the same absolute URLs each page
    try:
        url = urljoin(base, href)
    except ValueError:
        return None
    return _checked(url)


@lru_cache(maxsize=16_384)
def _checked(url: str) -> str | None:
    """``url`` if it is a well-formed absolute http(s) URL, else None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in _LINK_SCHEMES or not parts.netloc:
        return None
    return url


def parse_document(html: str, url: str) -> Document:
    """Parse a page once (scripting on, so ``<noscript>`` is one text node, as in a browser)."""
    return Document(LexborHTMLParser(_limit_nesting(html), scripting=True), url)


def _limit_nesting(html: str) -> str:
    """Cut a page where its element nesting passes ``MAX_DEPTH`` (only absurd pages get there)."""
    tags = html.count("<")
    if tags < _DEPTH_CHECK:  # too few tags to nest that deep (most pages: one count, no more)
        return html
    surplus = tags - 2 * html.count("</")  # opening tags left unclosed
    if surplus < _DEPTH_CHECK and (tags < _SMALL_PAGE or _OPEN_RUN.search(html) is None):
        return html
    stack: list[str] = []
    open_counts: dict[str, int] = {}
    for match in _TAG.finditer(html):
        name = match.group(2).lower()
        if match.group(1):
            if open_counts.get(name):
                while stack:
                    top = stack.pop()
                    open_counts[top] -= 1
                    if top == name:
                        break
        elif name not in _VOID and not match.group(3):
            stack.append(name)
            open_counts[name] = open_counts.get(name, 0) + 1
            if len(stack) > MAX_DEPTH:
                return html[: match.start()]
    return html


def select(node: LexborNode | None, query: str) -> list[LexborNode]:
    """Matches of a CSS selector list under ``node``, each once, in page order."""
    if node is None or not query:
        return []
    try:
        found = node.css(query)
    except (SelectolaxError, ValueError):
        return []
    if not _is_list(query):
        return found
    seen: set[int] = set()
    unique = []
    for match in found:  # lexbor returns a node once per selector of the list it matches
        if match.mem_id not in seen:
            seen.add(match.mem_id)
            unique.append(match)
    return unique


@lru_cache(maxsize=256)
def _is_list(query: str) -> bool:
    """Whether a selector may be a list (a comma outside parentheses): lexbor can match twice.

    Quoted text is not parsed: a selector with quotes counts as a list (deduplicating is safe).
    """
    if '"' in query or "'" in query:
        return "," in query
    depth = 0
    for char in query:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            return True
    return False


def select_first(node: LexborNode | None, query: str) -> LexborNode | None:
    """The first match of a CSS selector under ``node``, or None (also for a bad selector)."""
    if node is None or not query:  # lexbor raises on an empty query, and raising costs ~25 us
        return None
    try:
        return node.css_first(query)
    except (SelectolaxError, ValueError):
        return None


def select_ids(node: LexborNode | None, query: str) -> set[int]:
    """The ``mem_id`` of every match of a selector: a cheap membership test for regions."""
    return {match.mem_id for match in select(node, query)}


def attr(node: LexborNode | None, name: str) -> str | None:
    """An attribute's value with surrounding whitespace removed; None when absent or empty."""
    if node is None:
        return None
    value = node.attributes.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def classes(node: LexborNode) -> list[str]:
    """The class tokens of an element."""
    value = node.attributes.get("class")
    return value.split() if value else []


def ancestor_ids(node: LexborNode, stop: LexborNode | None = None) -> Iterator[int]:
    """``mem_id`` of each ancestor of ``node``, nearest first, up to (not including) ``stop``."""
    stop_id = stop.mem_id if stop is not None else None
    parent = node.parent
    while parent is not None and parent.mem_id != stop_id:
        yield parent.mem_id
        parent = parent.parent


def is_inside(
    node: LexborNode, region_ids: set[int] | Regions, stop: LexborNode | None = None
) -> bool:
    """Whether ``node`` is, or lies inside, one of the regions (below ``stop``)."""
    if isinstance(region_ids, Regions):
        return region_ids.covers(node, stop)
    if not region_ids:
        return False
    if node.mem_id in region_ids:
        return True
    return any(ancestor in region_ids for ancestor in ancestor_ids(node, stop))


def inline_text(node: LexborNode | None, skip_ids: set[int] | None = None) -> str:
    """The visible text of an element on one line, whitespace collapsed."""
    if node is None:
        return ""
    child = node.child
    if child is not None and child.next is None and child.is_text_node:
        return " ".join((child.text_content or "").split())  # the common <a>text</a>
    parts: list[str] = []
    _walk_text(node, skip_ids or _NO_IDS, parts, None)
    return " ".join("".join(parts).split())


def block_text(node: LexborNode | None, skip_ids: set[int] | None = None) -> str:
    """The visible text of an element as paragraphs (blocks, or text parted by two ``<br>``)
    joined by a blank line, whitespace inside a paragraph collapsed."""
    if node is None:
        return ""
    parts: list[str] = []
    paragraphs: list[str] = []
    _walk_text(node, skip_ids or _NO_IDS, parts, paragraphs)
    _end_paragraph(parts, paragraphs)
    return "\n\n".join(paragraphs)


def _end_paragraph(parts: list[str], paragraphs: list[str]) -> None:
    """Close the paragraph being collected (``parts``; ``\n`` marks a ``<br>``)."""
    if not parts:
        return
    for chunk in "".join(parts).split("\n\n"):
        text = " ".join(chunk.split())
        if text:
            paragraphs.append(text)
    parts.clear()


def _walk_text(
    root: LexborNode, skip_ids: set[int], parts: list[str], paragraphs: list[str] | None
) -> None:
    """Collect the text of a subtree in page order, iteratively (no recursion limit).

    With ``paragraphs``, block elements close a paragraph and ``<br>`` adds a line mark.
    """
    blocks = paragraphs is not None
    node = root.child
    while node is not None:
        child = None
        if node.is_text_node:
            text = node.text_content
            if text:
                parts.append(text.replace("\n", " ") if blocks else text)
        elif node.is_element_node:
            tag = node.tag or ""
            if tag in SKIP_TAGS or node.mem_id in skip_ids:
                pass
            elif tag == "br":
                parts.append("\n" if blocks else " ")
            else:
                if tag in BLOCK_TAGS:
                    _block_edge(parts, paragraphs)
                child = node.child
        if child is not None:
            node = child
            continue
        node = _next_in_walk(node, root, parts, paragraphs)


def _block_edge(parts: list[str], paragraphs: list[str] | None) -> None:
    """A block element starts or ends: close the paragraph (or, inline, add a space)."""
    if paragraphs is None:
        parts.append(" ")
    else:
        _end_paragraph(parts, paragraphs)


def _next_in_walk(
    node: LexborNode, root: LexborNode, parts: list[str], paragraphs: list[str] | None
) -> LexborNode | None:
    """The next node of a pre-order walk after ``node``'s subtree; closes blocks it leaves."""
    root_id = root.mem_id
    current: LexborNode | None = node
    while current is not None and current.mem_id != root_id:
        following = current.next
        if following is not None:
            return following
        current = current.parent
        if current is not None and current.mem_id != root_id and current.tag in BLOCK_TAGS:
            _block_edge(parts, paragraphs)
    return None
