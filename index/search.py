"""Index stage, part 4: search the whoosh index and hand back typed results.

``search(path, query, ...)`` parses the query (``query.py``), applies filters as whoosh filter
queries, ranks with BM25F (title weighs most) or sorts by date or comments, pages, optionally
counts facets over all matching articles, and returns a ``SearchResults`` of ``Hit``s with
highlighted snippets for the CLI to render.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from math import ceil
from pathlib import Path
from typing import Any, Literal

from whoosh import collectors, highlight, sorting
from whoosh import query as wq

from index.layout import read_index
from index.query import parse_query
from index.schema import column_datetime, date_range, date_span, to_index_datetime

logger = logging.getLogger(__name__)

#: Snippets mark each matched word as ``[[word]]``; a renderer styles the text between.
MARK_START = "[["
MARK_END = "]]"
#: Longest snippet, in characters of document text (markers not counted).
SNIPPET_CHARS = 200
#: Characters a snippet's ends may move to reach a word boundary.
_WIDEN = 24
#: Facet names in ``SearchResults.facets``.
FACET_NAMES = ("topic", "month")

SortOrder = Literal["relevance", "date", "comments"]


@dataclass(frozen=True, slots=True)
class Hit:
    """One matching article.

    Attributes:
        id: the record id.
        url: the article URL.
        title: title, if any.
        published_at: the publication date or time as the record gave it (ISO), if any.
        comment_count: comments, if known.
        topics: topics in their original spelling.
        site: the site name.
        author: author, if any.
        summary: summary, if any.
        score: BM25F relevance; None when sorted by date or comments.
        snippet: up to ``SNIPPET_CHARS`` characters of text (or summary) around the matches,
            each matched word wrapped as ``[[word]]`` (``MARK_START``/``MARK_END``); literal
            ``[[``/``]]`` in the text are broken up so markers are unambiguous.
        rank: 1-based position in the whole result list (not just this page).
    """

    id: str
    url: str
    title: str | None
    published_at: str | None
    comment_count: int | None
    topics: tuple[str, ...]
    site: str | None
    author: str | None
    summary: str | None
    score: float | None
    snippet: str
    rank: int

    @property
    def snippet_plain(self) -> str:
        """The snippet without match markers."""
        return self.snippet.replace(MARK_START, "").replace(MARK_END, "")


@dataclass(frozen=True, slots=True)
class SearchResults:
    """One page of search results.

    Attributes:
        total: articles matching the query and filters.
        page: the page returned (1-based; may be past the last page, with no hits).
        pages: number of pages of ``limit`` hits.
        hits: the hits on this page, best first.
        facets: when asked for, ``{"topic": [(topic, count), ...], "month": [("2025-11", count),
            ...]}`` over all matching articles: topics (lowercased) by count then name, months
            newest first; undated articles have no month. None when not asked for.
    """

    total: int
    page: int
    pages: int
    hits: tuple[Hit, ...]
    facets: dict[str, list[tuple[str, int]]] | None


class _MarkFormatter(highlight.Formatter):  # type: ignore[misc]  # whoosh is untyped
    """Formats whoosh highlight fragments with ``[[word]]`` markers."""

    between = " … "

    def _text(self, text: str) -> str:
        return text.replace(MARK_START, "[ [").replace(MARK_END, "] ]")

    def format_token(self, text: str, token: Any, replace: bool = False) -> str:
        return MARK_START + self._text(highlight.get_text(text, token, replace)) + MARK_END

    def format_fragment(self, fragment: Any, replace: bool = False) -> str:
        """The fragment widened to whole words, with "…" where it cuts the text.

        whoosh cuts fragments at token boundaries, and the tokenizer splits "It's" in two: a
        snippet could start at "s worth asking".
        """
        text = fragment.text
        fragment.startchar, fragment.endchar = _whole_words(
            text, fragment.startchar, fragment.endchar
        )
        body: str = super().format_fragment(fragment, replace).strip()
        before = "… " if text[: fragment.startchar].strip() else ""
        after = " …" if text[fragment.endchar :].strip() else ""
        return before + body + after


def _whole_words(text: str, start: int, end: int) -> tuple[int, int]:
    """``start`` moved back and ``end`` forward to the nearest whitespace (or the text's ends),
    each by at most ``_WIDEN`` characters; an end inside a longer word is left where it is."""
    lo = start
    while lo > 0 and not text[lo - 1].isspace() and start - lo < _WIDEN:
        lo -= 1
    if lo > 0 and not text[lo - 1].isspace():
        lo = start
    hi = end
    while hi < len(text) and not text[hi].isspace() and hi - end < _WIDEN:
        hi += 1
    if hi < len(text) and not text[hi].isspace():
        hi = end
    return lo, hi


def _month_key(value: int) -> str:
    """Turn a ``published`` sort-column value into ``YYYY-MM`` ("" for undated)."""
    return column_datetime("published", value).strftime("%Y-%m") if value else ""


def _sort_facet(sort: SortOrder) -> Any:
    """Return whoosh's ``sortedby`` for ``sort`` (newest / most commented first, then the other)."""
    if sort == "relevance":
        return None
    first, second = ("published", "comments") if sort == "date" else ("comments", "published")
    return sorting.MultiFacet(
        [sorting.FieldFacet(first, reverse=True), sorting.FieldFacet(second, reverse=True)]
    )


def _shorten(text: str) -> str:
    """Collapse whitespace and cut at a word boundary to about ``SNIPPET_CHARS``."""
    text = " ".join(text.split())
    if len(text) <= SNIPPET_CHARS:
        return text
    return text[:SNIPPET_CHARS].rsplit(" ", 1)[0] + " …"


def _snippet(hit: Any) -> str:
    """Highlight the text, else the summary; else the start of the summary or text, unmarked."""
    for name in ("text", "summary"):
        if hit.get(name):
            marked = hit.highlights(name, top=1)
            if marked:
                return " ".join(marked.split())
    return _shorten(hit.get("summary") or hit.get("text") or "")


def _to_hit(hit: Any, scored: bool) -> Hit:
    """Turn a whoosh hit into a ``Hit``."""
    stored = hit.fields()
    return Hit(
        id=stored["id"],
        url=stored.get("url", ""),
        title=stored.get("title"),
        published_at=stored.get("published_at"),
        comment_count=stored.get("comments"),
        topics=tuple(t for t in stored.get("topics", "").split(",") if t),
        site=stored.get("site"),
        author=stored.get("author"),
        summary=stored.get("summary"),
        score=float(hit.score) if scored else None,
        snippet=_snippet(hit),
        rank=hit.rank + 1,
    )


def _facet_counts(results: Any) -> dict[str, list[tuple[str, int]]]:
    """Read the grouped counts of all matching documents."""
    topics = sorted(results.groups("topic").items(), key=lambda kv: (-kv[1], kv[0]))
    months = sorted(((m, n) for m, n in results.groups("month").items() if m), reverse=True)
    return {"topic": [(str(t), int(n)) for t, n in topics], "month": months}


def build_filter(
    *,
    topic: str | None = None,
    site: str | None = None,
    since: date | None = None,
    until: date | None = None,
    min_comments: int | None = None,
    first_seen_since: datetime | None = None,
) -> Any | None:
    """Turn command-line filters into one whoosh filter query (None when there are none).

    Filters are built as queries, never re-parsed as query text, so a topic like "c++" or
    "mental health" needs no quoting. Arguments are those of ``search``.
    """
    parts: list[Any] = []
    if topic:
        parts.append(wq.Term("topics", topic.strip().lower()))
    if site:
        parts.append(wq.Term("site", site.strip().lower()))
    if since is not None or until is not None:
        start = None if since is None else date_span(since.isoformat()[:10])[0]
        end = None if until is None else date_span(until.isoformat()[:10])[1]
        parts.append(date_range("published", start, end))
    if min_comments is not None:
        parts.append(wq.NumericRange("comments", min_comments, None))
    if first_seen_since is not None:
        parts.append(date_range("first_seen", to_index_datetime(first_seen_since), None))
    return wq.And(parts) if parts else None


def _top_collector(limit: int, allowed: set[int] | None) -> Any:
    """Return an exact top-``limit`` collector for relevance order that also counts all matches.

    whoosh's default (``searcher.search`` with a limit) periodically swaps the matcher for a
    "more efficient" one given the lowest score still in the top N; with several segments and
    multi-field unions that drops documents which belong in the top N and miscounts totals
    (checked against scoring every match, bench at 30k records). Without swapping or block
    skipping, every match is scored once and ``total`` is exact, so one pass gives both.
    """
    top = collectors.TopCollector(limit, usequality=False, replace=0)
    return top if allowed is None else collectors.FilterCollector(top, allowed)


def _run(
    searcher: Any, parsed: Any, options: dict[str, Any], sort: SortOrder, page: int, limit: int
) -> SearchResults:
    """Search one open index and build the page."""
    options = dict(options)
    flt = options.pop("filter")
    # The filter as a set of document numbers, resolved once; whoosh's collector checks each
    # match against it, so the total counts only matches that pass it.
    allowed = None if flt is None else set(searcher.docs_for_query(flt))
    if allowed is not None and not allowed:  # whoosh reads an empty filter as no filter
        no_facets: dict[str, list[tuple[str, int]]] = {name: [] for name in FACET_NAMES}
        facets = no_facets if "groupedby" in options else None
        return SearchResults(total=0, page=page, pages=0, hits=(), facets=facets)
    # No ``terms=True``: recording the matched terms makes whoosh step through every match
    # and test each term per document; snippets highlight the query's terms instead.
    if sort == "relevance" and "groupedby" not in options:
        collector = _top_collector(page * limit, allowed)
        searcher.search_with_collector(parsed, collector)
        results = collector.results()
    else:  # sorting and faceting collectors see (and count) every match anyway
        results = searcher.search(parsed, limit=page * limit, filter=allowed, **options)
    results.fragmenter = highlight.ContextFragmenter(maxchars=SNIPPET_CHARS, surround=60)
    results.formatter = _MarkFormatter()
    total = len(results)
    hits = tuple(
        _to_hit(h, sort == "relevance") for h in results[(page - 1) * limit : page * limit]
    )
    return SearchResults(
        total=total,
        page=page,
        pages=ceil(total / limit),
        hits=hits,
        facets=_facet_counts(results) if "groupedby" in options else None,
    )


def search(
    path: Path,
    query: str,
    *,
    topic: str | None = None,
    site: str | None = None,
    since: date | None = None,
    until: date | None = None,
    min_comments: int | None = None,
    first_seen_since: datetime | None = None,
    sort: SortOrder = "relevance",
    limit: int = 10,
    page: int = 1,
    facets: bool = False,
) -> SearchResults:
    """Search the index in ``path``.

    Args:
        path: the index directory; a missing or empty index gives zero results.
        query: the query (see ``index.query``); empty or ``*`` matches every article.
        topic: only articles with this topic (case-insensitive).
        site: only articles from this site (case-insensitive).
        since: only articles published on or after this day.
        until: only articles published on or before this day.
        min_comments: only articles with at least this many comments.
        first_seen_since: only articles the crawler first saw at or after this time.
        sort: ``relevance`` (BM25F), ``date`` (newest first) or ``comments`` (most first).
        limit: hits per page.
        page: 1-based page number.
        facets: also count topics and months over all matching articles.

    Returns:
        The requested page.

    Raises:
        QuerySyntaxError: the query is malformed (with ``.position`` and ``.hint``).
        SearchIndexError: the index has another schema version or cannot be read.
        ValueError: ``limit`` or ``page`` is below 1, or ``sort`` is unknown.
    """
    if limit < 1 or page < 1 or sort not in ("relevance", "date", "comments"):
        raise ValueError(f"bad limit={limit}, page={page} or sort={sort!r}")
    parsed = parse_query(query)
    options: dict[str, Any] = {
        "filter": build_filter(
            topic=topic,
            site=site,
            since=since,
            until=until,
            min_comments=min_comments,
            first_seen_since=first_seen_since,
        ),
        "sortedby": _sort_facet(sort),
    }
    if facets:
        options["groupedby"] = {
            "topic": sorting.FieldFacet("topics", allow_overlap=True),
            "month": sorting.TranslateFacet(_month_key, sorting.FieldFacet("published")),
        }
        options["maptype"] = sorting.Count
    empty = SearchResults(
        total=0,
        page=page,
        pages=0,
        hits=(),
        facets={name: [] for name in FACET_NAMES} if facets else None,
    )
    logger.debug("search %s: %r -> %r", path, query, parsed)
    return read_index(path, lambda s: _run(s, parsed, options, sort, page, limit), empty)
