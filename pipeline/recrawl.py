"""Recrawl policy: what a steady-state run of a known site may leave out.

Two decisions, both taken with an injected clock (tests move time instead of sleeping):

- **Listing watermark.** Topic listings are walked newest-first. In a watermark walk, a listing
  page that holds only articles already stored, with card data as stored (a 304 page by
  definition), is where the walk stops: its pagination is not queued. A page that shows something
  new or changed queues only its *next* page. Every ``crawl.full_walk_every`` a cycle walks every
  page of the topic again (all pagination links followed); the time is kept per topic.
- **Adaptive refetch** (Nutch's AdaptiveFetchSchedule, simplified). Each article page has an
  interval: ``crawl.refetch_min`` after its first fetch or any change, doubled after each fetch
  that found it unchanged (304 or the same fields), at most ``crawl.refetch_max``. A link to an
  article page that is not due is not queued (``RunReport.skipped["not_due"]``); what the listing
  cards say about it (comment counts) still updates its record.

``Recrawl`` applies both to the links the run is about to queue; the state lives in the store's
``RecrawlTable``. The pure rules are the module functions ``next_interval``, ``is_due`` and
``full_walk_due``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pipeline.config import CrawlSettings, duration_seconds
from pipeline.models import ArticleRecord, CardRecord, Target
from pipeline.store import RecrawlTable, UrlSpool

__all__ = ["ListingPlan", "Recrawl", "full_walk_due", "is_due", "next_interval"]

logger = logging.getLogger(__name__)

_DUE_SLICE = 2000  # links whose refetch schedules are read at a time
#: Article pages found not due that a run remembers (``waiting``), in two generations of half
#: as many: a 100k-article site's would be ~15 MB held, and one left out is looked up again.
_WAITING_CACHE = 32_768


def next_interval(previous: int | None, *, changed: bool, minimum: int, maximum: int) -> int:
    """Seconds until an article page is due again after a fetch.

    Args:
        previous: the interval before this fetch (None for a first fetch).
        changed: the fetch found the page changed.
        minimum / maximum: the configured bounds (``crawl.refetch_min`` / ``refetch_max``).

    Returns:
        ``minimum`` after a first fetch or a change, else the previous interval doubled, within
        the bounds.
    """
    if previous is None or changed:
        return minimum
    return max(minimum, min(maximum, previous * 2))


def is_due(due_at: datetime | None, now: datetime) -> bool:
    """An article page with this due time may be fetched at ``now`` (never fetched: due)."""
    return due_at is None or due_at <= now


def full_walk_due(last_full_walk: datetime | None, now: datetime, every_seconds: int) -> bool:
    """A topic whose last complete full walk started at ``last_full_walk`` needs one now."""
    if every_seconds == 0 or last_full_walk is None:
        return True
    return now - last_full_walk >= timedelta(seconds=every_seconds)


@dataclass(frozen=True, slots=True)
class ListingPlan:
    """What to do after one listing page.

    Attributes:
        links: the links to queue (pagination trimmed, articles not due left out).
        stopped: the walk stops at this page.
        keep: article URLs the page's stored row listed that it no longer shows; a stopped walk
            keeps them on this page (they moved to pages it does not read).
    """

    links: list[Target]
    stopped: bool
    keep: list[str]


class Recrawl:
    """The recrawl policy of one run.

    Args:
        settings: ``crawl.full_walk_every``, ``crawl.refetch_min`` and ``crawl.refetch_max``.
        table: the store's recrawl state.
        canonical: the frontier's URL canonicalizer (to match a page's ``next`` link).
        clock: returns the current aware time.
    """

    def __init__(
        self,
        settings: CrawlSettings,
        table: RecrawlTable,
        *,
        canonical: Callable[[str], str],
        clock: Callable[[], datetime],
    ) -> None:
        self.table = table
        self.canonical = canonical
        self.clock = clock
        self.full_walk_every = duration_seconds(settings.full_walk_every)
        self.refetch_min = duration_seconds(settings.refetch_min)
        self.refetch_max = duration_seconds(settings.refetch_max)
        # article pages found not due in this run: the newer and the older generation
        self._waiting: set[str] = set()
        self._waited: set[str] = set()
        self._not_due = 0
        self._not_due_urls: UrlSpool | None = None  # on disk: each counted once, none held
        self.stopped_walks = 0
        self.started = clock()

    # -- listings ----------------------------------------------------------------------------
    def plan_listing(
        self,
        target: Target,
        links: Sequence[Target],
        *,
        cycle: int,
        cards: Sequence[CardRecord] | None,
        next_url: str | None,
        page_url: str | None = None,
    ) -> ListingPlan:
        """Which of a listing page's links to queue (call before its cards are stored).

        Args:
            target: the listing page.
            links: every link followed from it (pagination targets carry a ``topic_url``).
            cycle: the site's current cycle (a full walk lasts the whole cycle).
            cards: its cards, canonical and in scope; None for a 304 (unchanged by definition).
            next_url: its ``next`` link, if any.
            page_url: the URL its cards are stored under (default: the target's).
        """
        topic_url = target.topic_url or target.url
        if self._full_walk(topic_url, target.site, cycle):
            return ListingPlan(self.due(links), stopped=False, keep=[])
        unchanged = cards is None or self.table.cards_known_and_unchanged(topic_url, list(cards))
        pagination = {t.url for t in links if t.topic_url is not None}
        follow = set() if unchanged or not next_url else {self._canonical(next_url)}
        kept = [t for t in links if t.url not in pagination or t.url in follow]
        keep: list[str] = []
        if cards is None:  # a 304: its articles are still listed
            self.table.touch_articles(self.table.page_article_urls(target.url), self.clock())
        elif unchanged:
            shown = {c.url for c in cards}
            stored = self.table.page_article_urls(page_url or target.url)
            keep = [u for u in stored if u not in shown]
        if unchanged:
            self.stopped_walks += 1
        return ListingPlan(self.due(kept), stopped=unchanged, keep=keep)

    def _full_walk(self, topic_url: str, site: str, cycle: int) -> bool:
        walk = self.table.listing_walk(topic_url)
        if walk is not None and walk.full_walk_cycle == cycle:
            return True
        last = walk.last_full_walk_at if walk is not None else None
        if not full_walk_due(last, self.clock(), self.full_walk_every):
            return False
        self.table.begin_full_walk(topic_url, site, cycle, self.clock())
        logger.info("full walk of %s in cycle %s", topic_url, cycle)
        return True

    def cycles_finished(self, cycles: Mapping[str, int], sites: Iterable[str]) -> None:
        """The cycles of ``sites`` ended: their full walks are complete."""
        for site in sites:
            self.table.finish_full_walks(site, cycles[site])

    def _canonical(self, url: str) -> str:
        try:
            return self.canonical(url)
        except ValueError:
            return url

    # -- article pages -----------------------------------------------------------------------
    def due(self, links: Iterable[Target]) -> list[Target]:
        """``links`` without the article pages that are not due yet (counted as ``not_due``)."""
        waiting, waited = self._waiting, self._waited
        # most pages link the same articles
        links = [t for t in links if t.url not in waiting and t.url not in waited]
        now = self.clock()
        kept = []
        not_due = []
        # A slice at a time: an author archive of a 100k-article site links 20,000 articles, and
        # their schedules read at once took ~45 MB. One query per 500 links, not one a link.
        for start in range(0, len(links), _DUE_SLICE):
            chunk = links[start : start + _DUE_SLICE]
            times = self.table.refetch_times([t.url for t in chunk])
            for target in chunk:
                due_at, checked_at = times.get(target.url, (None, None))
                if is_due(due_at, now):
                    kept.append(target)
                    continue
                self._wait(target.url)  # not due this run: not looked up again
                if checked_at is not None and checked_at < self.started:
                    not_due.append(target.url)  # not one this run fetched already
        if not_due:
            if self._not_due_urls is None:
                self._not_due_urls = UrlSpool()
            self._not_due += self._not_due_urls.add(not_due)
        return kept

    def _wait(self, url: str) -> None:
        """Remember ``url`` as not due; past half of ``_WAITING_CACHE`` the older generation
        goes (a page it held is looked up again, and found not due again, if linked again)."""
        if len(self._waiting) >= _WAITING_CACHE // 2:
            self._waited, self._waiting = self._waiting, set()
        self._waiting.add(url)

    def waiting(self) -> tuple[Container[str], ...]:
        """The article pages this run found not due lately (``due`` drops them): sets, to test
        many links at C speed."""
        return (self._waiting, self._waited)

    def close(self) -> None:
        """Drop the run's scratch set of pages counted as not due (the count stays)."""
        if self._not_due_urls is not None:
            self._not_due_urls.close()
            self._not_due_urls = None

    def due_urls(self, urls: Sequence[str]) -> set[str]:
        """Those of ``urls`` due for a refetch (never fetched: due); not counted."""
        due_at = self.table.due_times(urls)
        now = self.clock()
        return {u for u in urls if is_due(due_at.get(u), now)}

    def article_fetched(self, url: str, record: ArticleRecord) -> None:
        """An article page was fetched (200): schedule its next fetch."""
        entry = self.table.refetch_entry(url)
        digest = record.content_hash
        changed = entry is not None and entry.page_hash not in (None, digest)
        previous = None if entry is None else entry.interval_s
        self.table.set_refetches([self._schedule(url, previous, changed, digest, self.clock())])

    def articles_not_modified(self, urls: Sequence[str]) -> None:
        """Article pages answered 304: they are unchanged, so each waits longer (one read and
        one write for the whole batch)."""
        intervals = self.table.intervals(urls)
        now = self.clock()
        self.table.set_refetches(
            [self._schedule(url, intervals.get(url), False, None, now) for url in urls]
        )

    def _schedule(
        self, url: str, previous: int | None, changed: bool, digest: str | None, now: datetime
    ) -> tuple[str, int, datetime, str | None, datetime, bool]:
        """The next schedule of an article page checked at ``now``, for ``set_refetches``."""
        interval = next_interval(
            previous, changed=changed, minimum=self.refetch_min, maximum=self.refetch_max
        )
        return (url, interval, now + timedelta(seconds=interval), digest, now, changed)

    def skipped(self) -> dict[str, int]:
        """Pages left out this run, by reason (for ``RunReport.skipped``)."""
        return {"not_due": self._not_due} if self._not_due else {}
