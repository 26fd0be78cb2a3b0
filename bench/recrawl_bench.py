"""Recrawl cost on the demo site: a first crawl against an unchanged recrawl.

Serves the bundled demo site (200 articles, 8 topics) on loopback, crawls it into a temporary
data directory, then crawls it again unchanged (conditional GET: 304s), and prints for each run
the requests the server received, the body bytes downloaded (after decompression), pages fetched
and not modified, and the wall-clock seconds.

    python bench/recrawl_bench.py [--articles N] [--concurrency N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import heap
from pipeline.config import load_settings
from pipeline.demo import DemoServer, build_site
from pipeline.run import run_once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    site = build_site(articles=args.articles)
    with tempfile.TemporaryDirectory() as tmp, DemoServer(site) as server:
        settings = load_settings(
            None,
            overrides={
                "storage.dir": tmp,
                "crawl.delay": 0,
                "crawl.concurrency": args.concurrency,
                "crawl.per_host_concurrency": args.concurrency,
            },
        )
        demo = {"name": "demo", "start_urls": [f"{server.base_url}/"], "timezone": "Europe/London"}
        settings = settings.model_validate({**settings.model_dump(), "sites": [demo]})
        print(f"demo site: {len(site.articles)} articles, {len(site.topics)} topics")
        print(f"{'run':<18}{'requests':>9}{'200s':>7}{'304s':>7}{'bytes':>12}{'seconds':>9}")
        heap.settle()  # as ``crawldex crawl`` does before its run
        for label in ("first crawl", "unchanged recrawl"):
            server.clear_requests()
            started = time.perf_counter()
            report = run_once(settings)
            seconds = time.perf_counter() - started
            requests = server.requests
            ok = sum(r.status == 200 for r in requests)
            not_modified = sum(r.status == 304 for r in requests)
            print(
                f"{label:<18}{len(requests):>9}{ok:>7}{not_modified:>7}"
                f"{report.bytes:>12,}{seconds:>9.2f}"
            )
            assert report.status == "finished", report.status


if __name__ == "__main__":
    main()
