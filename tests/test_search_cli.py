"""`crawldex search` over the crawled demo site: every query form and option, exact hits.

Expected hits are computed from the demo site's truth (``DemoSite.expected_articles`` and each
article's made-up ``keyword``, found in its text only), never written down. Where the answer
depends on stemming, the truth text goes through the index's own analyzers.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from index.schema import english_analyzer, name_analyzer
from pipeline.cli import cli
from pipeline.cli.render import CSV_FIELDS
from pipeline.demo import DemoServer
from pipeline.export import ArticleOut
from pipeline.run import export_records, run_once
from pipeline.store import record_id
from tests.conftest import crawl_settings


@pytest.fixture(scope="module")
def demo(demo_site, tmp_path_factory) -> dict[str, Any]:
    """The demo site crawled twice: run 1 without its newest article, run 2 with it."""
    work = tmp_path_factory.mktemp("search-cli")
    newest = demo_site.articles[0]
    with DemoServer(demo_site.without_article(newest.slug)) as server:
        settings = crawl_settings(work / "data", server.base_url)
        assert run_once(settings).status == "finished"
        server.set_site(demo_site)
        assert run_once(settings).changes["article_new"] == 1
        base = server.base_url
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump({"storage": {"dir": str(work / "data")}}), encoding="utf-8")
    export_records(settings, work / "records.jsonl", kind="article")
    lines = (work / "records.jsonl").read_text(encoding="utf-8").splitlines()
    truth = {}
    for article, expected in zip(
        demo_site.articles, demo_site.expected_articles(base), strict=True
    ):
        expected["id"] = record_id(expected["url"])
        expected["keyword"] = article.keyword
        expected["utc"] = datetime.fromisoformat(expected["published_at"]).astimezone(UTC)
        truth[expected["id"]] = expected
    return {
        "config": config,
        "truth": truth,
        "newest": record_id(base + newest.path),
        "records": {r["id"]: r for r in map(json.loads, lines)},
    }


def search(demo: dict[str, Any], *args: str) -> Any:
    return CliRunner().invoke(
        cli, ["--config", str(demo["config"]), "search", *args], catch_exceptions=False
    )


def hits(demo: dict[str, Any], *args: str) -> list[dict[str, Any]]:
    limit = () if "--limit" in args else ("--limit", "1000")
    result = search(demo, *args, "--json", *limit)
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def hit_ids(demo: dict[str, Any], *args: str) -> set[str]:
    return {h["id"] for h in hits(demo, *args)}


def where(demo: dict[str, Any], keep: Any) -> set[str]:
    return {i for i, a in demo["truth"].items() if keep(a)}


def terms(article: dict[str, Any]) -> set[str]:
    """Index terms of an article's free-text fields, through the index's analyzers."""
    english = english_analyzer()
    found = {t.text for f in ("title", "summary", "text") for t in english(article[f] or "")}
    found |= {t.text for t in name_analyzer()(article["author"] or "")}
    return found | {t.lower() for t in article["topics"]}


def nth(demo: dict[str, Any], n: int) -> dict[str, Any]:
    return list(demo["truth"].values())[n]


def test_single_word_finds_only_its_article(demo):
    a = nth(demo, 3)
    assert hit_ids(demo, a["keyword"]) == {a["id"]}
    assert hit_ids(demo, a["keyword"].upper()) == {a["id"]}


def test_words_are_anded_and_or_widens(demo):
    a, b = nth(demo, 5), nth(demo, 9)
    title_word = max(re.findall(r"[A-Za-z]{5,}", a["title"]), key=len)
    assert hit_ids(demo, f"{a['keyword']} {title_word}") == {a["id"]}
    assert hit_ids(demo, f"{a['keyword']} {b['keyword']}") == set()
    assert hit_ids(demo, f"{a['keyword']} OR {b['keyword']}") == {a["id"], b["id"]}


def test_not_excludes(demo):
    a, b, c = nth(demo, 1), nth(demo, 2), nth(demo, 4)
    either = f"({a['keyword']} OR {b['keyword']} OR {c['keyword']})"
    assert hit_ids(demo, f"{either} NOT {b['keyword']}") == {a["id"], c["id"]}
    assert hit_ids(demo, f"{either} -{c['keyword']}") == {a["id"], b["id"]}


def test_phrase_needs_the_words_in_order(demo):
    for a in demo["truth"].values():
        match = re.search(rf"\b{a['keyword']} ([a-z]{{6,}})\b", a["text"])
        if match:
            break
    else:
        pytest.fail("no keyword followed by a long word in the demo text")
    assert hit_ids(demo, f'"{a["keyword"]} {match.group(1)}"') == {a["id"]}
    assert hit_ids(demo, f'"{match.group(1)} {a["keyword"]}"') == set()


def test_field_queries(demo):
    a = nth(demo, 7)
    assert hit_ids(demo, f"text:{a['keyword']}") == {a["id"]}
    assert hit_ids(demo, f"title:{a['keyword']}") == set()  # keywords are never in titles
    topic = a["topics"][0]
    assert hit_ids(demo, f'topic:"{topic}"') == where(demo, lambda x: topic in x["topics"])
    author = a["author"]
    assert hit_ids(demo, f'author:"{author}"') == where(demo, lambda x: x["author"] == author)
    word = max(re.findall(r"[A-Za-z]{6,}", a["title"]), key=len)
    stem = next(t.text for t in english_analyzer()(word))
    expected = where(demo, lambda x: stem in {t.text for t in english_analyzer()(x["title"])})
    assert hit_ids(demo, f"title:{word}") == expected


def test_prefix_matches_term_starts(demo):
    prefix = nth(demo, 11)["keyword"][:4].lower()
    expected = where(demo, lambda x: any(t.startswith(prefix) for t in terms(x)))
    assert len(expected) >= 1
    assert hit_ids(demo, f"{prefix}*") == expected


def _edits(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def test_fuzzy_forgives_one_typo(demo):
    keyword = nth(demo, 13)["keyword"].lower()
    typo = keyword[:-2] + ("x" if keyword[-2] != "x" else "y") + keyword[-1]
    stem = next(t.text for t in english_analyzer()(typo))
    expected = where(demo, lambda x: any(_edits(stem, t) <= 1 for t in terms(x)))
    assert nth(demo, 13)["id"] in expected
    assert hit_ids(demo, f"{typo}~") == expected
    assert nth(demo, 13)["id"] not in hit_ids(demo, typo)


def test_date_and_comment_ranges(demo):
    dates = sorted(a["utc"].date() for a in demo["truth"].values())
    low, high = dates[40], dates[90]
    expected = where(demo, lambda x: low <= x["utc"].date() <= high)
    assert hit_ids(demo, f"published:[{low} TO {high}]") == expected
    many = where(demo, lambda x: (x["comment_count"] or 0) > 10)
    assert hit_ids(demo, "comments:>10") == many
    some = where(demo, lambda x: x["comment_count"] is not None and 5 <= x["comment_count"] <= 20)
    assert hit_ids(demo, "comments:[5 TO 20]") == some


def test_star_with_filters_lists_every_match(demo):
    everything = set(demo["truth"])
    assert hit_ids(demo, "*") == everything
    assert hit_ids(demo, "*", "--site", "demo") == everything
    assert hit_ids(demo, "*", "--site", "elsewhere") == set()
    topic = nth(demo, 0)["topics"][0]
    by_topic = where(demo, lambda x: topic in x["topics"])
    assert hit_ids(demo, "*", "--topic", topic.upper()) == by_topic
    since, until = date(2025, 6, 1), date(2025, 8, 31)
    dated = where(demo, lambda x: since <= x["utc"].date() <= until)
    assert hit_ids(demo, "", "--since", str(since), "--until", str(until)) == dated
    commented = where(demo, lambda x: (x["comment_count"] or 0) >= 12)
    assert hit_ids(demo, "*", "--min-comments", "12") == commented


def test_sorting_and_paging(demo):
    articles = list(demo["truth"].values())
    newest = sorted(articles, key=lambda x: x["utc"], reverse=True)
    page2 = hits(demo, "*", "--sort", "date", "--limit", "10", "--page", "2")
    assert [h["id"] for h in page2] == [a["id"] for a in newest[10:20]]
    assert all(h["score"] is None for h in page2)
    by_comments = sorted(articles, key=lambda x: (x["comment_count"] or -1, x["utc"]), reverse=True)
    top = hits(demo, "*", "--sort", "comments")[:10]
    assert [h["id"] for h in top] == [a["id"] for a in by_comments[:10]]
    result = search(demo, "*", "--limit", "7", "--page", "3", "--json")
    assert len(result.stdout.splitlines()) == 7


def test_relevance_puts_title_matches_first(demo):
    a = nth(demo, 20)
    word = max(re.findall(r"[A-Za-z]{7,}", a["title"]), key=len)
    ranked = hits(demo, word)
    scores = [h["score"] for h in ranked]
    assert scores == sorted(scores, reverse=True)
    stem = next(t.text for t in english_analyzer()(word))
    in_title = where(demo, lambda x: stem in {t.text for t in english_analyzer()(x["title"])})
    assert {h["id"] for h in ranked[: len(in_title)]} == in_title


def test_new_since_a_run_or_a_date(demo):
    assert hit_ids(demo, "*", "--new-since", "2") == {demo["newest"]}
    assert hit_ids(demo, "*", "--new-since", "1") == set(demo["truth"])
    assert hit_ids(demo, "*", "--new-since", "2000-01-01") == set(demo["truth"])
    none = search(demo, "*", "--new-since", "2999-01-01T00:00")
    assert (none.exit_code, none.stdout) == (0, "")
    assert "No articles match" in none.stderr
    unknown = search(demo, "*", "--new-since", "99")
    assert unknown.exit_code == 2
    assert "there is no run 99" in unknown.stderr
    assert search(demo, "*", "--new-since", "yesterday").exit_code == 2


def test_json_lines_are_the_record_contract_plus_score_and_snippet(demo):
    a = nth(demo, 30)
    [hit] = hits(demo, a["keyword"])
    assert set(hit) == set(ArticleOut.model_fields) | {"score", "snippet"}
    assert {k: v for k, v in hit.items() if k not in ("score", "snippet")} == demo["records"][
        a["id"]
    ]
    assert hit["score"] > 0
    assert a["keyword"] in hit["snippet"]
    assert "[[" not in hit["snippet"]


def test_csv_is_flat_with_a_fixed_header(demo):
    a = nth(demo, 31)
    result = search(demo, f"{a['keyword']} OR {nth(demo, 32)['keyword']}", "--csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert result.stdout.splitlines()[0].split(",") == CSV_FIELDS
    assert len(rows) == 2
    row = next(r for r in rows if r["id"] == a["id"])
    record = demo["records"][a["id"]]
    assert row["topics"] == "; ".join(record["topics"])
    assert row["comment_count"] == (
        "" if record["comment_count"] is None else str(record["comment_count"])
    )
    assert row["title"] == record["title"]


def test_facets_count_topics_and_months(demo):
    result = search(demo, "*", "--facets")
    assert result.exit_code == 0
    tables = result.stdout.split("hits by ")
    topic_rows = dict(re.findall(r"^\s*(\S.*?)\s+(\d+)\s*$", tables[1], re.M))
    month_rows = dict(re.findall(r"^\s*(\d{4}-\d{2})\s+(\d+)\s*$", tables[2], re.M))
    topics = Counter(t.lower() for a in demo["truth"].values() for t in a["topics"])
    assert {k: int(v) for k, v in topic_rows.items()} == dict(topics)
    months = Counter(a["utc"].strftime("%Y-%m") for a in demo["truth"].values())
    assert {k: int(v) for k, v in month_rows.items()} == dict(months)


def test_piped_output_is_a_plain_table_and_no_hits_is_a_clear_message(demo):
    a = nth(demo, 40)
    result = search(demo, a["keyword"])
    assert "\x1b[" not in result.stdout
    assert a["title"] in result.stdout
    assert a["url"] in result.stdout
    assert a["keyword"] in result.stdout  # the snippet, without [[marks]]
    assert "[[" not in result.stdout
    nothing = search(demo, "zzqqxxnothing")
    assert (nothing.exit_code, nothing.stdout) == (0, "")
    assert "No articles match 'zzqqxxnothing'" in nothing.stderr


def test_syntax_error_is_one_line_with_where_and_a_hint(demo):
    result = search(demo, "comments:>")
    assert result.exit_code == 2
    assert "e.g. comments:>10" in result.stderr  # the hint, in the one error line
    assert "Traceback" not in result.stderr
