"""Drift alarms on a fixture redesign, and watches' new matches after runs."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime

from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.demo import DemoServer, RequestInfo, Response, render_path
from pipeline.postrun import unattended_status
from pipeline.run import run_once
from pipeline.watch import list_watches, save_watch, watch_file
from tests.conftest import crawl_settings

# What a theme change might drop: every date, comment count and structured data block.
_REDESIGN = re.compile(
    rb'<time[^>]*>.*?</time>|<script type="application/ld\+json">.*?</script>'
    rb'|<meta property="article:[^>]*>|<li class="(posted-on|comments-count)">.*?</li>'
    rb'|<span class="comments-link">.*?</span>|<section id="comments".*?</section>',
    re.DOTALL,
)


def test_a_redesign_that_drops_dates_and_counts_raises_a_drift_warning(small_site, tmp_path):
    redesigned = {"on": False}

    def route(request: RequestInfo) -> Response:
        found = render_path(server.site, request.base_url, request.path)
        assert found is not None
        if not redesigned["on"] or not found.content_type.startswith("text/html"):
            return found
        return replace(found, body=_REDESIGN.sub(b"", found.body))

    server = DemoServer(small_site, routes={"/": route})
    with server:
        # every run re-reads the article pages (no sitemap lastmod trust), as a site's
        # newly published or changed pages would be after a redesign
        settings = crawl_settings(tmp_path, server.base_url, use_sitemaps=False)
        first = run_once(settings)
        second = run_once(settings)
        assert first.drift == second.drift == []
        redesigned["on"] = True
        third = run_once(settings)
    warned = {w["field"] for w in third.drift}
    assert "comment_count" in warned
    assert "published_at" in warned
    assert "title" not in warned
    assert all(w["baseline"] - w["share"] > 0.3 for w in third.drift)
    assert {w["field"] for w in unattended_status(settings)["drift"]} == warned

    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps({"storage": {"dir": str(tmp_path)}, "sites": [settings.sites[0].model_dump()]})
    )
    check = CliRunner().invoke(cli, ["--config", str(config), "status", "--check"])
    assert check.exit_code == 1
    assert "drift warning" in check.output


def test_watches_report_only_new_matches_and_append_them(small_site, tmp_path):
    keyword_article = small_site.articles[4]
    without = small_site.without_article(keyword_article.slug)
    with DemoServer(without) as server:
        settings = crawl_settings(tmp_path, server.base_url)
        run_once(settings)
        # the watch matches the article that carries this made-up word, not yet published
        now = datetime.now(UTC)
        assert save_watch(settings, "kw", keyword_article.keyword, now) == 0
        assert save_watch(settings, "all", "*", now) == len(without.articles)
        quiet = run_once(settings)
        assert quiet.watches == {}
        server.set_site(small_site)
        report = run_once(settings)
    url = server.base_url + keyword_article.path
    assert [h["url"] for h in report.watches["kw"]] == [url]
    assert [h["url"] for h in report.watches["all"]] == [url]
    lines = watch_file(settings, "kw").read_text().splitlines()
    assert [json.loads(line)["url"] for line in lines] == [url]
    assert {w["name"]: w["matches"] for w in list_watches(settings)} == {
        "all": len(small_site.articles),
        "kw": 1,
    }
