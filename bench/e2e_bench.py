"""crawldex end to end against the demo site at scale: pages/s, CPU per page, peak RSS, recrawl.

Starts ``bench.site_server`` (the generated site, pre-rendered, in its own process), then for each
concurrency and repeat (alternating: 16, 64, 16, 64, ...) runs a fresh child process that crawls
the site into a new temporary data directory with ``pipeline.run.run_once`` (fetch -> extract ->
store -> index -> change feed export; delay 0, per-host concurrency = concurrency, robots.txt
obeyed, the default recrawl policy), then crawls the unchanged site twice more:

- **steady**: right away, as the scheduler would next: the policy asks each topic's first
  listing page (and robots.txt, the sitemap) and nothing else, since nothing changed;
- **recrawl**: with the crawl's clock moved 31 days on, past ``refetch_max`` and
  ``full_walk_every``, so every page is due and revalidated: conditional GETs answered 304.

Each run's records are checked against the generator's truth (every article URL and every field
of every article record), after its recrawls, which must have fetched nothing (the site is
unchanged): in the same process, but after every measurement.

    python -m bench.e2e_bench --articles 2000                  # ~2 minutes on 2 cores
    python -m bench.e2e_bench --articles 20000 --repeats 3     # the issue's size
    python -m bench.e2e_bench --concurrency 16 --repeats 3 --transport aiohttp httpx2  # an A/B

Printed per run, and written to ``bench/results/e2e-<articles>.json``:

- **pages/s**: pages fetched (status 200) by the first crawl / its wall-clock seconds.
- **CPU ms/page**: user + system CPU of the crawling process (``getrusage``, self + children)
  during the first crawl / pages fetched. The server's CPU is not included.
- **peak RSS**: the child's ``ru_maxrss`` at the end of the first crawl (MB); each phase's own
  (``peak_rss_mb`` in the JSON), the peak being reset before it where Linux allows.
- **recrawl s / %**: the every-page conditional recrawl's wall-clock seconds, and as a share of
  the first's; **steady s / %** the same for the steady-state recrawl.
- **recrawl bytes**: body bytes downloaded by the recrawl (the server's count; 304s have none)
  against the first crawl's.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import resource
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.runs import run_child
from bench.site_server import fetch_stats, start_server

RESULTS = Path(__file__).resolve().parent / "results"


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _settings(base: str, data_dir: str, concurrency: int, transport: str = "aiohttp") -> Any:
    from pipeline.config import load_settings

    settings = load_settings(
        None,
        overrides={
            "storage.dir": data_dir,
            "crawl.delay": 0,
            "crawl.concurrency": concurrency,
            "crawl.per_host_concurrency": concurrency,
            "crawl.respect_robots": True,
            "crawl.max_pages": 10_000_000,
            "crawl.transport": transport,
        },
    )
    site = {"name": "demo", "start_urls": [f"{base}/"], "timezone": "Europe/London"}
    return settings.model_validate({**settings.model_dump(), "sites": [site]})


def _check(settings: Any, base: str, articles: int, topics: int) -> dict[str, Any]:
    """The stored records against the generator's truth: article URLs and every field.

    The truth does not depend on the layout (``tests/pipeline/test_demo_heavy.py``).
    """
    from pipeline.demo import build_site
    from pipeline.run import export_records, store_status

    site = build_site(articles=articles, topics=topics)
    counts = store_status(settings)["counts"]
    expected = {a["url"]: a for a in site.expected_articles(base)}
    wrong: dict[str, int] = {}
    urls: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "articles.jsonl"
        export_records(settings, out, kind="article")
        with out.open(encoding="utf-8") as lines:
            for line in lines:
                record = json.loads(line)
                urls.add(record["url"])
                truth = expected.get(record["url"], {})
                for name, want in truth.items():  # every field the generator states
                    if record[name] != want:
                        wrong[name] = wrong.get(name, 0) + 1
    return {
        "counts": counts,
        "articles_expected": len(expected),
        "articles_exported": len(urls),
        "articles_missing": len(expected.keys() - urls),
        "articles_unexpected": len(urls - expected.keys()),
        "wrong_fields": wrong,
        "ok": urls == expected.keys() and not wrong,
    }


def _reset_peak_rss() -> bool:
    """Start this process's peak RSS over from its current size (Linux: ``clear_refs``), so each
    phase's ``ru_maxrss`` is its own; False where the system cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def child(
    base: str,
    concurrency: int,
    articles: int,
    topics: int,
    profile: Path | None = None,
    transport: str = "aiohttp",
) -> dict[str, Any]:
    """One measured run in this (fresh) process: first crawl, then two unchanged recrawls."""
    import cProfile
    import pstats
    from datetime import UTC, datetime, timedelta

    from pipeline import heap
    from pipeline.run import run_once

    def month_later() -> datetime:  # past refetch_max (30d) and full_walk_every (7d)
        return datetime.now(UTC) + timedelta(days=31)

    out: dict[str, Any] = {"concurrency": concurrency, "transport": transport}
    heap.settle()  # as ``crawldex crawl`` and ``crawldex schedule`` do before their first run
    with tempfile.TemporaryDirectory() as tmp:
        settings = _settings(base, tmp, concurrency, transport)
        for label in ("first", "steady", "recrawl"):
            clock = month_later if label == "recrawl" else None
            server_before = fetch_stats(base)
            profiler = cProfile.Profile() if profile and label == "first" else None
            own_peak = _reset_peak_rss()
            cpu, wall = _cpu(), time.perf_counter()
            if profiler is not None:
                report = profiler.runcall(run_once, settings)
            else:
                report = run_once(settings, clock=clock)
            wall, cpu = time.perf_counter() - wall, _cpu() - cpu
            if profiler is not None and profile is not None:
                profiler.dump_stats(profile)
                with profile.with_suffix(".txt").open("w") as text:
                    stats = pstats.Stats(profiler, stream=text).sort_stats("cumulative")
                    stats.print_stats(40)
                    stats.sort_stats("tottime").print_stats(25)
            server_after = fetch_stats(base)
            out[label] = {
                "status": report.status,
                "seconds": wall,
                "cpu_seconds": cpu,
                "pages_fetched": report.pages_fetched,
                "not_modified": report.not_modified,
                "index": report.index,
                "failed": report.failed,
                "bytes_decoded": report.bytes,
                "server_requests": _delta(server_before, server_after, "requests"),
                "server_body_bytes": _delta(server_before, server_after, "body_bytes"),
                "server_by_status": server_after["by_status"],
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                # False: the peak since the process started, earlier phases included
                "peak_rss_own": own_peak,
                # the largest process the crawl started (e.g. an indexing process), if any
                "peak_rss_children_mb": (
                    resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
                ),
            }
        # Last, so that no phase's peak RSS holds the generator's truth (1.8 GB at 100k): the
        # store after both recrawls, which fetched nothing new (they would have said so).
        out["truth"] = _check(settings, base, articles, topics)
        out["truth"]["ok"] &= out["steady"]["pages_fetched"] == out["recrawl"]["pages_fetched"] == 0
    return out


def _delta(before: dict[str, object], after: dict[str, object], key: str) -> int:
    return int(str(after[key])) - int(str(before[key]))


def summary_row(run: dict[str, Any]) -> dict[str, Any]:
    """The figures of one run (a ``child`` result): the row printed here and in bench.throughput."""
    first, again, steady = run["first"], run["recrawl"], run["steady"]
    pages = max(1, first["pages_fetched"])
    return {
        "concurrency": run["concurrency"],
        "steady_s": steady["seconds"],
        "steady_pct": 100 * steady["seconds"] / first["seconds"],
        "steady_requests": steady["server_requests"],
        "pages": first["pages_fetched"],
        "pages_per_s": first["pages_fetched"] / first["seconds"],
        "cpu_ms_per_page": 1000 * first["cpu_seconds"] / pages,
        "peak_rss_mb": first["peak_rss_mb"],
        "recrawl_s": again["seconds"],
        "recrawl_pct": 100 * again["seconds"] / first["seconds"],
        "recrawl_bytes": again["server_body_bytes"],
        "first_bytes": first["server_body_bytes"],
        "truth_ok": run["truth"]["ok"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--layout", choices=("plain", "heavy"), default="heavy")
    parser.add_argument(
        "--transport",
        nargs="+",
        choices=("aiohttp", "httpx2"),
        default=["aiohttp"],
        help="crawl.transport; several alternate run by run (an A/B)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile each first crawl (slower): bench/results/e2e-N-cC.prof and .txt",
    )
    parser.add_argument("--child", metavar="BASE_URL", help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child(
            args.child,
            args.concurrency[0],
            args.articles,
            args.topics,
            args.profile_to,
            args.transport[0],
        )
        print(json.dumps(result))
        return
    # SIGTERM (e.g. `timeout`) unwinds, so the run child and the site server are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(__file__).resolve().parent.parent
    runs: list[dict[str, Any]] = []
    with start_server(args.articles, args.topics, args.layout) as (base, info):
        print(f"site: {json.dumps(info)}")
        header = (
            f"{'transport':<10}{'conc':>5}{'pages':>8}{'pages/s':>9}{'CPU ms/p':>9}{'RSS MB':>8}"
            f"{'steady s':>9}{'% first':>8}{'recrawl s':>10}{'% first':>8}{'recrawl B':>11}"
            f"{'first B':>12}  truth"
        )
        print(header)
        for _ in range(args.repeats):
            for concurrency, transport in itertools.product(args.concurrency, args.transport):
                cmd = [sys.executable, "-m", "bench.e2e_bench", "--child", base]
                cmd += ["--articles", str(args.articles), "--topics", str(args.topics)]
                cmd += ["--concurrency", str(concurrency), "--transport", transport]
                if args.profile:
                    RESULTS.mkdir(exist_ok=True)
                    prof = RESULTS / f"e2e-{args.articles}-c{concurrency}.prof"
                    cmd += ["--profile-to", str(prof)]
                run = run_child(cmd, f"run at concurrency {concurrency}")
                runs.append(run)
                r = summary_row(run)
                print(
                    f"{transport:<10}{r['concurrency']:>5}{r['pages']:>8,}{r['pages_per_s']:>9.1f}"
                    f"{r['cpu_ms_per_page']:>9.2f}{r['peak_rss_mb']:>8.0f}"
                    f"{r['steady_s']:>9.2f}{r['steady_pct']:>7.1f}%{r['recrawl_s']:>10.2f}"
                    f"{r['recrawl_pct']:>7.0f}%{r['recrawl_bytes']:>11,}{r['first_bytes']:>12,}"
                    f"  {'ok' if r['truth_ok'] else 'MISMATCH ' + json.dumps(run['truth'])}",
                    flush=True,
                )
    medians = {}
    for concurrency, transport in itertools.product(args.concurrency, args.transport):
        rows = [
            summary_row(r)
            for r in runs
            if r["concurrency"] == concurrency and r["transport"] == transport
        ]
        key = str(concurrency) if len(args.transport) == 1 else f"{concurrency}/{transport}"
        medians[key] = {
            key: statistics.median(row[key] for row in rows)
            for key in (
                "pages_per_s",
                "cpu_ms_per_page",
                "peak_rss_mb",
                "steady_pct",
                "recrawl_pct",
            )
        }
    RESULTS.mkdir(exist_ok=True)
    suffix = "-profiled" if args.profile else ""  # profiled runs are slower: kept apart
    path = RESULTS / f"e2e-{args.articles}{suffix}.json"
    machine = {"python": platform.python_version(), "machine": platform.machine()}
    payload = {"site": info, "machine": machine, "runs": runs, "medians": medians}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"medians: {json.dumps(medians)}")
    print(f"written: {path.relative_to(root)}")


if __name__ == "__main__":
    main()
