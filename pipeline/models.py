"""Records handed between the stages: data only, no behaviour.

    frontier --Target--> fetch --Fetched--> extract --Extracted--> normalize --Normalized--> store

``Extracted`` is one of ``ListingPage`` (a topic page: name, description, cards), ``ArticlePage``
or ``OtherPage`` (anything else: only its links matter). Extracted values are the page's own
strings; ``normalize`` turns them into typed values (ISO dates, ints, clean text).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal, TypeVar, overload

PageKind = Literal["listing", "article", "other"]
ArchiveKind = Literal["topic", "author", "date", "search"]
"""What a listing lists: a topic (category/tag/label), an author's, a month's or a search's posts.
Only topic archives name topics; the others are crawled for their cards alone."""


_Model = TypeVar("_Model")


def _pickled_as_tuple(cls: type[_Model]) -> type[_Model]:
    """Pickle ``cls`` as its constructor and a tuple of its fields, in order.

    Every page's targets, validators, fetch outcome, extraction and record cross between the
    crawl's process and its workers as pickles; a slotted dataclass's default pickle is a state
    dict per object, ~1.5x the time each way (a Link ~3x). Every field is an ``__init__``
    argument, so ``cls(*fields)`` rebuilds it.
    """
    values = operator.attrgetter(*(f.name for f in fields(cls)))  # type: ignore[arg-type]

    def __reduce__(self: Any) -> tuple[type[_Model], tuple[Any, ...]]:
        return (cls, values(self))

    cls.__reduce__ = __reduce__  # type: ignore[method-assign]
    return cls


@_pickled_as_tuple
@dataclass(frozen=True, slots=True)
class Target:
    """One URL the frontier hands to fetch.

    Attributes:
        url: canonical absolute URL.
        site: name of the configured site it belongs to.
        depth: link hops from a start URL.
        topic_url: for a listing page reached by pagination, the canonical URL of its topic's
            first page (so page 3 of a topic adds to that topic's record).
        page_no: position of a listing page in its topic's pagination (1 for the first).
    """

    url: str
    site: str
    depth: int = 0
    topic_url: str | None = None
    page_no: int = 1


@_pickled_as_tuple
@dataclass(frozen=True, slots=True)
class PageState:
    """What the queue knows of a page: when it was last fetched and what it was (both None for
    a page never fetched or never seen)."""

    fetched_at: datetime | None = None
    kind: str | None = None


UNKNOWN_PAGE = PageState()

#: ``skip(site)``: collections of the URLs of ``site`` that a replay of stored links leaves
#: out before it builds their targets (``in`` on a set or a dict's keys: a topic page stores
#: ~400 links, a recrawl reads them back on every 304).
SkipLinks = Callable[[str], Sequence[Container[str]]]


class SettledRuns:
    """Runs of stored page numbers (``pipeline.store.queue._pack_links``) whose every URL a
    caller's ``skip`` left out.

    A topic page of a large site lists its topic's every page number (~350 on the bench's
    20k-article site), and a recrawl replays each topic page's links: the same URLs, page
    after page, built and tested one by one. The caller that owns ``skip`` keeps one of these
    beside it: a run found all left out is not built again while it holds. So ``skip`` may
    only drop a URL that needs nothing more in this pass: the crawl's recently queued URLs are
    a bounded cache, and one it drops is still queued in the cycle (queueing it again is a
    no-op); what a rollback undoes, ``Frontier.forget_recent`` clears here too.

    Per ``(site, prefix, suffix)``, disjoint sorted intervals of page numbers.
    """

    def __init__(self) -> None:
        self._spans: dict[tuple[str, str, str], list[tuple[int, int]]] = {}

    def covers(self, key: tuple[str, str, str], first: int, last: int) -> bool:
        """True when every number of ``first..last`` was found left out."""
        return any(low <= first and last <= high for low, high in self._spans.get(key, ()))

    def add(self, key: tuple[str, str, str], first: int, last: int) -> None:
        """``first..last`` was found left out: merged with the spans it meets or adjoins."""
        merged = []
        for low, high in self._spans.get(key, ()):
            if high + 1 < first or last + 1 < low:
                merged.append((low, high))
            else:
                first, last = min(first, low), max(last, high)
        merged.append((first, last))
        self._spans[key] = sorted(merged)

    def clear(self) -> None:
        """Forget every span: what the caller's ``skip`` held may be gone (a rollback)."""
        self._spans.clear()


@_pickled_as_tuple
@dataclass(frozen=True, slots=True)
class Validators:
    """HTTP cache validators of a stored page, sent back as a conditional GET."""

    etag: str | None = None
    last_modified: str | None = None


@_pickled_as_tuple
@dataclass(frozen=True, slots=True)
class Fetched:
    """A fetched HTML page, decoded to text.

    Attributes:
        target: what was asked for.
        url: canonical final URL after redirects.
        status: HTTP status (200, or 304 when ``not_modified``).
        text: the body decoded with the detected ``encoding`` ('' when not modified).
        fetched_at: tz-aware UTC time the response arrived.
    """

    target: Target
    url: str
    status: int
    text: str
    encoding: str
    fetched_at: datetime
    content_type: str = "text/html"
    validators: Validators = field(default_factory=Validators)
    size: int = 0
    elapsed: float = 0.0
    not_modified: bool = False


@_pickled_as_tuple
@dataclass(frozen=True, slots=True)
class Link:
    """A link found on a page: absolute URL (not yet canonical) and its text."""

    url: str
    text: str = ""
    rel: str = ""


@_pickled_as_tuple
@dataclass(frozen=True, slots=True)
class Links(Sequence[Link]):
    """A page's links in page order, held as three columns: URLs, texts and ``rel`` values.

    A topic page of the bench site has ~465 links and an article ~114, and every page's
    extraction crosses from a worker to the crawl's process as a pickle. As columns they pickle
    as three tuples of strings (a topic page: 53 us to dump and 48 to load, against 242 and 236
    as ``Link`` objects), and the crawl reads ``urls`` without a ``Link`` made per link.
    Indexing or iterating gives ``Link``s.
    """

    urls: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    rels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not len(self.urls) == len(self.texts) == len(self.rels):
            raise ValueError("Links: urls, texts and rels must be as long as each other")

    @classmethod
    def of(cls, links: Iterable[Link]) -> Links:
        """The ``Links`` of some ``Link``s, in their order."""
        items = tuple(links)
        return cls(
            tuple(link.url for link in items),
            tuple(link.text for link in items),
            tuple(link.rel for link in items),
        )

    def __len__(self) -> int:
        return len(self.urls)

    @overload
    def __getitem__(self, index: int) -> Link: ...

    @overload
    def __getitem__(self, index: slice) -> Links: ...

    def __getitem__(self, index: int | slice) -> Link | Links:
        if isinstance(index, slice):
            return Links(self.urls[index], self.texts[index], self.rels[index])
        return Link(self.urls[index], self.texts[index], self.rels[index])

    def __iter__(self) -> Iterator[Link]:
        return map(Link, self.urls, self.texts, self.rels)


@_pickled_as_tuple
@dataclass(frozen=True, slots=True)
class Card:
    """One post card of a topic listing, as written on the page."""

    url: str
    title: str | None = None
    date: str | None = None
    comments: str | None = None
    summary: str | None = None


@_pickled_as_tuple
@dataclass(frozen=True, slots=True)
class ListingPage:
    """A listing page: a topic (category/tag) archive, or an author, date or search archive
    (``archive``), whose cards are followed but whose name is not a topic."""

    url: str
    name: str | None
    description: str | None
    cards: tuple[Card, ...]
    next_url: str | None = None
    page_urls: tuple[str, ...] = ()
    links: Links = Links()
    archive: ArchiveKind = "topic"
    kind: Literal["listing"] = "listing"


@_pickled_as_tuple
@dataclass(frozen=True, slots=True)
class TopicRef:
    """A topic an article page names (its category/tag link)."""

    name: str
    url: str | None = None


@_pickled_as_tuple
@dataclass(frozen=True, slots=True)
class ArticlePage:
    """An article page, each field as the page states it (None when it states none).

    ``sources`` maps a field name to where its value came from (``selector``, ``jsonld``,
    ``microdata``, ``microformats``, ``meta``, ``markup``, ``time``, ``text``, ``title_tag``),
    for ``crawldex extract`` and debugging.
    """

    url: str
    title: str | None
    published: str | None = None
    updated: str | None = None
    author: str | None = None
    comments: str | None = None
    summary: str | None = None
    text: str | None = None
    topics: tuple[TopicRef, ...] = ()
    language: str | None = None
    canonical_url: str | None = None
    links: Links = Links()
    sources: dict[str, str] = field(default_factory=dict)
    kind: Literal["article"] = "article"


@_pickled_as_tuple
@dataclass(frozen=True, slots=True)
class OtherPage:
    """Neither a listing nor an article (home page, about page): only its links matter."""

    url: str
    title: str | None = None
    links: Links = Links()
    kind: Literal["other"] = "other"


Extracted = ListingPage | ArticlePage | OtherPage


@_pickled_as_tuple
@dataclass(frozen=True, slots=True)
class CardRecord:
    """A normalized post card: what one topic page says about one article."""

    url: str
    title: str | None
    published_at: str | None
    comment_count: int | None
    summary: str | None


@_pickled_as_tuple
@dataclass(frozen=True, slots=True)
class TopicPageRecord:
    """A normalized topic listing page (one page of a possibly paginated topic)."""

    site: str
    topic_url: str
    page_url: str
    page_no: int
    name: str | None
    description: str | None
    cards: tuple[CardRecord, ...]
    fetched_at: datetime


@_pickled_as_tuple
@dataclass(frozen=True, slots=True)
class ArticleRecord:
    """A normalized article page."""

    site: str
    url: str
    title: str | None
    published_at: str | None
    updated_at: str | None
    author: str | None
    comment_count: int | None
    summary: str | None
    text: str | None
    topics: tuple[str, ...]
    language: str | None
    word_count: int
    content_hash: str
    fetched_at: datetime
    sources: dict[str, str] = field(default_factory=dict)


Normalized = TopicPageRecord | ArticleRecord | None
