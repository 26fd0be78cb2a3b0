"""The crawldex command, driven through click's CliRunner against loopback servers."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from pipeline.cli import cli
from tests.faults import FaultServer, html


def run(*args: str, **kwargs):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, **kwargs)


@pytest.fixture
def config(tmp_path, small_server) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "storage": {"dir": "data"},
                "crawl": {"delay": 0, "concurrency": 8, "per_host_concurrency": 8, "retries": 0},
                "sites": [
                    {
                        "name": "demo",
                        "start_urls": [f"{small_server.base_url}/"],
                        "timezone": "Europe/London",
                    }
                ],
            }
        )
    )
    return path


def test_config_error_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("crawl:\n  dely: 1\n")
    result = run("--config", str(bad), "crawl")
    assert result.exit_code == 2
    assert "unknown key 'crawl.dely'" in result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_config_via_environment_variable(tmp_path, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_text("crawl:\n  dely: 1\n")
    monkeypatch.setenv("CRAWLDEX_CONFIG", str(bad))
    assert run("config", "check").exit_code == 2


def test_crawl_then_search_export_status(config, small_site, small_server, tmp_path):
    result = run("--config", str(config), "crawl", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "finished"
    assert report["changes"]["article_new"] == len(small_site.articles)

    article = small_site.expected_articles(small_server.base_url)[0]
    word = max(article["title"].split(), key=len).strip(":,.?!’'")
    found = run("--config", str(config), "search", f"title:{word}", "--json", "--limit", "50")
    assert found.exit_code == 0
    hits = [json.loads(line) for line in found.stdout.splitlines()]
    assert article["url"] in {h["url"] for h in hits}
    assert all({"title", "url", "score", "snippet"} <= set(h) for h in hits)

    as_csv = run("--config", str(config), "search", f"title:{word}", "--csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert article["url"] in {r["url"] for r in rows}

    table = run("--config", str(config), "search", f"title:{word}")
    assert article["title"][:20] in table.stdout

    out = tmp_path / "records.jsonl"
    exported = run("--config", str(config), "export", "--format", "jsonl", "--out", str(out))
    assert exported.exit_code == 0
    lines = out.read_text().splitlines()
    assert len(lines) == len(small_site.articles) + len(small_site.topics)

    status = run("--config", str(config), "status", "--json")
    info = json.loads(status.stdout)
    assert info["counts"]["articles_active"] == len(small_site.articles)
    assert info["runs"][0]["status"] == "finished"


def test_search_syntax_error_says_where_and_exits_2(config):
    run("--config", str(config), "crawl")
    result = run("--config", str(config), "search", 'title:"unclosed')
    assert result.exit_code == 2
    assert "Error:" in result.stderr
    assert "close the phrase" in result.stderr  # the hint, said once
    assert "Traceback" not in result.stderr


def test_search_before_any_crawl_is_a_clear_empty_answer(config):
    result = run("--config", str(config), "search", "anything")
    assert result.exit_code == 0
    assert "No articles match" in result.stderr


def test_status_before_any_crawl_says_what_to_do(config):
    result = run("--config", str(config), "status")
    assert result.exit_code == 2
    assert "crawldex crawl" in result.stderr


def test_schema_prints_json_schema():
    result = run("schema")
    schema = json.loads(result.stdout)
    assert set(schema["$defs"]) == {"ArticleOut", "TopicOut"}


def test_extract_a_saved_page(tmp_path, small_site, small_server):
    import urllib.request

    article = small_site.expected_articles(small_server.base_url)[0]
    page = tmp_path / "page.html"
    with urllib.request.urlopen(article["url"]) as response:
        page.write_bytes(response.read())
    result = run("extract", str(page), "--url", article["url"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["kind"] == "article"
    assert data["record"]["title"] == article["title"]
    assert data["record"]["published_at"] == article["published_at"]
    # the crawl leaves an article's link texts unread; what a user inspects has them
    assert any(link["text"] for link in data["extracted"]["links"])


def test_extract_many_files_as_json_lines(tmp_path):
    (tmp_path / "a.html").write_text("<html><body><h1>Hello</h1><p>World</p></body></html>")
    (tmp_path / "b.html").write_bytes(b"\xff\xfe garbage <<<")
    result = run("extract", str(tmp_path), "--json")
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["source"]).name for r in rows] == ["a.html", "b.html"]


def test_crawl_with_no_sites_explains(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("storage:\n  dir: data\n")
    result = run("--config", str(path), "crawl")
    assert result.exit_code == 2
    assert "no sites configured" in result.stderr


def test_demo_runs_end_to_end_and_leaves_a_usable_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("demo", "--dir", "demo-data", "--articles", "30")
    assert result.exit_code == 0, result.stderr
    assert "Sample search" in result.stdout
    assert "crawldex --config" in result.stdout
    cfg = tmp_path / "demo-data" / "config.yaml"
    records = (tmp_path / "demo-data" / "exports" / "records.jsonl").read_text().splitlines()
    assert sum(json.loads(r)["kind"] == "article" for r in records) == 30
    again = run("--config", str(cfg), "search", "*", "--json", "--limit", "100")
    assert len(again.stdout.splitlines()) == 30
    # the search the README suggests trying on the demo finds something
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    suggested = re.search(r'crawldex-demo/config\.yaml search "([^"]+)"', readme)
    assert suggested is not None
    found = run("--config", str(cfg), "search", suggested.group(1), "--json")
    assert found.exit_code == 0, found.stderr
    assert found.stdout.strip(), f"the README's search {suggested.group(1)!r} finds nothing"


def test_status_shows_why_pages_failed_or_were_skipped(tmp_path):
    routes = {
        "/robots.txt": lambda hit, reply: reply.send(
            200, b"User-agent: *\nDisallow: /private\n", content_type="text/plain"
        ),
        "/": lambda hit, reply: reply.send(
            200, html('<a href="/missing">m</a> <a href="/private">p</a>')
        ),
    }
    with FaultServer(routes) as server:
        path = tmp_path / "config.yaml"
        site = {"name": "faulty", "start_urls": [server.url("/")]}
        path.write_text(
            yaml.safe_dump({"storage": {"dir": "data"}, "crawl": {"delay": 0}, "sites": [site]})
        )
        crawled = run("--config", str(path), "crawl")
    assert crawled.exit_code == 1  # some pages failed
    result = run("--config", str(path), "status", env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "failed: http_404 1; skipped: robots 1" in result.stdout
