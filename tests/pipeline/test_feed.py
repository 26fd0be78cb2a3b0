"""The change feed, tabular exports and history over three runs of a changing site."""

from __future__ import annotations

import csv
import itertools
import json
import re
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipeline.demo import DemoServer, RequestInfo, Response, render_path
from pipeline.feed import LIST_SEPARATOR, export_file, export_history_file
from pipeline.run import run_once
from tests.conftest import crawl_settings


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def three_runs(small_site, tmp_path_factory) -> dict[str, Any]:
    """Run 1: the site. Run 2: a new article, a changed comment count, a changed title.
    Run 3: an article answers 404 (still listed, so the crawler sees it go)."""
    data_dir = tmp_path_factory.mktemp("feed")
    gone_paths: set[str] = set()

    def route(request: RequestInfo) -> Response:
        if request.path in gone_paths:
            return Response(404, "text/html; charset=utf-8", b"<h1>Not found</h1>")
        found = render_path(server.site, request.base_url, request.path)
        assert found is not None
        if request.path == "/sitemap.xml" and gone_paths:  # a deleted post leaves the sitemap
            body = found.body.decode()
            for path in gone_paths:
                body = re.sub(
                    rf"<url>\s*<loc>[^<]*{re.escape(path)}</loc>.*?</url>", "", body, flags=re.S
                )
            found = replace(found, body=body.encode())
        return found

    server = DemoServer(small_site, routes={"/": route})
    with server:
        settings = crawl_settings(data_dir, server.base_url)
        settings = settings.model_copy(
            update={
                "export": settings.export.model_copy(
                    update={"feed_formats": ["jsonl", "csv", "parquet"]}
                )
            }
        )
        base = server.base_url
        first = run_once(settings)

        a, b, c = small_site.articles[3], small_site.articles[5], small_site.articles[7]
        new_count = (b.comment_count or 0) + 7
        added = replace(
            a, slug="brand-new-article", path="/2025/11/brand-new-article/", post_id=99_999
        )
        site2 = (
            small_site.with_article(added)
            .with_article(replace(b, comment_count=new_count))
            # a retitled post gets a new modified date, so a newer sitemap lastmod (the demo's
            # dates are anchored in 2025; the crawler's fetch times are real ones)
            .with_article(
                replace(c, title="A Retitled Article About Nothing", updated=datetime.now(UTC))
            )
        )
        server.set_site(site2)
        second = run_once(settings)

        d = small_site.articles[9]
        gone_paths.add(d.path)
        third = run_once(settings)
        full = data_dir / "full.jsonl"
        export_file(settings, full)
        return {
            "settings": settings,
            "base": base,
            "reports": [first, second, third],
            "added": base + added.path,
            "count_changed": (base + b.path, b.comment_count, new_count),
            "retitled": (
                base + c.path,
                small_site.expected_articles(base)[7]["title"],
                "A Retitled Article About Nothing",
            ),
            "gone": base + d.path,
            "full": _read_jsonl(full),
        }


def _manifests(settings) -> list[dict[str, Any]]:
    folder = settings.export_dir
    return [json.loads(p.read_text()) for p in sorted(folder.glob("changes-*.json"))]


def test_each_run_writes_a_manifest_chained_by_cursor(three_runs):
    manifests = _manifests(three_runs["settings"])
    runs = three_runs["reports"]
    assert [m["run_id"] for m in manifests] == [r.run_id for r in runs]
    assert manifests[0]["since"] == 0
    for before, after in itertools.pairwise(manifests):
        assert after["since"] == before["cursor"]
    latest = json.loads((three_runs["settings"].export_dir / "latest.json").read_text())
    assert latest == manifests[-1]
    assert [f["format"] for f in manifests[1]["files"]] == ["jsonl", "csv", "parquet"]
    assert runs[2].feed["cursor"] == manifests[-1]["cursor"]


def test_incremental_files_hold_exactly_what_changed(three_runs):
    settings = three_runs["settings"]
    manifests = _manifests(settings)
    second = _read_jsonl(settings.export_dir / manifests[1]["files"][0]["path"])
    by_url = {r["url"]: r for r in second if r["kind"] == "article"}
    url, _old, new = three_runs["count_changed"]
    assert by_url[url]["comment_count"] == new
    assert three_runs["added"] in by_url
    assert by_url[three_runs["retitled"][0]]["title"] == three_runs["retitled"][2]
    assert manifests[1]["counts"]["article"] == len(by_url)
    assert len(by_url) < len(three_runs["full"]) // 2  # incremental, not everything again

    third = _read_jsonl(settings.export_dir / manifests[2]["files"][0]["path"])
    tomb = [r for r in third if r["url"] == three_runs["gone"]]
    assert tomb
    assert tomb[0]["status"] == "gone"
    assert manifests[2]["counts"]["gone"] == 1


@pytest.mark.parametrize("start", [0, 1, 2])
def test_a_consumer_resuming_from_any_cursor_ends_with_the_store(three_runs, start):
    settings = three_runs["settings"]
    manifests = _manifests(settings)
    # State the consumer had at its cursor: the full export up to that point is what it saw.
    cursor = 0 if start == 0 else manifests[start - 1]["cursor"]
    at_cursor: dict[str, dict[str, Any]] = {}
    for manifest in manifests:
        if manifest["cursor"] <= cursor:
            at_cursor.update(_records_by_id(settings, manifest))
    # It missed the later runs and catches up from the manifests after its cursor...
    caught_up = dict(at_cursor)
    for manifest in manifests:
        if manifest["since"] >= cursor:
            caught_up.update(_records_by_id(settings, manifest))
    final = _content(three_runs["full"])
    assert _content(caught_up.values()) == final
    # ...or asks the store for everything after its cursor: the same result.
    since = settings.export_dir / f"since-{cursor}.jsonl"
    _counts, next_cursor = export_file(settings, since, since=cursor)
    via_since = {**at_cursor, **{r["id"]: r for r in _read_jsonl(since)}}
    assert _content(via_since.values()) == final
    assert next_cursor == manifests[-1]["cursor"]


def _content(records) -> dict[str, dict[str, Any]]:
    """Records by id without the bookkeeping times that move without a change (no new seq)."""
    volatile = ("last_seen_at", "fetched_at")
    return {r["id"]: {k: v for k, v in r.items() if k not in volatile} for r in records}


def _records_by_id(settings, manifest) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in _read_jsonl(settings.export_dir / manifest["files"][0]["path"])}


def test_parquet_matches_jsonl_and_is_typed(three_runs, tmp_path):
    settings = three_runs["settings"]
    out = tmp_path / "all.parquet"
    export_file(settings, out, fmt="parquet")
    table = pq.read_table(out)
    assert str(table.schema.field("first_seen_at").type) == "timestamp[us, tz=UTC]"
    assert str(table.schema.field("published_date").type) == "date32[day]"
    assert str(table.schema.field("topics").type) in ("list<item: string>", "list<element: string>")
    rows = table.to_pylist()
    expected = three_runs["full"]
    assert [r["id"] for r in rows] == [r["id"] for r in expected]
    for row, record in zip(rows, expected, strict=True):
        for key, value in record.items():
            got = row[key]
            if key.endswith("_seen_at") or (key == "fetched_at" and value):
                assert got == datetime.fromisoformat(value), key
            else:
                assert got == value, (record["id"], key)
        published = record.get("published_at")
        assert row["published_date"] == (date.fromisoformat(published[:10]) if published else None)


def test_csv_flattens_lists_predictably(three_runs, tmp_path):
    settings = three_runs["settings"]
    out = tmp_path / "articles.csv"
    export_file(settings, out, fmt="csv", kind="article")
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    expected = [r for r in three_runs["full"] if r["kind"] == "article"]
    assert len(rows) == len(expected)
    for row, record in zip(rows, expected, strict=True):
        assert row["id"] == record["id"]
        assert row["topics"].split(LIST_SEPARATOR) == record["topics"]
        assert row["comment_count"] == (
            "" if record["comment_count"] is None else str(record["comment_count"])
        )
        assert row["text"] == (record["text"] or "")


def test_history_rows_equal_the_changes_made(three_runs, tmp_path):
    out = tmp_path / "history.jsonl"
    export_history_file(three_runs["settings"], out)
    rows = _read_jsonl(out)
    by_url = {
        three_runs["count_changed"][0]: "b",
        three_runs["retitled"][0]: "c",
        three_runs["gone"]: "d",
    }
    got = {(by_url.get(r["url"], r["url"]), r["field"], r["old"], r["new"]) for r in rows}
    _url, old_count, new_count = three_runs["count_changed"]
    _url, old_title, new_title = three_runs["retitled"]
    assert got == {
        ("b", "comment_count", old_count, new_count),
        ("c", "title", old_title, new_title),
        ("d", "status", "active", "gone"),
    }
    assert len(rows) == 3
    assert all(r["observed_at"] and r["article_id"] for r in rows)
