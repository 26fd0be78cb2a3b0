"""Frontier stage: what to fetch next.

Seeds, canonical URLs, scope rules, depth limits and the persistent queue. Hands on ``Target``s to
fetch. The queue itself is a ``FrontierQueue`` (SQLite by default, ``pipeline.store``); this module
holds the policy: one canonical form per URL, only in-scope URLs, each at most once per cycle.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections import Counter, OrderedDict
from collections.abc import Collection, Container, Iterable, Iterator, Sequence
from datetime import datetime
from functools import lru_cache, partial
from itertools import repeat
from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from w3lib.url import canonicalize_url as _w3lib_canonicalize

from pipeline.config import SiteConfig
from pipeline.models import (
    UNKNOWN_PAGE,
    ArticlePage,
    Extracted,
    ListingPage,
    PageState,
    SettledRuns,
    SkipLinks,
    Target,
    Validators,
)
from pipeline.sitemaps import SitemapEntry, newest_first

__all__ = [
    "Frontier",
    "FrontierQueue",
    "canonicalize_url",
    "out_of_scope_reason",
    "path_and_query",
    "plain_origin",
]

logger = logging.getLogger(__name__)

_CANONICAL_CACHE = 16_384  # canonical URLs remembered per crawl (a few MB)
_TARGET_CACHE = 8192  # link targets remembered (~2 MB): a topic's page numbers fit
#: URLs remembered as queued in the current cycle (~7 MB when full). A pass of the 20k bench
#: site queues 23,479: with 16,384, the sitemap's first URLs were forgotten before the pages
#: linking them answered 304, and 6,016 of those pages' replayed links went back to the queue
#: and the recrawl schedule (0.13 s of the crawl's process in that recrawl).
_RECENT_CACHE = 32_768
#: An http(s) URL's plain ASCII host, when no userinfo, IPv6 literal or escape comes before the
#: path: what ``urlsplit(url).hostname`` gives, lower-cased, without parsing the whole URL (and
#: what canonicalization only lower-cases). Only digits may follow a colon: ``user:pw@host`` has
#: a userinfo, not a host ``user``.
_PLAIN_NETLOC = re.compile(r"https?://([A-Za-z0-9.-]+)(?::[0-9]*)?(?=[/?#]|\Z)", re.IGNORECASE)
#: A ``_verdict`` trap check that depends on what was seen before: made at each use.
_ASK = "ask"
#: A link's (canonical URL, why it is out of scope, why it looks like a trap or ``_ASK``).
_Verdict = tuple[str, str | None, str | None]
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: A URL ``canonicalize_url`` returns unchanged: lower-case http(s) scheme and ASCII host, no
#: userinfo and no default port, a path of unreserved characters in non-empty segments that do
#: not start with a dot (no dot segment to resolve, nothing to encode), no query, no fragment.
#: A sitemap lists tens of thousands of these: w3lib took ~20 us each.
_ALREADY_CANONICAL = re.compile(
    r"(https?)://[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
    r"(:[1-9][0-9]{0,4})?(?:/|(?:/[A-Za-z0-9_~-][A-Za-z0-9_.~-]*)+/?)\Z"
)
_DEFAULT_PORT_SUFFIXES = {scheme: f":{port}" for scheme, port in _DEFAULT_PORTS.items()}
_PAGE_NO = re.compile(r"(?:/page/|[?&](?:page|paged|p)=)(\d{1,9})\b")
_SESSION_PATH_PARAM = re.compile(r";(?:jsessionid|phpsessid|sessionid|sid)=[^/;?#]*", re.IGNORECASE)
_MAX_SEGMENT_REPEATS = 2  # /a/b/a/b/a/b: a segment a third time in one path is a loop, not a site


class FrontierQueue(Protocol):
    """The persistent queue the frontier drives (``pipeline.store.SqliteFrontierQueue``)."""

    def current_cycle(self, site: str) -> tuple[int, bool] | None: ...
    def begin_cycle(self, site: str, now: datetime) -> int: ...
    def end_cycle(self, site: str, cycle: int, now: datetime) -> None: ...
    def enqueue(self, targets: Iterable[tuple[Target, str]], cycle: int) -> int: ...
    def claim(
        self, sites: Sequence[str], exclude_hosts: Collection[str], limit: int
    ) -> list[Target]: ...
    def release_in_flight(self, sites: Sequence[str]) -> int: ...
    def count(self, sites: Sequence[str], state: str = "queued") -> int: ...
    def validators(self, url: str) -> Validators: ...
    def known_links(
        self, url: str, skip: SkipLinks | None = None, settled: SettledRuns | None = None
    ) -> list[Target]: ...
    def page_states(self, urls: Sequence[str]) -> dict[str, PageState]: ...
    def known_links_of(
        self, urls: Sequence[str], skip: SkipLinks | None = None
    ) -> dict[str, Target]: ...
    def known_links_each(
        self,
        urls: Sequence[str],
        skip: SkipLinks | None = None,
        settled: SettledRuns | None = None,
    ) -> Iterator[list[Target]]: ...


def canonicalize_url(url: str, strip_params: Sequence[str] = ()) -> str:
    """The one canonical form of ``url``.

    Lower-case scheme and host, no default port, no fragment, resolved dot segments, normalized
    percent-encoding, query sorted, tracking parameters (glob patterns) removed.

    Args:
        url: an absolute URL.
        strip_params: query parameter names (globs such as ``utm_*``) to drop.

    Returns:
        The canonical URL.
    """
    plain = _ALREADY_CANONICAL.match(url)
    if plain is not None and plain.group(2) != _DEFAULT_PORT_SUFFIXES[plain.group(1)]:
        return url
    return _canonicalize(url, strip_params)


def _canonicalize(url: str, strip_params: Sequence[str]) -> str:
    parts = urlsplit(url.strip())
    if ";" in parts.path:
        parts = parts._replace(path=_SESSION_PATH_PARAM.sub("", parts.path))
    query = parts.query
    if query and strip_params:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [
            (k, v)
            for k, v in pairs
            if not any(fnmatch.fnmatchcase(k.lower(), p) for p in strip_params)
        ]
        if len(kept) != len(pairs):
            query = urlencode(kept)
    netloc = parts.netloc
    if parts.port is not None and _DEFAULT_PORTS.get(parts.scheme.lower()) == parts.port:
        netloc = netloc.rsplit(":", 1)[0]
    cleaned = urlunsplit((parts.scheme, netloc, parts.path or "/", query, ""))
    return _w3lib_canonicalize(cleaned, keep_fragments=False)


def path_and_query(url: str) -> tuple[str, str]:
    """``urlsplit(url)``'s path and query, read off a plain http(s) URL (``_PLAIN_NETLOC``, no
    tab or line break, which ``urlsplit`` removes) without the rest of ``urlsplit``: the trap
    check asks it of every new URL, 20,011 a pass in the bench site's sitemap."""
    plain = _PLAIN_NETLOC.match(url)
    if plain is None or "\t" in url or "\r" in url or "\n" in url:
        parts = urlsplit(url)
        return parts.path, parts.query
    path, _, query = url[plain.end() :].partition("#")[0].partition("?")
    return path, query


def plain_origin(url: str) -> str | None:
    """``scheme://netloc`` of a plain http(s) URL (``_PLAIN_NETLOC``, lower-case scheme), exactly
    as ``urlsplit`` gives them; None for any other URL, which needs ``urlsplit``."""
    plain = _PLAIN_NETLOC.match(url)
    if plain is None or not url.startswith(("http://", "https://")):
        return None
    return plain.group()


def out_of_scope_reason(url: str, site: SiteConfig) -> str | None:
    """Why ``url`` is outside ``site``'s crawl scope, or None when it is in scope."""
    plain = _PLAIN_NETLOC.match(url)  # a sitemap's tens of thousands of URLs: no urlsplit
    if plain is not None:
        host = plain.group(1).lower()
    else:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            return "scheme"
        host = (parts.hostname or "").lower()
    if host not in site.hosts:
        return "host"
    if site.include and not any(re.search(p, url) for p in site.include):
        return "not_included"
    if any(re.search(p, url) for p in site.exclude):
        return "excluded"
    return None


class Frontier:
    """Canonicalizes and scopes URLs and feeds them through a ``FrontierQueue``."""

    def __init__(
        self,
        sites: Sequence[SiteConfig],
        queue: FrontierQueue,
        *,
        strip_params: Sequence[str],
        max_depth: int,
        max_query_variants: int = 100,
        max_listing_pages: int = 1000,
    ) -> None:
        self.sites = {s.name: s for s in sites}
        self.queue = queue
        self.strip_params = tuple(strip_params)
        self.max_depth = max_depth
        self.max_query_variants = max_query_variants
        self.max_listing_pages = max_listing_pages
        self._query_variants: dict[str, set[str]] = {}
        self.cycles: dict[str, int] = {}
        self.dropped: Counter[str] = Counter()
        # per site, the URLs ``add`` queued in the site's current cycle lately (one cycle per
        # site and run), as keys: ``recently_queued`` lets a caller test a list against them
        self._recent: dict[str, OrderedDict[str, None]] = {n: OrderedDict() for n in self.sites}
        self._recent_cap = max(_RECENT_CACHE // max(len(self.sites), 1), 1024)
        # runs of stored page numbers a replay found all dealt with (queued in this cycle, or
        # found not due): forgotten with ``_recent``. A URL ``_recent`` dropped since is still
        # queued in the cycle (``add`` would be a no-op for it), or still not due.
        self.settled_runs = SettledRuns()
        # per site, a link as written -> its verdict (``_verdict``); the sites share the cap
        self._verdicts: dict[str, dict[str, _Verdict]] = {n: {} for n in self.sites}
        self._verdicts_cap = max(_CANONICAL_CACHE // max(len(self.sites), 1), 1024)
        # The targets ``_consider_each`` built lately: a page's theme links, and its topic's page
        # numbers, are the same targets page after page (a frozen dataclass costs ~0.8 us).
        # Plain links (no topic, page 1) by site and depth, then URL; the others by all five.
        self._targets: dict[tuple[str, str, int, str | None, int], Target] = {}
        self._plain_targets: dict[tuple[str, int], dict[str, Target]] = {}
        # Every page repeats its theme's links (navigation, sidebars, footer): most URLs met are
        # ones canonicalized a moment ago, and w3lib's canonicalization is not cheap.
        self._canonical = lru_cache(maxsize=_CANONICAL_CACHE)(
            partial(canonicalize_url, strip_params=self.strip_params)
        )

    def canonical(self, url: str) -> str:
        """``url`` in canonical form with this crawl's tracking parameters removed."""
        return self._canonical(url)

    def start(self, now: datetime) -> dict[str, bool]:
        """Resume each site's unfinished cycle or begin a new one with its start URLs.

        Returns:
            site name -> True when an interrupted cycle was resumed.
        """
        resumed = {}
        self.forget_recent()  # what it holds was queued in the cycles it replaces
        for name, site in self.sites.items():
            current = self.queue.current_cycle(name)
            if current is not None and not current[1]:
                self.cycles[name] = current[0]
                released = self.queue.release_in_flight([name])
                logger.info(
                    "resuming cycle %s of %s (%s pages back in the queue)",
                    current[0],
                    name,
                    released,
                )
                resumed[name] = True
                if self.queue.count([name]) == 0:
                    self._seed(site, now)  # an empty unfinished cycle: nothing to resume
                continue
            self.cycles[name] = self.queue.begin_cycle(name, now)
            self._seed(site, now)
            resumed[name] = False
        return resumed

    def _seed(self, site: SiteConfig, now: datetime) -> None:
        seeds = [Target(url=self.canonical(u), site=site.name, depth=0) for u in site.start_urls]
        self.queue.enqueue(((t, self.host(t.url)) for t in seeds), self.cycles[site.name])

    def finish_cycles(self, now: datetime) -> list[str]:
        """End the cycles whose queue is empty; returns the sites whose pass is complete."""
        done = []
        for name, cycle in self.cycles.items():
            if self.queue.count([name]) == 0 and self.queue.count([name], "in_flight") == 0:
                self.queue.end_cycle(name, cycle, now)
                done.append(name)
        return done

    @staticmethod
    def host(url: str) -> str:
        """The host part of ``url``, lower-case (asked several times for every page)."""
        plain = _PLAIN_NETLOC.match(url)
        if plain is not None:
            return plain.group(1).lower()
        return (urlsplit(url).hostname or "").lower()

    def add(self, targets: Iterable[Target]) -> int:
        """Queue targets (already canonical and in scope); returns how many were new.

        A URL this frontier queued in the current cycle a moment ago is not sent to the queue
        again (it would be a no-op there): a theme links the same ~150 pages from every page.
        """
        by_site: dict[str, list[tuple[Target, str]]] = {}
        for target in targets:
            recent = self._recent[target.site]
            if target.url in recent:
                recent.move_to_end(target.url)
                continue
            recent[target.url] = None
            by_site.setdefault(target.site, []).append((target, self.host(target.url)))
        for site in by_site:
            recent = self._recent[site]
            while len(recent) > self._recent_cap:
                recent.popitem(last=False)
        return sum(self.queue.enqueue(items, self.cycles[site]) for site, items in by_site.items())

    def not_just_queued(self, targets: Iterable[Target]) -> list[Target]:
        """``targets`` less those ``add`` queued in the current cycle a moment ago."""
        return [t for t in targets if not self.just_queued(t.url, t.site)]

    def just_queued(self, url: str, site: str) -> bool:
        """True when ``add`` queued ``url`` of ``site`` in the current cycle a moment ago."""
        return url in self._recent[site]

    def recently_queued(self, site: str) -> Container[str]:
        """The URLs of ``site`` that ``just_queued`` is true for, to test many at C speed."""
        return self._recent[site].keys()

    def forget_recent(self) -> None:
        """Forget what ``add`` queued lately: call after a store transaction was rolled back."""
        for recent in self._recent.values():
            recent.clear()
        self.settled_runs.clear()

    def links_from(self, parent: Target, page: Extracted) -> list[Target]:
        """In-scope targets a page links to: pagination first (with its topic), then the rest."""
        site = self.sites[parent.site]
        depth = parent.depth + 1
        found: dict[str, Target] = {}
        if isinstance(page, ListingPage):
            self._pagination_targets(parent, page, depth, found)
            self._consider_each(((card.url, 1) for card in page.cards), site, depth, found)
        self._consider_each(zip(page.links.urls, repeat(1)), site, depth, found)
        return list(found.values())

    def _pagination_targets(
        self, parent: Target, page: ListingPage, depth: int, found: dict[str, Target]
    ) -> None:
        topic_url = parent.topic_url or parent.url
        candidates = ([page.next_url] if page.next_url else []) + list(page.page_urls)
        if not candidates:
            return
        texts = dict(zip(page.links.urls, page.links.texts, strict=True))
        numbered = []
        for index, url in enumerate(candidates):
            number = _page_number(url, texts.get(url, "").strip())
            if number is None:
                number = parent.page_no + 1 if index == 0 and page.next_url else 1000 + index
            numbered.append((url, number))
        self._consider_each(numbered, self.sites[parent.site], depth, found, topic_url=topic_url)

    def _consider_each(
        self,
        links: Iterable[tuple[str, int]],
        site: SiteConfig,
        depth: int,
        found: dict[str, Target],
        *,
        topic_url: str | None = None,
    ) -> None:
        """Add to ``found`` (by canonical URL, the first kept) the targets of ``links``, as
        ``(link as written, page number)``, that are in scope, deep enough and no trap; count
        the others in ``dropped``.

        One loop for a page's links, not a call or two a link: they are mostly ones met before
        (a heavy theme repeats ~150 on every page, a topic page lists its topic's ~350 page
        numbers), and the calls were most of the 190 us a page took.
        """
        verdicts = self._verdicts[site.name]
        plain = self._plain_targets_of(site.name, depth)
        too_deep = depth > self.max_depth
        for raw_url, page_no in links:
            url, reason, trap = verdicts.get(raw_url) or self._verdict(raw_url, site)
            if url in found:
                continue
            if reason is None:
                if too_deep:
                    reason = "max_depth"
                else:
                    reason = trap if trap is not _ASK else self.trap_reason(url)
            if reason is not None:
                self.dropped[reason] += 1
                continue
            if topic_url is None and page_no == 1:
                target = plain.get(url)
                if target is None:
                    target = plain[url] = Target(url=url, site=site.name, depth=depth)
            else:
                key = (url, site.name, depth, topic_url, page_no)
                target = self._targets.get(key)
                if target is None:
                    if len(self._targets) >= _TARGET_CACHE:
                        self._targets.clear()
                    target = self._targets[key] = Target(url, site.name, depth, topic_url, page_no)
            found[url] = target

    def _plain_targets_of(self, site: str, depth: int) -> dict[str, Target]:
        """The plain targets (no topic, page 1) built lately for ``site`` at ``depth``; all are
        forgotten once they are ``_TARGET_CACHE`` (~2.5 MB), whatever their site and depth."""
        if sum(map(len, self._plain_targets.values())) >= _TARGET_CACHE:
            self._plain_targets.clear()
        return self._plain_targets.setdefault((site, depth), {})

    def _verdict(self, raw_url: str, site: SiteConfig) -> _Verdict:
        """(canonical URL, why it is out of scope, why it looks like a trap) of a link not
        remembered as written (``_consider_each`` reads those itself).

        Every page repeats its theme's links, so the answer is remembered per site, by the link
        as written and without its fragment (which canonical URLs drop: a post's comment
        anchors are one URL). The trap check of a URL with a query counts variants, so it is
        ``_ASK``: made each time. A plain host outside the site (share buttons, other sites) is
        dropped before the canonicalization, which would not change it.
        """
        verdicts = self._verdicts[site.name]  # the caller found none for ``raw_url`` itself
        plain = raw_url.partition("#")[0]
        known = verdicts.get(plain) if plain != raw_url else None
        if known is None:
            known = self._judge(plain, site)
            self._remember(verdicts, plain, known)
        if plain != raw_url:
            self._remember(verdicts, raw_url, known)
        return known

    def _judge(self, link: str, site: SiteConfig) -> _Verdict:
        """``_verdict`` of a link without a fragment, worked out."""
        match = _PLAIN_NETLOC.match(link)
        if match is not None and match.group(1).lower() not in site.hosts:
            return (link, "host", None)
        try:
            url = self.canonical(link)
        except ValueError:
            return (link, "bad_url", None)
        scope = out_of_scope_reason(url, site)
        trap = _ASK if scope is None and "?" in url else None
        if scope is None and trap is None:
            trap = self.trap_reason(url)
        return (url, scope, trap)

    def _remember(self, verdicts: dict[str, _Verdict], raw_url: str, verdict: _Verdict) -> None:
        if len(verdicts) >= self._verdicts_cap:
            verdicts.clear()
        verdicts[raw_url] = verdict

    def sitemap_targets(
        self, site_name: str, entries: Iterable[SitemapEntry]
    ) -> list[tuple[Target, datetime | None]]:
        """Sitemap URLs in scope as depth-1 targets with their ``lastmod``, each canonical URL
        once, newest first; those out of scope, too deep or traps are counted in ``dropped``."""
        found: dict[str, Target] = {}
        lastmods: dict[str, datetime | None] = {}
        urls: list[str] = []
        for entry in entries:
            try:
                url = self.canonical(entry.loc)
            except ValueError:
                self.dropped["bad_url"] += 1
                continue
            lastmods[url] = entry.lastmod
            urls.append(url)
        self._consider_each(zip(urls, repeat(1)), self.sites[site_name], 1, found)
        return sorted(
            ((target, lastmods.get(url)) for url, target in found.items()),
            key=lambda pair: newest_first(pair[1]),
        )

    def split_unchanged(
        self, targets: Sequence[tuple[Target, datetime | None]]
    ) -> tuple[list[Target], list[Target], dict[str, PageState]]:
        """Sitemap targets with their ``lastmod`` (``sitemap_targets``) split, in their order,
        into (to fetch, unchanged since we last fetched them), with the pages' states.

        Listings are never "unchanged": they are where new posts and fresh comment counts show
        up, and a conditional GET makes an unchanged one cheap anyway.
        """
        fresh: list[Target] = []
        unchanged: list[Target] = []
        states = self.queue.page_states([target.url for target, _ in targets])
        for target, lastmod in targets:
            state = states.get(target.url, UNKNOWN_PAGE)
            fetched = state.fetched_at
            # no lastmod says nothing: a page we have is left to the recrawl schedule
            unseen = fetched is None or (lastmod is not None and lastmod > fetched)
            (fresh if unseen or state.kind == "listing" else unchanged).append(target)
        return fresh, unchanged, states

    def trap_reason(self, url: str) -> str | None:
        """Why ``url`` looks like a crawl trap (``repeated_segments``, ``listing_pages``,
        ``query_variants``), or None. Query variants are counted per path for this run."""
        path, query = path_and_query(url)
        segments = [s for s in path.split("/") if s]
        # a segment repeated past the limit needs more segments than that, and one twice
        if (
            len(segments) > _MAX_SEGMENT_REPEATS
            and len(set(segments)) < len(segments)
            and max(Counter(segments).values()) > _MAX_SEGMENT_REPEATS
        ):
            return "repeated_segments"
        number = _PAGE_NO.search(url)
        if number and int(number.group(1)) > self.max_listing_pages:
            return "listing_pages"
        if query:
            seen = self._query_variants.setdefault(url.split("?", 1)[0], set())
            if query not in seen:
                if len(seen) >= self.max_query_variants:
                    return "query_variants"
                seen.add(query)
        return None

    def canonical_of(self, target: Target, page: ArticlePage) -> str:
        """The record URL of an article: its ``rel=canonical`` when in scope, else the target's."""
        if page.canonical_url:
            try:
                url = self.canonical(page.canonical_url)
            except ValueError:
                return target.url
            if out_of_scope_reason(url, self.sites[target.site]) is None:
                return url
        return target.url


def _page_number(url: str, text: str) -> int | None:
    """The page number a pagination link points to, from its text or its URL."""
    if text.isdigit():
        return int(text)
    match = _PAGE_NO.search(url)
    return int(match.group(1)) if match else None
