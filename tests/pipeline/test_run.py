"""The whole pipeline over the demo site: every record found and right, recrawls idempotent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import index as search_index
from pipeline.demo import DemoServer
from pipeline.export import json_schema
from pipeline.normalize import word_count
from pipeline.run import RunReport, export_records, run_once, store_status
from pipeline.store import SqliteFrontierQueue, Store
from pipeline.sync import index_dir
from tests.conftest import crawl_settings

ARTICLE_FIELDS = (
    "url",
    "title",
    "published_at",
    "updated_at",
    "author",
    "comment_count",
    "summary",
    "text",
    "topics",
    "language",
)


@pytest.fixture(scope="module")
def crawled(demo_site, tmp_path_factory) -> dict[str, Any]:
    """The demo site crawled once, then again (unchanged), with exports after each."""
    data_dir = tmp_path_factory.mktemp("e2e")
    with DemoServer(demo_site) as server:
        settings = crawl_settings(data_dir, server.base_url)
        first = run_once(settings)
        first_requests = list(server.requests)
        export_records(settings, data_dir / "first.jsonl")
        server.clear_requests()
        second = run_once(settings)
        second_requests = list(server.requests)
        export_records(settings, data_dir / "second.jsonl")
        return {
            "base": server.base_url,
            "settings": settings,
            "first": first,
            "second": second,
            "first_requests": first_requests,
            "second_requests": second_requests,
            "first_records": _read(data_dir / "first.jsonl"),
            "second_records": _read(data_dir / "second.jsonl"),
        }


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_first_run_finishes_without_failures(crawled):
    report: RunReport = crawled["first"]
    assert report.status == "finished"
    assert report.failed == {}
    assert report.errors == 0
    assert report.completed_sites == ["demo"]


def test_every_article_is_found_with_every_field_right(crawled, demo_site):
    expected = {a["url"]: a for a in demo_site.expected_articles(crawled["base"])}
    got = {r["url"]: r for r in crawled["first_records"] if r["kind"] == "article"}
    assert set(got) == set(expected)
    for url, truth in expected.items():
        record = got[url]
        mismatches = {f: (record[f], truth[f]) for f in ARTICLE_FIELDS if record[f] != truth[f]}
        assert not mismatches, f"{url}: {mismatches}"
        assert record["word_count"] == word_count(truth["text"]) > 50
        assert record["fetched_at"] is not None
        assert record["status"] == "active"


def test_every_topic_is_found_with_its_cards_in_order(crawled, demo_site):
    expected = {t["url"]: t for t in demo_site.expected_topics(crawled["base"])}
    got = {r["url"]: r for r in crawled["first_records"] if r["kind"] == "topic"}
    assert set(got) == set(expected)
    for url, truth in expected.items():
        for field in ("name", "description", "article_urls", "article_count"):
            assert got[url][field] == truth[field], f"{url} {field}"


def test_articles_record_every_topic_page_that_listed_them(crawled, demo_site):
    topics_of = {a["url"]: set(a["topics"]) for a in demo_site.expected_articles(crawled["base"])}
    for record in crawled["first_records"]:
        if record["kind"] == "article":
            assert set(record["listed_in"]) == topics_of[record["url"]]


def test_the_crawler_is_polite(crawled):
    paths = [r.path for r in crawled["first_requests"]]
    assert not [p for p in paths if p.startswith("/search")], "robots.txt disallows /search"
    assert paths.count("/robots.txt") == 1
    assert not [p for p in paths if "utm_" in p], "tracking parameters are stripped before fetching"
    assert not [p for p in paths if p.startswith("/img/")], "images are not links"
    assert len(paths) == len(set(paths)), "no page is fetched twice in one pass"
    agents = {r.headers.get("User-Agent") for r in crawled["first_requests"]}
    assert agents == {crawled["settings"].crawl.user_agent}


def test_second_crawl_changes_nothing(crawled):
    second: RunReport = crawled["second"]
    assert second.status == "finished"
    assert second.failed == {}
    assert second.changes == {}
    strip = ("last_seen_at", "fetched_at")
    before = [{k: v for k, v in r.items() if k not in strip} for r in crawled["first_records"]]
    after = [{k: v for k, v in r.items() if k not in strip} for r in crawled["second_records"]]
    assert sorted(before, key=lambda r: r["id"]) == sorted(after, key=lambda r: r["id"])


def test_second_crawl_uses_conditional_get(crawled):
    second: RunReport = crawled["second"]
    page_requests = [
        r for r in crawled["second_requests"] if r.path not in ("/robots.txt", "/sitemap.xml")
    ]
    assert all("If-None-Match" in r.headers for r in page_requests)
    assert second.not_modified == len(page_requests)
    assert second.pages_fetched == 0
    assert second.bytes == 0


def test_unchanged_articles_are_skipped_on_the_sitemaps_word(small_site, tmp_path):
    """With the default recrawl policy, an article whose sitemap lastmod is not newer than our
    fetch, and which is not due, is not requested again; its record is still seen."""
    with DemoServer(small_site) as server:
        settings = crawl_settings(tmp_path, server.base_url, full_walk_every="7d", refetch_min="1h")
        run_once(settings)
        before = {r["id"]: r["last_seen_at"] for r in store_articles(settings)}
        server.clear_requests()
        second = run_once(settings)
        paths = [r.path for r in server.requests]
    assert second.skipped["sitemap_unchanged"] >= len(small_site.articles)  # + home, about, ...
    assert paths.count("/sitemap.xml") == 1
    assert not [p for p in paths if p in {a.path for a in small_site.articles}]
    for record in store_articles(settings):
        assert record["last_seen_at"] > before[record["id"]], "still seen"


def store_articles(settings):
    with Store(settings.storage.dir) as store:
        return list(store.records.iter_articles())


def test_export_validates_against_the_schema(crawled):
    validator = jsonschema.Draft202012Validator(
        json_schema(), format_checker=jsonschema.FormatChecker()
    )
    for record in crawled["first_records"]:
        validator.validate(record)
    assert {r["schema_version"] for r in crawled["first_records"]} == {1}


def test_search_finds_by_title_word_and_by_text_only_word(crawled, demo_site):
    path = index_dir(crawled["settings"])
    article = demo_site.expected_articles(crawled["base"])[0]
    title_word = max(article["title"].split(), key=len).strip(":,.?!’'")
    hits = search_index.search(path, f'title:"{title_word}"', limit=50)
    assert article["url"] in {h.url for h in hits.hits}
    title_words = {w.lower().strip(":,.?!’'") for w in article["title"].split()}
    text_only = next(
        w
        for w in article["text"].split()
        if w.isalpha() and len(w) > 6 and w.lower() not in title_words
    )
    hits = search_index.search(path, text_only, limit=200)
    assert article["url"] in {h.url for h in hits.hits}


def test_index_agrees_with_the_store(crawled):
    settings = crawled["settings"]
    info = store_status(settings)
    assert search_index.doc_count(index_dir(settings)) == info["counts"]["articles_active"]
    assert info["index_seq"] == info["store_seq"]


def test_first_run_counts_each_record_once(crawled, demo_site):
    assert crawled["first"].changes == {
        "article_new": len(demo_site.articles),
        "topic_new": len(demo_site.topics),
    }


def test_a_page_whose_storing_fails_half_way_is_undone_alone(small_server, tmp_path, monkeypatch):
    """Pages are committed a group at a time: the failed page's record writes are rolled back
    (its savepoint), the pages stored beside it in the same group are kept."""
    victim = small_server.base_url + small_server.site.articles[3].path
    real_complete = SqliteFrontierQueue.complete

    def complete(self, url, state, **kwargs):
        if url == victim and state == "done":  # after its record was written
            raise RuntimeError("the disk hiccupped")
        return real_complete(self, url, state, **kwargs)

    monkeypatch.setattr(SqliteFrontierQueue, "complete", complete)
    settings = crawl_settings(tmp_path, small_server.base_url)
    report = run_once(settings)
    assert (report.errors, report.failed) == (1, {"error": 1})
    export_records(settings, tmp_path / "out.jsonl")
    records = {r["url"]: r for r in _read(tmp_path / "out.jsonl") if r["kind"] == "article"}
    assert len(records) == len(small_server.site.articles)  # the victim from its cards
    assert records[victim]["text"] is None, "the failed page's own fields were rolled back"
    assert all(r["text"] for url, r in records.items() if url != victim)
    with Store(settings.storage.dir) as store:
        assert store.queue.page_states([victim])[victim].fetched_at is None
