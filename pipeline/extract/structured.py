"""Extract stage: the structured data a page declares about itself.

JSON-LD (``@graph``, arrays, nested and ``@id``-referenced authors, ``commentCount`` and
``interactionStatistic``), schema.org microdata, microformats (h-entry and classic hAtom) and
meta tags (Open Graph, ``article:*``, Dublin Core). Each reader hands on a ``Fields`` dict of
the page's own strings per field (``title``, ``published``, ``updated``, ``author``,
``comments``, ``summary``, ``text``, ``language``); ``article.py`` decides which source wins.
Broken data (invalid JSON, odd types) is skipped, never raised.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from selectolax.lexbor import LexborNode

from pipeline.extract.dom import (
    Document,
    Regions,
    ancestor_ids,
    attr,
    block_text,
    classes,
    inline_text,
    is_inside,
    select,
)
from pipeline.extract.selectors import ARTICLE_TYPES, META, PAGE_TYPES
from pipeline.models import TopicRef

__all__ = [
    "Fields",
    "JsonLd",
    "article_scopes",
    "entry_roots",
    "jsonld_fields",
    "jsonld_topics",
    "meta_fields",
    "microdata_fields",
    "microformat_fields",
    "read_jsonld",
    "read_meta",
]

Fields = dict[str, str]
"""Field name -> the page's own string for it."""

MAX_JSONLD_CHARS = 1_000_000
MAX_JSONLD_NODES = 5_000
_LISTED_TYPES = frozenset({"ItemList", "CollectionPage", "SearchResultsPage", "ListItem", "Blog"})
_MF_ROOT = re.compile(r"^(?:h-\w[\w-]*|hentry|vcard|hcard)$")
_URLISH = re.compile(r"^(?:https?:)?//|^www\.", re.I)


def read_meta(doc: Document) -> dict[str, str]:
    """Every ``<meta>`` of the page by lowercase name/property/http-equiv (the first wins)."""
    found: dict[str, str] = {}
    for node in select(doc.root, "meta[content]"):
        attrs = node.attributes
        key = attrs.get("property") or attrs.get("name") or attrs.get("http-equiv")
        content = (attrs.get("content") or "").strip()
        if key and content:
            found.setdefault(key.strip().lower(), content)
    return found


def meta_fields(meta: dict[str, str]) -> Fields:
    """Field values from meta tags, by the names in ``selectors.META``."""
    fields: Fields = {}
    for name, keys in META.items():
        for key in keys:
            value = meta.get(key)
            if value and not (name == "author" and (_URLISH.match(value) or "@" in value[:1])):
                fields[name] = value
                break
    return fields


# --- JSON-LD ------------------------------------------------------------------------------------


@dataclass(slots=True)
class JsonLd:
    """The JSON-LD entities of a page.

    Attributes:
        articles: article-typed entities that are not items of a list, in page order.
        listed: article-typed entities inside an ItemList/CollectionPage (a listing's cards).
        pages: WebPage-typed entities.
        by_id: every entity with an ``@id``, for resolving references.
        site_name: the name of the WebSite/publisher, when declared.
    """

    articles: list[dict[str, Any]] = field(default_factory=list)
    listed: list[dict[str, Any]] = field(default_factory=list)
    pages: list[dict[str, Any]] = field(default_factory=list)
    by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    site_name: str | None = None


def read_jsonld(doc: Document) -> JsonLd:
    """Parse every ``application/ld+json`` script; invalid ones are skipped."""
    result = JsonLd()
    for node in select(doc.root, "script[type]"):
        kind = (node.attributes.get("type") or "").strip().lower()
        if not kind.startswith("application/ld+json"):
            continue
        data = _loads(node.text(deep=True))
        if data is not None:
            _collect(data, result)
    return result


def _loads(text: str) -> Any:
    """JSON from a script body, forgiving comment wrappers and trailing commas; None if broken."""
    text = text.strip()
    if not text or len(text) > MAX_JSONLD_CHARS:
        return None
    text = re.sub(r"^\s*(?://\s*)?(?:<!--|<!\[CDATA\[)|(?://\s*)?(?:-->|\]\]>)\s*$", "", text)
    for candidate in (text, re.sub(r",\s*([}\]])", r"\1", text)):
        try:
            return json.loads(candidate, strict=False)
        except (ValueError, RecursionError):
            continue
    return None


def _collect(data: Any, result: JsonLd) -> None:
    """Walk parsed JSON-LD (iteratively, bounded) and sort its typed entities."""
    stack: list[tuple[Any, bool]] = [(data, False)]
    seen = 0
    while stack and seen < MAX_JSONLD_NODES:
        item, listed = stack.pop()
        seen += 1
        if isinstance(item, list):
            stack.extend((child, listed) for child in reversed(item))
            continue
        if not isinstance(item, dict):
            continue
        types = _types(item)
        _file_entity(item, types, listed, result)
        child_listed = listed or bool(types & (_LISTED_TYPES | ARTICLE_TYPES))
        for key, value in reversed(list(item.items())):
            if isinstance(value, dict | list):
                stack.append((value, listed if key == "@graph" else child_listed))


def _file_entity(item: dict[str, Any], types: set[str], listed: bool, result: JsonLd) -> None:
    """Record one entity in the right list of ``result``."""
    ident = item.get("@id")
    if isinstance(ident, str) and len(item) > 1:
        result.by_id.setdefault(ident, item)
    if types & ARTICLE_TYPES:
        (result.listed if listed else result.articles).append(item)
    elif types & PAGE_TYPES and not listed:
        result.pages.append(item)
    elif types & {"WebSite", "Organization"} and result.site_name is None:
        name = item.get("name")
        if isinstance(name, str) and name.strip():
            result.site_name = name.strip()


def _types(item: dict[str, Any]) -> set[str]:
    """The schema.org type names of an entity, without the vocabulary URL."""
    raw = item.get("@type")
    values = raw if isinstance(raw, list) else [raw]
    return {v.rsplit("/", 1)[-1].rsplit("#", 1)[-1] for v in values if isinstance(v, str)}


def jsonld_fields(data: JsonLd) -> Fields:
    """Field values of the page's main article entity (a WebPage fills what it lacks)."""
    fields: Fields = {}
    entities = data.articles[:1] + data.pages[:1]
    for index, entity in enumerate(entities):
        is_article = index == 0 and bool(data.articles)
        candidates = {
            "title": _string(entity.get("headline"))
            or (_string(entity.get("name")) if is_article else None),
            "published": _string(entity.get("datePublished") or entity.get("dateCreated")),
            "updated": _string(entity.get("dateModified")),
            "author": _author(entity.get("author") or entity.get("creator"), data),
            "comments": _comment_count(entity),
            "summary": _string(entity.get("description")),
            "text": _string(entity.get("articleBody")),
            "language": _language(entity.get("inLanguage")),
        }
        for name, value in candidates.items():
            if value and name not in fields:
                fields[name] = value
    return fields


def jsonld_topics(data: JsonLd) -> tuple[TopicRef, ...]:
    """Topic names from ``articleSection``, else ``keywords`` (no URLs: fallback only)."""
    if not data.articles:
        return ()
    entity = data.articles[0]
    for key in ("articleSection", "keywords"):
        raw = entity.get(key)
        values = raw if isinstance(raw, list) else [raw]
        names: list[str] = []
        for value in values:
            if isinstance(value, str):
                names.extend(value.split(",") if key == "keywords" else [value])
        topics = tuple(TopicRef(name=n.strip()) for n in names if n.strip())
        if topics:
            return topics
    return ()


def _string(value: Any) -> str | None:
    """A JSON-LD value as text: strings, numbers, ``{"@value": ...}``, first of a list."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("@value")
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else str(value)
    if isinstance(value, str):
        return value.strip() or None
    return None


def _author(value: Any, data: JsonLd) -> str | None:
    """Author names of a JSON-LD author value, joined by ', '."""
    values = value if isinstance(value, list) else [value]
    names: list[str] = []
    for item in values[:10]:
        if isinstance(item, dict) and "name" not in item:
            ident = item.get("@id")
            item = data.by_id.get(ident, item) if isinstance(ident, str) else item
        name = _string(item.get("name")) if isinstance(item, dict) else _string(item)
        if name and not _URLISH.match(name) and name not in names:
            names.append(name)
    return ", ".join(names) or None


def _comment_count(entity: dict[str, Any]) -> str | None:
    """``commentCount``, else the CommentAction count of ``interactionStatistic``."""
    direct = _string(entity.get("commentCount"))
    if direct is not None:
        return direct
    stats = entity.get("interactionStatistic")
    for stat in stats if isinstance(stats, list) else [stats]:
        if not isinstance(stat, dict):
            continue
        kind = stat.get("interactionType")
        kind_name = _string(kind.get("@type") if isinstance(kind, dict) else kind) or ""
        if kind_name.endswith("CommentAction"):
            return _string(stat.get("userInteractionCount"))
    return None


def _language(value: Any) -> str | None:
    """``inLanguage`` as a tag: a string, or a Language's ``alternateName``."""
    if isinstance(value, dict):
        return _string(value.get("alternateName") or value.get("name"))
    return _string(value)


# --- microdata and microformats -----------------------------------------------------------------


def article_scopes(doc: Document) -> list[LexborNode]:
    """Top-level microdata items of an article type, in page order."""
    roots = [
        node
        for node in select(doc.root, "[itemscope][itemtype]")
        if _itemtypes(node) & ARTICLE_TYPES
    ]
    ids = {node.mem_id for node in roots}
    return [node for node in roots if not any(a in ids for a in ancestor_ids(node))]


def _itemtypes(node: LexborNode) -> set[str]:
    """Type names of a microdata item (last path segment of each ``itemtype`` URL)."""
    value = node.attributes.get("itemtype") or ""
    return {part.rstrip("/").rsplit("/", 1)[-1] for part in value.split()}


def microdata_fields(root: LexborNode) -> Fields:
    """Field values of the properties of one microdata item (not of items nested in it)."""
    fields: Fields = {}
    names = {
        "headline": "title", "name": "title", "datePublished": "published",
        "dateCreated": "published", "dateModified": "updated", "author": "author",
        "creator": "author", "commentCount": "comments", "description": "summary",
        "articleBody": "text", "inLanguage": "language",
    }  # fmt: skip
    for node in select(root, "[itemprop]"):
        if _scope_of(node, root).mem_id != root.mem_id:
            continue
        props = (node.attributes.get("itemprop") or "").split()
        for prop in props:
            if prop == "description" and "articleBody" in props:
                continue  # Blogger marks the whole body as the description too
            name = names.get(prop)
            if name is None or name in fields:
                continue
            value = _microdata_value(node, prop)
            if value:
                fields[name] = value
    return fields


def _scope_of(node: LexborNode, root: LexborNode) -> LexborNode:
    """The microdata item a property belongs to (the nearest ``itemscope`` ancestor)."""
    parent = node.parent
    while parent is not None and parent.mem_id != root.mem_id:
        if "itemscope" in parent.attributes:
            return parent
        parent = parent.parent
    return root


def _microdata_value(node: LexborNode, prop: str) -> str | None:
    """The value of a microdata property by the element's kind."""
    if prop in ("author", "creator") and "itemscope" in node.attributes:
        name_node = next(iter(select(node, "[itemprop~=name]")), None)
        return attr(name_node, "content") or inline_text(name_node) or None
    if prop == "articleBody":
        return block_text(node) or None
    for name in ("content", "datetime", "title" if node.tag == "abbr" else "value"):
        value = attr(node, name)
        if value:
            return value
    return inline_text(node) or None


def entry_roots(doc: Document) -> list[LexborNode]:
    """Top-level h-entry/hentry elements, in page order."""
    roots = select(doc.root, ".h-entry, .hentry")
    ids = {node.mem_id for node in roots}
    return [node for node in roots if not any(a in ids for a in ancestor_ids(node))]


def microformat_fields(root: LexborNode, skipped: set[int] | Regions) -> Fields:
    """Field values of one h-entry (hAtom classes too), ignoring nested entries and cards."""
    fields: Fields = {}
    queries = {
        "title": ".p-name, .entry-title",
        "published": ".dt-published, .published",
        "updated": ".dt-updated, .updated",
        "summary": ".p-summary, .entry-summary",
    }
    for name, query in queries.items():
        for node in _own(select(root, query), root, skipped):
            value = _mf_value(node) if name in ("published", "updated") else inline_text(node)
            if value:
                fields[name] = value
                break
    for node in select(root, ".p-author, .author"):
        parent = node.parent
        if _in_nested_entry(node, root) or (parent is not None and is_inside(parent, skipped)):
            continue
        name_node = next(iter(select(node, ".p-name, .fn")), None)
        value = inline_text(name_node) if name_node is not None else inline_text(node)
        if value:
            fields["author"] = value
            break
    return fields


def _own(
    nodes: list[LexborNode], root: LexborNode, skipped: set[int] | Regions
) -> Iterator[LexborNode]:
    """The nodes whose nearest microformat root is ``root`` and that are not in a skipped region."""
    for node in nodes:
        if is_inside(node, skipped):
            continue
        parent = node.parent
        while parent is not None and parent.mem_id != root.mem_id:
            if any(_MF_ROOT.match(token) for token in classes(parent)):
                break
            parent = parent.parent
        else:
            yield node


def _in_nested_entry(node: LexborNode, root: LexborNode) -> bool:
    """Whether ``node`` lies in an h-entry/h-cite nested inside ``root`` (a comment)."""
    parent = node.parent
    while parent is not None and parent.mem_id != root.mem_id:
        if {"h-entry", "hentry", "h-cite", "comment"} & set(classes(parent)):
            return True
        parent = parent.parent
    return False


def _mf_value(node: LexborNode) -> str | None:
    """A microformat date: ``datetime``, ``title`` (hAtom abbr), value-title, else the text."""
    value = attr(node, "datetime") or attr(node, "title") or attr(node, "content")
    if value:
        return value
    value_title = next(iter(select(node, ".value-title[title]")), None)
    return attr(value_title, "title") or inline_text(node) or None
