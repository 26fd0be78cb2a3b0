"""The run: where the stages are chained (with its engine, ``pipeline.crawler``).

    config -> frontier -> fetch -> extract -> normalize -> store -> index -> (feed, watches, drift)

``run_once(settings)`` crawls the configured sites (resuming an interrupted pass), stores what it
finds, brings the search index up to date with the store, writes the change feed and returns a
``RunReport``, which is also kept in the store. The per-page crawl loop lives in
``pipeline.crawler``; this module also holds the one-shot library calls the CLI makes (export,
status, reindex, inspecting one page).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import fields, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.config import Settings, SiteConfig
from pipeline.crawler import Crawler, Progress, RunReport, now_utc
from pipeline.errors import (
    ConfigError,
    ExtractError,
    StoreError,
)
from pipeline.export import ExportStats, contract_record
from pipeline.feed import export_file
from pipeline.fetch import decode_html, fetch_page, make_client
from pipeline.follow import IndexFollower
from pipeline.models import (
    Fetched,
    Links,
    Target,
)
from pipeline.postrun import check_watches, write_outputs
from pipeline.store import DirectoryLock, Store, store_path
from pipeline.sync import SyncReport, sync_index
from pipeline.workers import extract_here

__all__ = [
    "Progress",
    "RunReport",
    "export_records",
    "inspect_page",
    "jsonable",
    "reindex",
    "run_once",
    "store_status",
]

logger = logging.getLogger(__name__)


def run_once(
    settings: Settings,
    *,
    sites: Sequence[str] | None = None,
    progress: Callable[[Progress], None] | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], datetime] | None = None,
) -> RunReport:
    """Crawl, store and index once.

    Args:
        settings: validated settings (``load_settings``).
        sites: names of the sites to crawl (default: all configured).
        progress: called after each page, from the crawling thread.
        stop: set it (e.g. from a signal handler) to stop taking new URLs; in-flight pages finish,
            the pass is left unfinished and the next run resumes it.
        clock: the recrawl policy's "now" (default: the wall clock); tests move it forward.

    Returns:
        The run's report (also stored).

    Raises:
        ConfigError: no sites configured, or an unknown site name.
        StoreError: the store cannot be opened, or another crawl holds the data directory.
    """
    chosen = _choose_sites(settings, sites)
    with DirectoryLock(settings.storage.dir, "crawl"), Store(settings.storage.dir) as store:
        store.mark_abandoned_runs(now_utc())
        report = RunReport(sites=[s.name for s in chosen], started_at=now_utc().isoformat())
        report.run_id = store.start_run(report.sites, now_utc())
        seq_before = store.max_seq()
        started = time.monotonic()
        follower = IndexFollower(settings, store)

        def on_page(page: Progress) -> None:
            follower.poke()
            if progress is not None:
                progress(page)

        crawler = Crawler(
            settings, chosen, store, report, on_page, stop or threading.Event(), clock or now_utc
        )
        try:
            asyncio.run(crawler.crawl())
        finally:
            # The index process runs the final sync, if it ran, while this one writes the feed.
            follower.begin_finish()
            report.changes = store.changes_between(seq_before, store.max_seq())
            write_outputs(settings, store, report)  # drift, change feed
            during_crawl, synced = follower.finish()
            if synced is None:
                synced = sync_index(store, settings)
            report.index = synced.to_dict() | {"during_crawl": during_crawl}
            check_watches(settings, store, report)  # they search the index
            report.seconds = round(time.monotonic() - started, 3)
            report.finished_at = now_utc().isoformat()
            if report.status == "running":
                report.status = "interrupted"
            store.finish_run(report.run_id, report.status, report.to_dict(), now_utc())
    return report


def _choose_sites(settings: Settings, names: Sequence[str] | None) -> list[SiteConfig]:
    if not settings.sites:
        raise ConfigError(
            "no sites configured: add a `sites:` list to config.yaml (see README), "
            "or try `crawldex demo`",
            key="sites",
        )
    return [settings.site(n) for n in names] if names else list(settings.sites)


def export_records(
    settings: Settings, out: Path, *, kind: str | None = None, site: str | None = None
) -> ExportStats:
    """Export every record of the store as JSON Lines to ``out``, in change order.

    The full export of ``crawldex export`` (``pipeline.feed.export_file``), counted.

    Raises:
        ExportError: a record breaks the contract, or ``out`` cannot be written.
        StoreError: the store cannot be opened.
    """
    counts, _cursor = export_file(settings, out, fmt="jsonl", kind=kind, site=site)
    return ExportStats(out, counts["article"] + counts["topic"], counts["article"], counts["topic"])


def store_status(settings: Settings, *, runs: int = 5) -> dict[str, Any]:
    """Record counts, the frontier's state and the newest runs of a data directory."""
    with Store(settings.storage.dir) as store:
        names = [s.name for s in settings.sites]
        return {
            "data_dir": str(settings.storage.dir),
            "counts": store.records.counts(),
            "frontier": store.queue.requests_by_state(names) if names else {},
            "index_seq": int(store.get_meta("index_seq", "0") or 0),
            "store_seq": store.max_seq(),
            "runs": store.last_runs(runs),
        }


def inspect_page(
    source: str, settings: Settings, *, url: str | None = None, site_name: str | None = None
) -> dict[str, Any]:
    """What extraction and normalization make of one page (a file path or an http(s) URL).

    For users tuning a site: no robots.txt, no store, nothing written.

    Args:
        source: a path to an HTML file, or an http(s) URL to fetch.
        settings: for the site's selectors and timezone, and the fetch settings.
        url: the URL the file was saved from (resolves its links; default ``file://`` path).
        site_name: a configured site whose selectors and timezone apply.

    Returns:
        ``{"source", "url", "kind", "extracted", "record"}`` ready for JSON.

    Raises:
        FetchError: the URL could not be fetched. PageSkipped: it is not HTML.
        ExtractError: the file cannot be read.
    """
    is_url = source.startswith(("http://", "https://"))
    page_url = url or (source if is_url else Path(source).resolve().as_uri())
    site = (
        settings.site(site_name)
        if site_name
        else SiteConfig.model_validate({"name": "adhoc", "start_urls": ["http://localhost/"]})
    )
    target = Target(url=page_url, site=site.name)
    fetched = (
        asyncio.run(_fetch_one(target, settings)) if is_url else _read_file(Path(source), target)
    )
    page, record = extract_here(fetched, target, site, link_texts=True)
    return {
        "source": source,
        "url": fetched.url,
        "kind": page.kind,
        "encoding": fetched.encoding,
        "extracted": jsonable(page),
        "record": jsonable(record) if record is not None else None,
    }


async def _fetch_one(target: Target, settings: Settings) -> Fetched:
    async with make_client(settings.crawl) as client:
        return await fetch_page(client, target, settings=settings.crawl, scope=lambda _url: None)


def _read_file(path: Path, target: Target) -> Fetched:
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise ExtractError(f"cannot read {path}: {exc.strerror}", url=target.url) from exc
    text, encoding = decode_html(body)
    return Fetched(
        target=target,
        url=target.url,
        status=200,
        text=text,
        encoding=encoding,
        fetched_at=now_utc(),
        size=len(body),
    )


def jsonable(value: Any) -> Any:
    """Dataclasses, tuples and datetimes as plain JSON values."""
    if isinstance(value, Links):  # a list of links, not its columns
        return [jsonable(link) for link in value]
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def reindex(settings: Settings, *, rebuild: bool = False) -> SyncReport:
    """Apply pending store changes to the search index, or rebuild it from the store.

    Raises:
        StoreError: another crawl holds the data directory.
        SearchIndexError: the index cannot be written.
    """
    with DirectoryLock(settings.storage.dir, "crawl"), Store(settings.storage.dir) as store:
        return sync_index(store, settings, rebuild=rebuild)


def run_started_at(settings: Settings, run_id: int) -> datetime:
    """When crawl run ``run_id`` started (for "what is new since run N").

    Raises:
        StoreError: there is no store yet, or no such run.
    """
    if not store_path(settings.storage.dir).exists():
        raise StoreError(f"no crawldex data in {settings.storage.dir} yet; run `crawldex crawl`")
    with Store(settings.storage.dir) as store:
        started = store.run_started_at(run_id)
    if started is None:
        raise StoreError(f"there is no run {run_id}; `crawldex status --runs 20` lists the runs")
    return datetime.fromisoformat(started)


def contract_articles(settings: Settings, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The stored articles with these ids in the record contract, by id (unknown ids left out).

    Raises:
        ExportError: a record breaks the contract. StoreError: the store cannot be opened.
    """
    if not ids or not store_path(settings.storage.dir).exists():
        return {}
    with Store(settings.storage.dir) as store:
        return {r["id"]: contract_record(r) for r in store.records.articles_by_id(ids)}
