"""Recrawl policy: listing watermark, full walks, adaptive article refetch, card comment counts.

Time is an injected clock (``run_once(clock=...)``) that the tests move forward; nothing sleeps.
What was fetched is read from the demo server's request log.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.config import CrawlSettings, Settings
from pipeline.demo import DemoServer, DemoSite
from pipeline.demo.content import DemoArticle, InlineSpan
from pipeline.models import Target
from pipeline.recrawl import Recrawl, full_walk_due, is_due, next_interval
from pipeline.run import RunReport, export_records, run_once
from pipeline.store import SCHEMA_VERSION, Store
from tests.conftest import crawl_settings

HOUR = 3600


class Clock:
    """The recrawl policy's "now", moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def policy_settings(data_dir: Path, server: DemoServer) -> Settings:
    return crawl_settings(
        data_dir,
        server.base_url,
        full_walk_every="7d",
        refetch_min="1h",
        refetch_max="30d",
    )


def crawl(settings: Settings, server: DemoServer, clock: Clock) -> tuple[RunReport, list[str]]:
    """One run; returns its report and the paths the server was asked for."""
    server.clear_requests()
    report = run_once(settings, clock=clock)
    assert report.status == "finished"
    assert report.failed == {}
    return report, [r.path for r in server.requests]


def first_pages(site: DemoSite) -> set[str]:
    return {f"/topics/{t.slug}/" for t in site.topics}


def listing_paths(site: DemoSite) -> set[str]:
    paths = set()
    for topic in site.topics:
        for page in range(1, site.page_count(len(topic.article_slugs)) + 1):
            paths.add(f"/topics/{topic.slug}/" + (f"page/{page}/" if page > 1 else ""))
    return paths


def records(settings: Settings, tmp_path: Path) -> dict[str, dict]:
    out = tmp_path / "records.jsonl"
    export_records(settings, out)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    return {r["url"]: r for r in rows}


def test_steady_state_of_an_unchanged_site_fetches_only_the_first_listing_page_per_topic(
    demo_site, tmp_path
):
    clock = Clock()
    with DemoServer(demo_site) as server:
        settings = policy_settings(tmp_path / "data", server)
        _first, first_paths = crawl(settings, server, clock)
        clock.advance(minutes=10)
        steady, paths = crawl(settings, server, clock)
    articles = {a.path for a in demo_site.articles}
    assert listing_paths(demo_site) <= set(first_paths)
    assert articles <= set(first_paths)
    # Steady state: every topic's first page, nothing deeper, no article page.
    assert first_pages(demo_site) <= set(paths)
    assert not set(paths) & articles
    assert not set(paths) & (listing_paths(demo_site) - first_pages(demo_site))
    others = set(paths) - first_pages(demo_site)
    assert others <= {"/robots.txt", "/sitemap.xml", "/", "/about/"}, others
    assert len(paths) == len(set(paths))
    assert len(paths) < len(first_paths) / 10
    assert steady.changes == {}
    # every article is left out once, counted under the sitemap's word (it says unchanged);
    # the first listing pages' links to them are not looked at again (not counted as not_due)
    assert steady.skipped["sitemap_unchanged"] >= len(articles)
    assert steady.skipped.get("not_due", 0) < 10


@pytest.fixture
def policy_crawl(small_site, tmp_path):
    """The small site crawled once with the policy on; yields (server, settings, clock)."""
    clock = Clock()
    with DemoServer(small_site) as server:
        settings = policy_settings(tmp_path / "data", server)
        crawl(settings, server, clock)
        yield server, settings, clock


def newest_with_comments(site: DemoSite, topic_slug: str) -> DemoArticle:
    return next(a for a in site.topic_articles(topic_slug) if a.comment_count is not None)


def test_a_new_article_appears_after_a_steady_state_run(policy_crawl, small_site, tmp_path):
    server, settings, clock = policy_crawl
    template = small_site.articles[0]
    new = replace(
        template,
        slug="brand-new-guide",
        path="/2025/11/brand-new-guide/",
        title="A Brand New Guide",
        published=small_site.now - timedelta(minutes=5),
        post_id=9999,
    )
    changed = small_site.with_article(new)
    server.set_site(changed)
    clock.advance(minutes=10)
    report, paths = crawl(settings, server, clock)
    assert new.path in paths
    assert report.changes["article_new"] == 1
    # The walk went one page further in the new article's topics only, then stopped.
    for topic in changed.topics:
        deeper = {p for p in paths if p.startswith(f"/topics/{topic.slug}/page/")}
        assert deeper == (
            {f"/topics/{topic.slug}/page/2/"} if topic.slug in new.topic_slugs else set()
        )
    # Every topic still lists every article, in order: the stopped walk kept the unread tail.
    got = records(settings, tmp_path)
    for truth in changed.expected_topics(server.base_url):
        assert got[truth["url"]]["article_urls"] == truth["article_urls"]
    assert got[server.base_url + new.path]["title"] == new.title


def test_a_comment_count_seen_on_a_card_updates_the_record_without_fetching_the_article(
    policy_crawl, small_site, tmp_path
):
    server, settings, clock = policy_crawl
    article = newest_with_comments(small_site, small_site.topics[0].slug)
    old = article.comment_count
    assert old is not None
    server.set_site(small_site.with_article(replace(article, comment_count=old + 7)))
    clock.advance(minutes=10)
    report, paths = crawl(settings, server, clock)
    assert article.path not in paths
    assert report.changes == {"article_changed": 1}
    url = server.base_url + article.path
    assert records(settings, tmp_path)[url]["comment_count"] == old + 7
    with Store(settings.storage.dir) as store:
        rows = [r for r in store.history.iter_rows() if r["url"] == url]
    assert [(r["field"], r["old"], r["new"]) for r in rows] == [("comment_count", old, old + 7)]


def test_after_the_full_walk_period_the_whole_listing_is_walked_again(policy_crawl, small_site):
    server, settings, clock = policy_crawl
    clock.advance(days=6)
    _report, paths = crawl(settings, server, clock)
    assert not set(paths) & (listing_paths(small_site) - first_pages(small_site))
    clock.advance(days=1, minutes=1)  # seven days after the first walk
    _report, paths = crawl(settings, server, clock)
    assert listing_paths(small_site) <= set(paths)
    clock.advance(minutes=10)  # the walk just completed resets the period
    _report, paths = crawl(settings, server, clock)
    assert first_pages(small_site) <= set(paths)
    assert not set(paths) & (listing_paths(small_site) - first_pages(small_site))


def test_a_changed_article_is_picked_up_once_due_and_its_interval_resets(
    policy_crawl, small_site, tmp_path
):
    server, settings, clock = policy_crawl
    first_page = small_site.page_of(small_site.topic_articles(small_site.topics[0].slug), 1)
    target, other = first_page[0], first_page[1]
    url, other_url = server.base_url + target.path, server.base_url + other.path

    clock.advance(minutes=61)  # due: refetched, unchanged (304): the interval doubles to 2 h
    _report, paths = crawl(settings, server, clock)
    assert target.path in paths
    with Store(settings.storage.dir) as store:
        assert store.recrawl.refetch_entry(url).interval_s == 2 * HOUR

    rewritten = "This paragraph was rewritten after publication."
    server.set_site(
        small_site.with_article(
            replace(
                target,
                paragraphs=(rewritten, *target.paragraphs[1:]),
                markup=((InlineSpan(rewritten),), *target.markup[1:]),
            )
        )
    )
    clock.advance(hours=1)  # 1 h into its 2 h wait: not due
    report, paths = crawl(settings, server, clock)
    assert target.path not in paths
    # left out once: by the sitemap's word (unchanged, not due), not counted again as not_due
    assert report.skipped["sitemap_unchanged"] >= 1
    assert not records(settings, tmp_path)[url]["text"].startswith("This paragraph was rewritten")

    clock.advance(hours=1, minutes=1)  # due again: the change is found
    report, paths = crawl(settings, server, clock)
    assert target.path in paths
    assert records(settings, tmp_path)[url]["text"].startswith("This paragraph was rewritten")
    assert report.changes == {"article_changed": 1}
    with Store(settings.storage.dir) as store:
        changed, unchanged = (
            store.recrawl.refetch_entry(url),
            store.recrawl.refetch_entry(other_url),
        )
    assert (changed.interval_s, changed.changes) == (HOUR, 1)  # reset to refetch_min
    assert (unchanged.interval_s, unchanged.changes) == (4 * HOUR, 0)  # doubled again


def test_next_interval_doubles_while_unchanged_within_bounds_and_resets_on_change():
    intervals = [next_interval(None, changed=False, minimum=HOUR, maximum=10 * HOUR)]
    for _ in range(5):
        intervals.append(
            next_interval(intervals[-1], changed=False, minimum=HOUR, maximum=10 * HOUR)
        )
    assert intervals == [HOUR, 2 * HOUR, 4 * HOUR, 8 * HOUR, 10 * HOUR, 10 * HOUR]
    assert next_interval(8 * HOUR, changed=True, minimum=HOUR, maximum=10 * HOUR) == HOUR
    assert next_interval(0, changed=False, minimum=0, maximum=HOUR) == 0  # policy off


def test_due_and_full_walk_rules():
    now = datetime(2025, 11, 20, tzinfo=UTC)
    assert is_due(None, now)
    assert is_due(now, now)
    assert not is_due(now + timedelta(seconds=1), now)
    assert full_walk_due(None, now, 7 * 86400)
    assert not full_walk_due(now - timedelta(days=6), now, 7 * 86400)
    assert full_walk_due(now - timedelta(days=7), now, 7 * 86400)
    assert full_walk_due(now, now, 0)  # "0s": every walk is full


def test_a_schema_2_store_is_upgraded_in_place(tmp_path):
    with Store(tmp_path) as store:
        with store.transaction():
            store.recrawl.begin_full_walk("http://site.test/topics/a/", "s", 1, datetime.now(UTC))
        store._conn.execute("DROP TABLE refetch_schedule")  # as a schema-2 store had it
        store._conn.execute("PRAGMA user_version=2")
    with Store(tmp_path) as store:
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.recrawl.refetch_entry("http://site.test/a/") is None
        assert store.recrawl.listing_walk("http://site.test/topics/a/") is not None


def not_due_policy(store: Store, urls: list[str]) -> Recrawl:
    """A run's recrawl policy a minute after ``urls`` were checked: fetched an hour before, due
    an hour after."""
    clock = Clock()
    with store.transaction():
        for url in urls:
            store.recrawl.set_refetch(
                url,
                interval_s=HOUR,
                due_at=clock.now + timedelta(hours=1),
                page_hash=None,
                checked_at=clock.now - timedelta(hours=1),
                changed=False,
            )
    clock.advance(minutes=1)
    return Recrawl(CrawlSettings(refetch_min="1h"), store.recrawl, canonical=str, clock=clock)


@pytest.mark.parametrize("due_slice", [2000, 1], ids=["one-slice", "a-link-a-slice"])
def test_an_article_found_not_due_is_not_looked_up_again_in_the_same_run(
    tmp_path, monkeypatch, due_slice
):
    """Every page of a site links the same articles: once one is found not due, later pages'
    links to it are answered without another lookup, and it is still counted once. The
    schedules are read a slice of links at a time (an author archive links thousands)."""
    monkeypatch.setattr("pipeline.recrawl._DUE_SLICE", due_slice)
    with Store(tmp_path) as store:
        policy = not_due_policy(store, ["http://s.test/waiting/"])
        asked: list[list[str]] = []
        lookup = store.recrawl.refetch_times
        store.recrawl.refetch_times = lambda urls: asked.append(list(urls)) or lookup(urls)
        links = [Target(url=u, site="s") for u in ("http://s.test/waiting/", "http://s.test/new/")]
        first = policy.due(links)
        second = policy.due(links)
        policy.close()
    assert [t.url for t in first] == [t.url for t in second] == ["http://s.test/new/"]
    lookups = [["http://s.test/waiting/", "http://s.test/new/"], ["http://s.test/new/"]]
    if due_slice == 1:
        lookups = [[url] for urls in lookups for url in urls]
    assert asked == lookups
    assert policy.skipped() == {"not_due": 1}


def test_a_304_that_cannot_be_stored_fails_alone_and_the_rest_of_its_batch_is_stored(
    policy_crawl, small_site, monkeypatch
):
    """304s are stored in batches, one transaction each; a page whose bookkeeping breaks fails
    alone (counted as an error), the rest of the batch is stored one at a time."""
    from pipeline.store.queue import SqliteFrontierQueue

    server, settings, clock = policy_crawl
    broken = f"{server.base_url}/topics/{small_site.topics[0].slug}/"
    known_links = SqliteFrontierQueue.known_links

    def breaks_on_one(self, url, skip=None, settled=None):
        if url == broken:
            raise RuntimeError("a corrupt links blob")
        return known_links(self, url, skip, settled)

    monkeypatch.setattr(SqliteFrontierQueue, "known_links", breaks_on_one)
    clock.advance(days=31)  # past refetch_max: every page is due, and every page answers 304
    server.clear_requests()
    report = run_once(settings, clock=clock)
    paths = [r.path for r in server.requests if r.path not in ("/robots.txt", "/sitemap.xml")]
    assert report.pages_fetched == 0
    assert report.errors == 1
    assert report.failed == {"error": 1}
    assert report.not_modified == len(paths)  # the broken page was a 304 too
    with Store(settings.storage.dir) as store:
        rows = store._conn.execute("SELECT url, state, http_status FROM pages").fetchall()
    by_url = {r["url"]: (r["state"], r["http_status"]) for r in rows}
    assert by_url.pop(broken) == ("failed", 200)  # failed; its last good fetch is kept
    fetched = {server.base_url + p for p in paths} - {broken}
    assert len(fetched) > 10
    assert {by_url[u] for u in fetched} == {("done", 304)}


def test_no_page_starts_once_stop_is_set_while_304s_are_stored(policy_crawl, monkeypatch):
    """Storing a batch of 304s first starts the next pages (their worker fetches them
    meanwhile): not once the crawl is told to stop (Ctrl-C), when only pages in flight end."""
    import pipeline.crawler as crawler_module

    _server, settings, clock = policy_crawl
    monkeypatch.setattr(crawler_module, "_UNMODIFIED_BATCH", 1)  # a batch at every 304
    stop = threading.Event()
    late: list[str] = []
    start = crawler_module.Crawler._start

    def noted(self, target):
        if stop.is_set():
            late.append(target.url)
        return start(self, target)

    def on_page(progress):
        if progress.outcome == "not_modified":
            stop.set()

    monkeypatch.setattr(crawler_module.Crawler, "_start", noted)
    clock.advance(days=31)  # every page due, every one answers 304
    report = run_once(settings, clock=clock, progress=on_page, stop=stop)
    assert report.not_modified >= 1
    assert late == []


def test_a_run_remembers_a_bounded_number_of_articles_not_due_and_counts_each_once(
    tmp_path, monkeypatch
):
    """A steady run of a large site finds most of its articles not due: the run remembers only
    the latest ``_WAITING_CACHE`` of them (one it forgot is looked up again when linked again),
    and counts each once however often it is found."""
    monkeypatch.setattr("pipeline.recrawl._WAITING_CACHE", 4)
    urls = [f"http://s.test/a{n}/" for n in range(10)]
    with Store(tmp_path) as store:
        policy = not_due_policy(store, urls)
        asked: list[str] = []
        lookup = store.recrawl.refetch_times
        store.recrawl.refetch_times = lambda found: asked.extend(found) or lookup(found)
        links = [Target(url=u, site="s") for u in urls]
        assert policy.due(links) == []
        assert asked == urls
        assert set().union(*policy.waiting()) == set(urls[-4:])
        asked.clear()
        assert policy.due(links) == []  # the last four found are remembered, the rest asked for
        assert asked == urls[:-4]
        assert policy.skipped() == {"not_due": 10}
        policy.close()
        assert policy.skipped() == {"not_due": 10}
