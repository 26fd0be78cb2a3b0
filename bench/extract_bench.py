"""Extraction benchmark: pages/s on one core for demo listing and article pages.

Renders demo pages (``pipeline.demo.render_path``), then times, per page kind:

- ``parse``: selectolax's bare ``LexborHTMLParser(html)``, the floor any extractor pays;
- ``extract``: ``extract_page`` + ``normalize`` (what a crawl does per page).

Prints a table and writes ``bench/results/extract-<timestamp>.json``.

    python bench/extract_bench.py [--articles 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from selectolax.lexbor import LexborHTMLParser

from pipeline.config import SiteConfig
from pipeline.demo.content import build_site
from pipeline.demo.render import render_path
from pipeline.extract import extract_page
from pipeline.models import Target
from pipeline.normalize import normalize

BASE = "http://demo.test"
RESULTS = Path(__file__).resolve().parent / "results"
SITE = SiteConfig(name="demo", start_urls=[f"{BASE}/"], timezone="Europe/London")


def render_pages(articles: int, layout: str = "plain") -> dict[str, list[tuple[str, str]]]:
    """(url, html) of every demo listing page and article page."""
    site = build_site(articles=articles, layout=layout)
    paths: dict[str, list[str]] = {"listing": [], "article": []}
    for topic in site.topics:
        pages = site.page_count(len(site.topic_articles(topic.slug)))
        paths["listing"] += [
            f"/topics/{topic.slug}/" + (f"page/{n}/" if n > 1 else "") for n in range(1, pages + 1)
        ]
    paths["article"] = [a.path for a in site.articles]
    rendered: dict[str, list[tuple[str, str]]] = {}
    for kind, kind_paths in paths.items():
        rendered[kind] = []
        for path in kind_paths:
            response = render_path(site, BASE, path)
            if response is None or response.status != 200:
                raise SystemExit(f"demo page {path} did not render")
            rendered[kind].append((BASE + path, response.body.decode("utf-8")))
    return rendered


def best_time(work: Callable[[], object], rounds: int) -> float:
    """The fastest of ``rounds`` runs, in seconds (the least disturbed by other processes)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def measure(pages: list[tuple[str, str]], rounds: int) -> dict[str, float]:
    """Bare-parse and extract+normalize times per page for one page kind."""
    fetched_at = datetime(2025, 11, 20, 12, tzinfo=UTC)

    def parse_all() -> None:
        for _url, html in pages:
            LexborHTMLParser(html)

    def extract_all() -> None:
        for url, html in pages:
            page = extract_page(html, url)
            normalize(page, Target(url=url, site="demo"), fetched_at=fetched_at, site=SITE)

    extract_all()  # warm caches (regexes, dateparser) before timing
    parse = best_time(parse_all, rounds) / len(pages)
    extract = best_time(extract_all, rounds) / len(pages)
    return {
        "pages": len(pages),
        "parse_ms": parse * 1000,
        "extract_ms": extract * 1000,
        "pages_per_s": 1 / extract,
        "ratio_to_parse": extract / parse,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=200, help="demo site size")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs; the best counts")
    parser.add_argument("--layout", choices=("plain", "heavy"), default="plain")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    pages = render_pages(args.articles, args.layout)
    rows = {kind: measure(kind_pages, args.rounds) for kind, kind_pages in pages.items()}
    header = ("kind", "pages", "parse ms", "extract ms", "pages/s", "x parse")
    print("{:8} {:>6} {:>9} {:>11} {:>8} {:>8}".format(*header))
    for kind, row in rows.items():
        print(
            f"{kind:8} {row['pages']:6d} {row['parse_ms']:9.3f} {row['extract_ms']:11.3f} "
            f"{row['pages_per_s']:8.0f} {row['ratio_to_parse']:8.1f}"
        )
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"extract-{stamp}.json"
    payload = {
        "when": stamp,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "articles": args.articles,
        "layout": args.layout,
        "rounds": args.rounds,
        "results": rows,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")


if __name__ == "__main__":
    main()
