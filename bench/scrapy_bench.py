"""Scrapy on the same pre-rendered site: the textbook CrawlSpider and a hand-tuned spider.

Needs Scrapy, which is NOT a crawldex dependency: ``pip install -e '.[bench]'`` (or
``pip install scrapy``). Starts ``bench.site_server``, then for each repeat, concurrency and
spider (alternating) runs a fresh child process with ``scrapy.crawler.CrawlerProcess``:
``CONCURRENT_REQUESTS`` and ``CONCURRENT_REQUESTS_PER_DOMAIN`` = the concurrency, no delay, no
AutoThrottle, robots.txt obeyed, items written as JSON Lines. Every run's output is checked
against the generator's truth (the set of article URLs, and every field of every article).

    python -m bench.scrapy_bench --articles 2000
    python -m bench.scrapy_bench --articles 20000 --repeats 3 --spiders textbook tuned

Printed per run, and written to ``bench/results/scrapy-<articles>.json``: pages/s (responses
received / wall seconds of the crawl), CPU ms per page (``getrusage`` of the child), peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import statistics
import sys
import tempfile
import time
import unicodedata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.runs import run_child
from bench.site_server import start_server

RESULTS = Path(__file__).resolve().parent / "results"


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _nfc(value: Any) -> Any:
    """Strings (and lists of them) in Unicode normal form C, as crawldex's records are."""
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, list):
        return [_nfc(v) for v in value]
    return value


def _check(items: list[dict[str, Any]], base: str, articles: int, topics: int) -> dict[str, Any]:
    """The spider's items against the generator's truth: article URLs and every field."""
    from pipeline.demo import build_site

    truth = {
        a["url"]: a for a in build_site(articles=articles, topics=topics).expected_articles(base)
    }
    got = {i["url"]: i for i in items if i.get("kind") == "article"}
    wrong: dict[str, int] = {}
    for url, item in got.items():
        for name, want in truth.get(url, {}).items():  # every field the generator states
            if _nfc(item.get(name)) != want:
                wrong[name] = wrong.get(name, 0) + 1
    return {
        "articles_expected": len(truth),
        "articles_scraped": len(got),
        "articles_missing": len(truth.keys() - got.keys()),
        "wrong_fields": wrong,
        "listing_pages": sum(1 for i in items if i.get("kind") == "topic_page"),
        "ok": got.keys() == truth.keys() and not wrong,
    }


def child(spider: str, base: str, concurrency: int, articles: int, topics: int) -> dict[str, Any]:
    """One Scrapy run in this (fresh) process."""
    from scrapy.crawler import CrawlerProcess

    if spider == "textbook":
        from bench.scrapy_spiders.textbook import TextbookSpider as cls
    else:
        from bench.scrapy_spiders.tuned import TunedSpider as cls  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "items.jsonl"
        settings: dict[str, Any] = {
            "CONCURRENT_REQUESTS": concurrency,
            "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
            "DOWNLOAD_DELAY": 0,
            "AUTOTHROTTLE_ENABLED": False,
            "ROBOTSTXT_OBEY": True,
            "LOG_LEVEL": "INFO" if spider == "textbook" else "WARNING",
            "TELNETCONSOLE_ENABLED": False,
            "FEEDS": {str(out): {"format": "jsonlines", "encoding": "utf8"}},
        }
        if spider == "tuned":
            settings.update(
                {
                    "COOKIES_ENABLED": False,
                    "REACTOR_THREADPOOL_MAXSIZE": 4,
                    "DNSCACHE_ENABLED": True,
                    "LOGSTATS_INTERVAL": 0,
                }
            )
        process = CrawlerProcess(settings)
        crawler = process.create_crawler(cls)
        process.crawl(crawler, base=base)
        cpu, wall = _cpu(), time.perf_counter()
        process.start()
        wall, cpu = time.perf_counter() - wall, _cpu() - cpu
        stats = crawler.stats.get_stats() if crawler.stats else {}
        items = [json.loads(line) for line in out.read_text().splitlines() if line]
    pages = int(stats.get("response_received_count", 0))
    return {
        "spider": spider,
        "concurrency": concurrency,
        "pages": pages,
        "seconds": wall,
        "cpu_seconds": cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "items": len(items),
        "truth": _check(items, base, articles, topics),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--spiders", nargs="+", default=["textbook", "tuned"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--layout", choices=("plain", "heavy"), default="heavy")
    parser.add_argument("--child", metavar="BASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child(args.spiders[0], args.child, args.concurrency[0], args.articles, args.topics)
        print(json.dumps(result))
        return
    # SIGTERM (e.g. `timeout`) unwinds, so the run child and the site server are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(__file__).resolve().parent.parent
    runs: list[dict[str, Any]] = []
    with start_server(args.articles, args.topics, args.layout) as (base, info):
        print(f"site: {json.dumps(info)}")
        print(f"{'spider':<10}{'conc':>5}{'pages':>8}{'pages/s':>9}{'CPU ms/p':>9}", end="")
        print(f"{'RSS MB':>8}  truth")
        for _ in range(args.repeats):
            for concurrency in args.concurrency:
                for spider in args.spiders:
                    cmd = [sys.executable, "-m", "bench.scrapy_bench", "--child", base]
                    cmd += ["--articles", str(args.articles), "--topics", str(args.topics)]
                    cmd += ["--concurrency", str(concurrency), "--spiders", spider]
                    run = run_child(cmd, f"{spider} at concurrency {concurrency}")
                    runs.append(run)
                    truth = run["truth"]
                    print(
                        f"{spider:<10}{concurrency:>5}{run['pages']:>8,}"
                        f"{run['pages'] / run['seconds']:>9.1f}"
                        f"{1000 * run['cpu_seconds'] / max(1, run['pages']):>9.2f}"
                        f"{run['peak_rss_mb']:>8.0f}"
                        f"  {'ok' if truth['ok'] else 'MISMATCH ' + json.dumps(truth)}",
                        flush=True,
                    )
    medians: dict[str, dict[str, float]] = {}
    for spider in args.spiders:
        for concurrency in args.concurrency:
            rows = [r for r in runs if r["spider"] == spider and r["concurrency"] == concurrency]
            medians[f"{spider}-{concurrency}"] = {
                "pages_per_s": statistics.median(r["pages"] / r["seconds"] for r in rows),
                "cpu_ms_per_page": statistics.median(
                    1000 * r["cpu_seconds"] / max(1, r["pages"]) for r in rows
                ),
                "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rows),
            }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"scrapy-{args.articles}.json"
    path.write_text(json.dumps({"site": info, "runs": runs, "medians": medians}, indent=2) + "\n")
    print(f"medians: {json.dumps(medians)}")
    print(f"written: {path.relative_to(root)}")


if __name__ == "__main__":
    main()
