"""The crawl engine of a run: one asyncio loop that chains frontier -> fetch -> extract ->
normalize -> store for every page, under the politeness gate and the recrawl policy (extract
and normalize in a worker process once a crawl is big: ``pipeline.workers``).

``pipeline.run.run_once`` is the only caller; this module is its engine, split out for size.
A dispatcher claims targets for hosts that may start a request now (reserving the host's slot at
claim time) and runs up to ``crawl.concurrency`` pages at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Container, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from pipeline.config import Settings, SiteConfig
from pipeline.errors import (
    BadStatus,
    ExtractError,
    FetchError,
    PageSkipped,
)
from pipeline.fetch import fetch_page, fetch_robots, make_client
from pipeline.frontier import Frontier, out_of_scope_reason
from pipeline.models import (
    UNKNOWN_PAGE,
    ArticlePage,
    ArticleRecord,
    CardRecord,
    Extracted,
    Fetched,
    ListingPage,
    Target,
    TopicPageRecord,
)
from pipeline.politeness import HostGate, RobotsCache
from pipeline.recrawl import ListingPlan, Recrawl
from pipeline.seeding import SitemapSeeder
from pipeline.store import Store
from pipeline.workers import PageWorkers, extract_here, worker_count

__all__ = ["Crawler", "Progress", "RunReport", "now_utc"]

logger = logging.getLogger(__name__)

GONE_STATUSES = (404, 410)
_QUEUED_EVERY = 0.25  # seconds between counts of the queue for progress
# A commit of the store's writes (pages, claims, 304s: ``Store.grouped``) at least this often,
# and after this many blocks of them: a commit a page was 3 % of a 20k-page crawl's CPU.
_COMMIT_SECONDS = 0.25
_COMMIT_BLOCKS = 128
#: 304s stored in one transaction at most, and the seconds one waits at most to be stored. An
#: unchanged page is about ten statements and a commit alone; a recrawl is all 304s.
_UNMODIFIED_BATCH = 64
_UNMODIFIED_WAIT = 0.25
_UNEXPECTED = "unexpected error on %s; skipped and counted"  # logged with its traceback


@dataclass(frozen=True, slots=True)
class Progress:
    """One page done: what the CLI's progress bar shows."""

    url: str
    outcome: str  # fetched | not_modified | failed | skipped
    done: int
    queued: int


@dataclass(slots=True)
class RunReport:
    """What one run did; kept in the store's run history and shown by ``crawldex status``."""

    run_id: int = 0
    sites: list[str] = field(default_factory=list)
    status: str = "running"  # finished | paused (page budget used) | interrupted (stopped)
    started_at: str = ""
    finished_at: str = ""
    seconds: float = 0.0
    pages_fetched: int = 0
    not_modified: int = 0
    bytes: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    links_dropped: dict[str, int] = field(default_factory=dict)
    capped: dict[str, int] = field(default_factory=dict)  # site -> pages left for the next run
    changes: dict[str, int] = field(default_factory=dict)
    requests_by_host: dict[str, int] = field(default_factory=dict)
    resumed: list[str] = field(default_factory=list)
    completed_sites: list[str] = field(default_factory=list)
    index: dict[str, Any] = field(default_factory=dict)
    extract: dict[str, int] = field(default_factory=dict)  # pipeline/workers.py: the children
    errors: int = 0
    # Unattended operation (pipeline/postrun.py): change feed, watches' new matches, drift.
    feed: dict[str, Any] = field(default_factory=dict)
    watches: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    drift: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pages_failed(self) -> int:
        """Pages that failed for any reason."""
        return sum(self.failed.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return asdict(self)


def now_utc() -> datetime:
    """The current time, tz-aware UTC."""
    return datetime.now(UTC)


class Crawler:
    """The asyncio crawl of one run (``run_once`` is the API)."""

    def __init__(
        self,
        settings: Settings,
        sites: list[SiteConfig],
        store: Store,
        report: RunReport,
        progress: Callable[[Progress], None] | None,
        stop: threading.Event,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        crawl = settings.crawl
        self.settings = settings
        self.crawl_settings = crawl
        self.sites = {s.name: s for s in sites}
        self.store = store
        self.report = report
        self.progress = progress
        self.stop = stop
        self.frontier = Frontier(
            sites,
            store.queue,
            strip_params=crawl.strip_params,
            max_depth=crawl.max_depth,
            max_query_variants=crawl.max_query_variants,
            max_listing_pages=crawl.max_listing_pages,
        )
        self.gate = HostGate(per_host_concurrency=crawl.per_host_concurrency, delay=crawl.delay)
        self.requests: Counter[str] = Counter()
        self.claimed: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.done = 0
        self.delays_checked: set[str] = set()
        self._queued_at = float("-inf")
        self._queued_count = 0
        # 304s fetched and not stored yet (``_store_unmodified``); still in flight in the queue,
        # so a crash before they are stored fetches them again
        self._unmodified: list[tuple[Target, Fetched]] = []
        self._unmodified_since = 0.0
        # the recrawl policy (listing watermark, refetch intervals) on the run's clock
        self.recrawl = Recrawl(crawl, store.recrawl, canonical=self.frontier.canonical, clock=clock)
        self.workers = PageWorkers(
            sites, crawl, workers=worker_count(crawl.extract_workers), timeout=crawl.extract_timeout
        )

    async def crawl(self) -> None:
        with self.store.transaction():
            started = self.frontier.start(now_utc())
            self.report.resumed = [n for n, r in started.items() if r]
        async with make_client(self.crawl_settings) as client:
            self.client = client
            self.robots = RobotsCache(
                self.crawl_settings.user_agent,
                self._fetch_robots,
                enabled=self.crawl_settings.respect_robots,
            )
            try:
                await self.workers.prepare()
                # the pages of the sites' last crawl (a recrawl), then those queued
                known = sum(self.store.queue.requests_by_state(list(self.sites)).values())
                self.workers.expect(min(known, self.crawl_settings.max_pages))
                if self.crawl_settings.use_sitemaps:
                    seeder = self._seeder()
                    for name in (n for n, resumed in started.items() if not resumed):
                        await seeder.seed(self.sites[name])
                    queued = self.store.queue.count(list(self.sites))
                    self.workers.expect(min(queued, self.crawl_settings.max_pages))
                budget_left = await self._dispatch()
            finally:
                try:
                    self.store.commit_group()  # what was stored before an error, too
                finally:
                    self.recrawl.close()  # its scratch set: no page is stored after this
                    await self.workers.close()
        with self.store.transaction():
            self.report.completed_sites = self.frontier.finish_cycles(now_utc())
            self.recrawl.cycles_finished(self.frontier.cycles, self.report.completed_sites)
        self._fill_report(budget_left)

    def _seeder(self) -> SitemapSeeder:
        return SitemapSeeder(
            store=self.store,
            frontier=self.frontier,
            recrawl=self.recrawl,
            robots=self.robots,
            gate=self.gate,
            client=self.client,
            settings=self.crawl_settings,
            requests=self.requests,
            skipped=self.skipped,
        )

    async def _fetch_robots(self, url: str) -> Any:
        self.requests[self.frontier.host(url)] += 1
        return await fetch_robots(self.client, url, settings=self.crawl_settings)

    async def _dispatch(self) -> bool:
        """Run pages until the queue is empty, the page budget is used, or stop is set."""
        tasks: set[asyncio.Task[None]] = set()
        budget = self.crawl_settings.max_pages
        while not self.stop.is_set():
            started = self._start_some(tasks, budget)
            if not started and self._unmodified:
                self._store_unmodified()  # their links may be all there is to claim
                started = self._start_some(tasks, budget)
            budget -= started
            open_sites = self._open_sites()
            if not tasks:
                if budget <= 0 or not open_sites or self.store.queue.count(open_sites) == 0:
                    break
                self.store.commit_group()  # not left open while every host waits
                await asyncio.sleep(
                    min(self.gate.next_ready(), 0.5)
                )  # every queued host is waiting out its delay
                continue
            wait = self.gate.next_ready()
            _done, tasks = await asyncio.wait(
                tasks,
                timeout=min(wait, 0.5) if wait != float("inf") else 0.5,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if self._unmodified and (
                len(self._unmodified) >= _UNMODIFIED_BATCH
                or time.monotonic() - self._unmodified_since >= _UNMODIFIED_WAIT
            ):
                # The next pages first: started, they reach their worker in one pass of the
                # loop and are sent, and the worker fetches them while this loop stores.
                if not self.stop.is_set():
                    budget -= self._start_some(tasks, budget)
                    await asyncio.sleep(0)
                self._store_unmodified()
            if self.store.group_due(blocks=_COMMIT_BLOCKS, seconds=_COMMIT_SECONDS):
                self.store.commit_group()
        if tasks:
            await asyncio.gather(*tasks)
        self._store_unmodified()
        return budget > 0  # ``crawl`` commits the group

    def _start_some(self, tasks: set[asyncio.Task[None]], budget: int) -> int:
        """Claim and start pages while there is room (``crawl.concurrency``, and the pages a
        worker may hold ahead; the page budget) and a host may start one now; returns how
        many. One transaction for the claims: a commit per claim cost as much as the claim.

        Claimed as many at a time as no limit can tell apart from one at a time (the room,
        the budget, each open site's cap, ``HostGate.startable``): one claim a page was 0.4 s
        of the crawl's process in a 23,479-page recrawl, where it is the busier process.
        """
        started = 0
        self.gate.ahead = self.workers.ahead if self.gate.all_may_queue() else 0
        room = self.crawl_settings.concurrency + self.gate.ahead
        if len(tasks) >= room or budget <= 0:
            return started
        with self.store.grouped():
            open_sites = self._open_sites()
            while open_sites and len(tasks) < room and started < budget:
                limit = min(
                    room - len(tasks),
                    budget - started,
                    self.gate.startable(),
                    *self._caps_left(open_sites),
                )
                claimed = self.store.queue.claim(open_sites, self.gate.busy_hosts(), limit)
                for target in claimed:
                    tasks.add(self._start(target))
                started += len(claimed)
                if len(claimed) < limit:
                    break  # nothing more a host may start now
                open_sites = self._open_sites()
        return started

    def _open_sites(self) -> list[str]:
        """Sites that have not used up crawl.max_pages_per_site in this run."""
        cap = self.crawl_settings.max_pages_per_site
        return [n for n in self.sites if cap is None or self.claimed[n] < cap]

    def _caps_left(self, open_sites: list[str]) -> list[int]:
        """Pages each of ``open_sites`` may still claim under crawl.max_pages_per_site (none
        without one)."""
        cap = self.crawl_settings.max_pages_per_site
        return [] if cap is None else [cap - self.claimed[n] for n in open_sites]

    def _start(self, target: Target) -> asyncio.Task[None]:
        """Reserve the host's slot now, before the next claim looks at busy hosts (the task only
        starts running at the next await), and start the page."""
        self.claimed[target.site] += 1
        token = self.gate.started(self.frontier.host(target.url))
        return asyncio.create_task(self._page(target, token))

    async def _page(self, target: Target, reserved: tuple[float, float]) -> None:
        host = self.frontier.host(target.url)
        token: tuple[float, float] | None = reserved
        outcome = "failed"
        try:
            reason = await self.robots.disallow_reason(target.url)
            if reason is not None:
                self.gate.cancelled(host, reserved)
                token = None
                raise PageSkipped(reason, url=target.url)
            await self._apply_crawl_delay(host, target.url)
            outcome = await self._fetch_and_store(target, host)
        except PageSkipped as exc:
            outcome = "skipped"
            self._finish(target, "skipped", exc.reason, self.skipped)
        except FetchError as exc:
            self._fetch_failed(target, exc)
        except ExtractError as exc:
            logger.warning("%s", exc)
            self._finish(target, "failed", exc.reason, self.failed)
        except Exception:  # the one catch-all: one broken page must not stop the run
            logger.exception(_UNEXPECTED, target.url)
            self._page_error(target)
        finally:
            if token is not None:
                self.gate.finished(host)
        self.done += 1
        if self.progress is not None:
            self.progress(Progress(target.url, outcome, self.done, self._queued()))

    def _page_error(self, target: Target) -> None:
        """An unexpected error on one page (logged by the caller): counted, the page failed."""
        self.frontier.forget_recent()  # links it queued may have been rolled back
        self.report.errors += 1
        self._finish(target, "failed", "error", self.failed)

    def _queued(self) -> int:
        """URLs left in the queue, for progress: counted at most every ``_QUEUED_EVERY`` s.

        A COUNT over the queue per page cost more than storing the page on a large crawl.
        """
        now = time.monotonic()
        if now - self._queued_at >= _QUEUED_EVERY:
            self._queued_count = self.store.queue.count(list(self.sites))
            self._queued_at = now
        return self._queued_count

    async def _apply_crawl_delay(self, host: str, url: str) -> None:
        if host in self.delays_checked:
            return
        self.delays_checked.add(host)
        delay = await self.robots.crawl_delay(url)
        self.gate.raise_delay(host, delay or 0.0)  # with none, pages may wait ahead (may_queue)

    async def _fetch_and_store(self, target: Target, host: str) -> str:
        site = self.sites[target.site]
        self.requests[host] += 1
        validators = self.store.queue.validators(target.url)

        def on_retry_after(seconds: float) -> None:
            self.gate.block(host, seconds)

        may_queue = self.gate.may_queue(host)
        answer = await self.workers.fetch(target, validators, on_retry_after, may_queue=may_queue)
        if answer is None:  # a small crawl, no worker could start, or each holds its share
            async with self.workers.own_request(host):
                fetched = await fetch_page(
                    self.client,
                    target,
                    settings=self.crawl_settings,
                    scope=lambda url: out_of_scope_reason(self.frontier.canonical(url), site),
                    validators=validators,
                    on_retry_after=on_retry_after,
                )
            extraction = None if fetched.not_modified else extract_here(fetched, target, site)
        else:
            fetched, extraction = answer
        if extraction is None:  # a 304: nothing to extract
            self.report.not_modified += 1
            if not self._unmodified:
                self._unmodified_since = time.monotonic()
            self._unmodified.append((target, fetched))  # stored by the dispatcher, in batches
            return "not_modified"
        self.report.pages_fetched += 1
        self.report.bytes += fetched.size
        page, record = extraction
        links = self.frontier.links_from(target, page)
        with self.store.grouped():
            plan = self._recrawl_plan(target, page, record, links)
            self._store_record(target, page, record, keep=plan.keep)
            self.frontier.add(plan.links)
            self.store.queue.complete(
                target.url,
                "done",
                fetched_at=fetched.fetched_at,
                http_status=fetched.status,
                kind=page.kind,
                validators=fetched.validators,
                links=links,
            )
            if isinstance(record, ArticleRecord):
                self.recrawl.article_fetched(target.url, record)
        return "fetched"

    def _recrawl_plan(
        self,
        target: Target,
        page: Extracted,
        record: ArticleRecord | TopicPageRecord | None,
        links: list[Target],
    ) -> ListingPlan:
        """The recrawl policy's cut of ``links`` (before the page's cards are stored), less
        those queued a moment ago: a topic page's ~350 page numbers and its theme's links were
        looked up in the refetch schedule on every page of a topic (as a 304 leaves them out,
        ``_dealt_with``)."""
        links = self.frontier.not_just_queued(links)
        if not isinstance(page, ListingPage) or not isinstance(record, TopicPageRecord):
            return ListingPlan(self.recrawl.due(links), stopped=False, keep=[])
        return self.recrawl.plan_listing(
            target,
            links,
            cycle=self.frontier.cycles[target.site],
            cards=self._cards(target, record),
            next_url=page.next_url,
            page_url=record.page_url,
        )

    def _store_unmodified(self) -> None:
        """Store the 304s fetched so far in one transaction (``_replay_unmodified``); should
        that fail, store them one by one so that one bad page fails alone."""
        batch, self._unmodified = self._unmodified, []
        if not batch:
            return
        try:
            with self.store.grouped():
                self._replay_unmodified(batch)
            return
        except Exception:
            if len(batch) == 1:
                logger.exception(_UNEXPECTED, batch[0][0].url)
                self._page_error(batch[0][0])
                return
            logger.exception("storing %s unchanged pages failed; one at a time now", len(batch))
            self.frontier.forget_recent()  # what the batch queued was rolled back
        for one in batch:
            try:
                with self.store.grouped():
                    self._replay_unmodified([one])
            except Exception:
                logger.exception(_UNEXPECTED, one[0].url)
                self._page_error(one[0])

    def _replay_unmodified(self, batch: Sequence[tuple[Target, Fetched]]) -> None:
        """Pages that answered 304: their article records are touched and rescheduled, and the
        links they had last time are queued again where the recrawl policy says so."""
        states = self.store.queue.page_states([t.url for t, _ in batch])
        kinds = {t.url: states.get(t.url, UNKNOWN_PAGE).kind for t, _ in batch}
        articles = [(t.url, f.fetched_at) for t, f in batch if kinds[t.url] == "article"]
        self.store.records.touch_articles(articles)
        self.recrawl.articles_not_modified([url for url, _ in articles])
        links: list[Target] = []
        for target, _ in batch:
            if kinds[target.url] == "listing":
                plan = self.recrawl.plan_listing(
                    target,
                    self.store.queue.known_links(
                        target.url, skip=self._dealt_with, settled=self.frontier.settled_runs
                    ),
                    cycle=self.frontier.cycles[target.site],
                    cards=None,
                    next_url=None,
                )
                links.extend(plan.links)
        self.frontier.add(links)
        others = [t.url for t, _ in batch if kinds[t.url] != "listing"]
        # A page at a time: an author archive may link 20,000 articles, and what one page's links
        # queue or find not due is left out of the next page's (``_dealt_with``).
        for known in self.store.queue.known_links_each(
            others, skip=self._dealt_with, settled=self.frontier.settled_runs
        ):
            self.frontier.add(self.recrawl.due(known))
        self.store.queue.complete_not_modified((t.url, f.fetched_at) for t, f in batch)

    def _dealt_with(self, site: str) -> tuple[Container[str], ...]:
        """The links of ``site`` this run needs not look at again: those queued a moment ago
        and the articles found not due."""
        return (self.frontier.recently_queued(site), *self.recrawl.waiting())

    def _store_record(
        self,
        target: Target,
        page: Extracted,
        record: ArticleRecord | TopicPageRecord | None,
        keep: Sequence[str] = (),
    ) -> None:
        now, run_id = now_utc(), self.report.run_id
        if isinstance(record, ArticleRecord) and isinstance(page, ArticlePage):
            url = self.frontier.canonical_of(target, page)
            self.store.records.save_article(replace(record, url=url), now, run_id)
        elif isinstance(record, TopicPageRecord) and isinstance(page, ListingPage):
            if page.archive != "topic":
                return  # an author/date/search archive: its cards are followed, not topics
            cards = self._cards(target, record)
            listed = [c.url for c in cards]
            listed += [u for u in keep if u not in listed]  # a stopped walk's unread tail
            self.store.records.save_topic_page(record, listed, now, run_id)
            for card in cards:
                self.store.records.save_card(record.site, record.topic_url, card, now, run_id)

    def _cards(self, target: Target, record: TopicPageRecord) -> list[CardRecord]:
        """A listing's cards with canonical URLs, in scope."""
        cards = [replace(card, url=self.frontier.canonical(card.url)) for card in record.cards]
        return [c for c in cards if out_of_scope_reason(c.url, self.sites[target.site]) is None]

    def _fetch_failed(self, target: Target, exc: FetchError) -> None:
        reason = exc.reason
        if isinstance(exc, BadStatus):
            reason = f"http_{exc.status}"
            if exc.status in GONE_STATUSES:
                with self.store.transaction():
                    self.store.records.mark_gone(target.url, now_utc(), self.report.run_id)
            if exc.retry_after:
                self.gate.block(self.frontier.host(target.url), exc.retry_after)
        logger.warning("%s", exc)
        self._finish(target, "failed", reason, self.failed)

    def _finish(self, target: Target, state: str, reason: str, counter: Counter[str]) -> None:
        counter[reason] += 1
        with self.store.transaction():
            self.store.queue.complete(target.url, state, reason=reason)

    def _fill_report(self, budget_left: bool) -> None:
        report = self.report
        report.failed = dict(self.failed)
        report.skipped = dict(self.skipped) | self.recrawl.skipped()
        report.links_dropped = dict(self.frontier.dropped)
        report.requests_by_host = dict(self.requests)
        report.extract = self.workers.stats
        cap = self.crawl_settings.max_pages_per_site
        report.capped = {
            name: left
            for name in self.sites
            if cap is not None
            and self.claimed[name] >= cap
            and (left := self.store.queue.count([name]))
        }
        if self.stop.is_set():
            report.status = "interrupted"
        elif (not budget_left or report.capped) and len(report.completed_sites) < len(self.sites):
            report.status = "paused"
        else:
            report.status = "finished"
