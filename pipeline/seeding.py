"""Frontier stage, at the start of a pass: the sitemaps robots.txt lists, read and queued.

``SitemapSeeder.seed`` reads a site's sitemaps (indexes followed, in scope only), judges their
URLs as the frontier judges links, and queues them newest ``lastmod`` first, leaving out the
article pages whose ``lastmod`` is not newer than our copy unless the recrawl schedule says they
are due. It hands the crawl a queue to dispatch.

Sitemaps are fetched with the validators of the copy last read, as pages are. A site's complete
reading is kept in the store (``SitemapTable``: its files and the URLs it accepted), and when
every file answers 304 a pass queues those URLs again without downloading, parsing or judging
its entries: the 20k bench site's sitemap is 2.9 MB (20,011 URLs), and its recrawl's seeding
took ~0.37 s with the reading kept against ~0.74 s reading it (bench/README.md). The reading
is kept only while the rules its URLs were judged under hold (the site's config, depth and trap
limits: ``rules_key``); when a file has changed, the others are read in full again, the changed
one's body used as it came.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO

from pipeline.config import CrawlSettings, SiteConfig
from pipeline.errors import FetchError
from pipeline.fetch import Client, fetch_sitemap
from pipeline.frontier import Frontier, out_of_scope_reason
from pipeline.models import UNKNOWN_PAGE, PageState, Target, Validators
from pipeline.politeness import HostGate, RobotsCache
from pipeline.recrawl import Recrawl
from pipeline.sitemaps import UNUSABLE, Sitemap, SitemapEntry, parse_sitemap
from pipeline.store import LastmodSpool, SitemapFile, Store

__all__ = ["SitemapSeeder", "rules_key"]

logger = logging.getLogger(__name__)

_MAX_SITEMAPS = 50  # sitemap files read per site and pass (indexes included)
_SITEMAP_CHUNK = 2000  # sitemap URLs queued at a time
_SITEMAP_SPOOL = 1 << 20  # bytes of a sitemap held in memory before it goes to a temporary file
#: Bump when the way sitemap URLs are judged changes: readings kept from before are read again.
_JUDGING = 1


def rules_key(site: SiteConfig, crawl: CrawlSettings) -> str:
    """What a sitemap URL's verdict depends on, hashed: the site's config (hosts, scope,
    canonicalization) and the crawl's depth and trap limits."""
    rules = {
        "judging": _JUDGING,
        "site": site.model_dump(mode="json"),
        "max_depth": crawl.max_depth,
        "max_query_variants": crawl.max_query_variants,
        "max_listing_pages": crawl.max_listing_pages,
    }
    return hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()


@dataclass(slots=True)
class _Reading:
    """What reading a site's sitemaps found: the files read and whether all were usable; and
    what checking the kept reading met, used as it came: the body of a changed file (url ->
    body, validators), or a fetch that failed (url -> the error)."""

    files: list[SitemapFile] = field(default_factory=list)
    complete: bool = True
    bodies: dict[str, tuple[IO[bytes], Validators]] = field(default_factory=dict)
    failures: dict[str, FetchError] = field(default_factory=dict)


@dataclass(eq=False, kw_only=True, slots=True)
class SitemapSeeder:
    """Queues a new pass's sitemap URLs for one crawl (``Crawler`` makes one per run).

    Attributes:
        store: the run's store (queue, records, the kept readings).
        frontier: judges and queues URLs.
        recrawl: the recrawl policy (which unchanged articles are due anyway).
        robots: robots.txt, which lists the sitemaps.
        gate: per-host politeness; a sitemap is a request like any other.
        client: the run's HTTP client.
        settings: the crawl settings.
        requests / skipped: the crawl's counters (requests by host; pages skipped by reason).
    """

    store: Store
    frontier: Frontier
    recrawl: Recrawl
    robots: RobotsCache
    gate: HostGate
    client: Client
    settings: CrawlSettings
    requests: Counter[str]
    skipped: Counter[str]

    async def seed(self, site: SiteConfig) -> None:
        """Queue a new pass's sitemap URLs; skip those whose lastmod is not newer than our copy
        unless the recrawl schedule says they are due (comments change without a new lastmod)."""
        rules = rules_key(site, self.settings)
        kept = self.store.sitemaps.files(site.name, rules)
        with ExitStack() as stack:
            reading = _Reading()
            if kept and await self._unchanged(site, kept, reading):
                chunks = self.store.sitemaps.urls(site.name, _SITEMAP_CHUNK)
                with self.store.transaction():
                    counts = self._queue(
                        [(Target(url, site.name, 1), lastmod) for url, lastmod in chunk]
                        for chunk in chunks
                    )
                logger.info(
                    "%s: sitemaps unchanged (304): their URLs queued as last read", site.name
                )
            else:
                for body, _ in reading.bodies.values():
                    stack.callback(body.close)
                # Newest first over all the site's sitemaps, read back from disk a slice at a
                # time: the entries of 100,000 URLs took 24.5 MB held, and their targets, page
                # states and queue rows ~50 MB more when they were handled at once.
                spool = stack.enter_context(closing(LastmodSpool()))
                await self._read(site, spool, reading)
                with self.store.transaction():
                    counts = self._queue_read(site, spool, rules, reading)
        logger.info(
            "%s: %s sitemap URLs queued, %s unchanged since last fetched", site.name, *counts
        )

    # -- reading -----------------------------------------------------------------------------
    async def _unchanged(self, site: SiteConfig, kept: list[SitemapFile], out: _Reading) -> bool:
        """Whether every file of the kept reading answers 304, robots.txt listing the same
        ones; checking stops at the first that does not, its body kept for the reading."""
        if await self._roots(site) != [f.url for f in kept if f.parent is None]:
            return False
        for kept_file in kept:
            # handed on to the reading in full when the file has changed, closed otherwise
            body = tempfile.SpooledTemporaryFile(max_size=_SITEMAP_SPOOL)  # noqa: SIM115
            try:
                validators = await self._download(kept_file.url, body, kept_file.validators)
            except FetchError as exc:  # not asked again: the reading in full says why
                body.close()
                out.failures[kept_file.url] = exc
                return False
            if validators is not None:  # changed: its body is read as it came
                out.bodies[kept_file.url] = (body, validators)
                return False
            body.close()
        return True

    async def _roots(self, site: SiteConfig) -> list[str]:
        """The sitemaps robots.txt lists that a reading starts from: in scope, each once, in
        its order (a kept reading's are compared with these)."""
        listed = await self.robots.sitemaps(site.start_urls[0])
        return list(dict.fromkeys(url for url in listed if out_of_scope_reason(url, site) is None))

    async def _read(self, site: SiteConfig, spool: LastmodSpool, reading: _Reading) -> None:
        """Spool the page entries of the sitemaps robots.txt lists (indexes followed, in scope
        only), noting each file read in ``reading``."""
        pending: list[tuple[str, str | None]] = [(url, None) for url in await self._roots(site)]
        seen: set[str] = set()
        while pending and len(seen) < _MAX_SITEMAPS:
            url, parent = pending.pop(0)
            if url in seen or out_of_scope_reason(url, site) is not None:
                continue
            seen.add(url)
            sitemap, validators = await self._sitemap(url, spool, reading)
            reading.complete &= sitemap.usable
            reading.files.append(SitemapFile(url, parent, validators or Validators()))
            if sitemap.is_index:
                pending.extend((e.loc, url) for e in sitemap.entries)

    async def _sitemap(
        self, url: str, spool: LastmodSpool, reading: _Reading
    ) -> tuple[Sitemap, Validators | None]:
        """One sitemap, fetched (or as the check of the kept reading fetched it) and parsed: an
        index, or an empty one when it fails or is a ``<urlset>`` (its entries go to ``spool``),
        with its validators."""
        body, validators = reading.bodies.pop(url, (None, None))
        with body or tempfile.SpooledTemporaryFile(max_size=_SITEMAP_SPOOL) as file:
            if body is None:
                try:
                    failed = reading.failures.pop(url, None)
                    if failed is not None:
                        raise failed
                    validators = await self._download(url, file, None)
                except FetchError as exc:
                    logger.warning("%s", exc)
                    return UNUSABLE, None
            file.seek(0)
            sitemap = parse_sitemap(
                file,
                max_bytes=self.settings.sitemap_max_bytes,
                url=url,
                into=lambda entries: spool.add((e.loc, e.lastmod) for e in entries),
            )
            return sitemap, validators

    async def _download(
        self, url: str, into: IO[bytes], validators: Validators | None
    ) -> Validators | None:
        """GET one sitemap through the host's gate into ``into``: its validators, None for a
        304 (``fetch_sitemap``, whose ``FetchError`` it raises)."""
        host = self.frontier.host(url)
        await asyncio.sleep(min(self.gate.ready_in(host), self.settings.deadline))
        self.gate.started(host)
        self.requests[host] += 1
        try:
            return await fetch_sitemap(
                self.client, url, settings=self.settings, into=into, validators=validators
            )
        finally:
            self.gate.finished(host)

    # -- queueing ----------------------------------------------------------------------------
    def _queue_read(
        self, site: SiteConfig, spool: LastmodSpool, rules: str, reading: _Reading
    ) -> tuple[int, int]:
        """Judge and queue what was read, and keep it for the next pass when it is complete
        (every file usable and with validators to send back)."""
        self.store.sitemaps.forget(site.name)
        keep = reading.complete and all(_conditional(f.validators) for f in reading.files)

        def judged() -> Iterable[list[tuple[Target, datetime | None]]]:
            for chunk in spool.newest_first(_SITEMAP_CHUNK):
                entries = [SitemapEntry(loc, lastmod) for loc, lastmod in chunk]
                targets = self.frontier.sitemap_targets(site.name, entries)
                if keep:
                    self.store.sitemaps.add_urls(site.name, ((t.url, m) for t, m in targets))
                yield targets

        counts = self._queue(judged())
        if keep:
            self.store.sitemaps.save_files(site.name, rules, reading.files, datetime.now(UTC))
        return counts

    def _queue(self, chunks: Iterable[Sequence[tuple[Target, datetime | None]]]) -> tuple[int, int]:
        """Queue slices of sitemap targets with their ``lastmod``; returns (queued to fetch,
        skipped as unchanged)."""
        queued = skipped = 0
        for chunk in chunks:
            fresh, unchanged = self._queue_chunk(chunk)
            queued, skipped = queued + fresh, skipped + unchanged
        return queued, skipped

    def _queue_chunk(self, targets: Sequence[tuple[Target, datetime | None]]) -> tuple[int, int]:
        """Queue a slice; return (queued to fetch, skipped as unchanged). The store is asked per
        slice, not per URL."""
        fresh, unchanged, states = self.frontier.split_unchanged(targets)
        articles = [t for t in unchanged if states.get(t.url, UNKNOWN_PAGE).kind == "article"]
        due_urls = self.recrawl.due_urls([t.url for t in articles])
        due = [t for t in articles if t.url in due_urls]
        unchanged = [t for t in unchanged if t.url not in due_urls]
        self.frontier.add([*fresh, *due])
        self.frontier.add(unchanged)
        self._skip_unchanged(unchanged, states)
        return len(fresh), len(unchanged)

    def _skip_unchanged(self, targets: list[Target], states: dict[str, PageState]) -> None:
        """Not refetched: the sitemap says these have not changed since we fetched them."""
        if not targets:
            return
        now = datetime.now(UTC)
        self.store.records.touch_articles(
            (t.url, now) for t in targets if states.get(t.url, UNKNOWN_PAGE).kind == "article"
        )
        # an unchanged page only leads to what we have never fetched: pages we know are left to
        # the sitemap, the listings and the recrawl schedule
        known = self.store.queue.known_links_of([t.url for t in targets])
        fetched = self.store.queue.page_states(list(known))
        self.frontier.add(
            [t for url, t in known.items() if fetched.get(url, UNKNOWN_PAGE).fetched_at is None]
        )
        for target in targets:
            self.store.queue.complete(target.url, "skipped", reason="sitemap_unchanged")
        self.skipped["sitemap_unchanged"] += len(targets)


def _conditional(validators: Validators) -> bool:
    """Whether a conditional GET can be made with ``validators``."""
    return bool(validators.etag or validators.last_modified)
