"""crawldex against Scrapy on one site in one invocation, runs alternating: the issue-7 table.

Starts ``bench.site_server`` once (heavy layout by default: 30-60 KB articles), then for each of
``--repeats`` rounds runs, each in a fresh child process and in this order: crawldex end to end at
every ``--concurrency`` (``bench.e2e_bench`` child: first crawl, then two unchanged recrawls), then
each Scrapy spider at every ``--scrapy-concurrency`` (``bench.scrapy_bench`` child). Every run's
output is checked against the generator's truth (every article URL and field); a run that is not
is marked and left out of the medians.

    python -m bench.throughput --articles 300 --repeats 1        # smoke run, ~1 minute
    python -m bench.throughput --articles 20000 --repeats 3      # the issue's size

Printed: one row per crawler with the medians over the rounds, then the crawldex/Scrapy ratios
pair by pair. Written to ``bench/results/throughput-<articles>.json`` (every run, the medians and
the ratios). Figures (see bench/README.md):

- **pages/s**: pages fetched / wall seconds of the crawl (crawldex: first crawl, index and
  change feed included; Scrapy: responses received over ``CrawlerProcess.start()``).
- **CPU ms/page**: user + system CPU of the crawler's process (and its children) per page.
- **peak RSS**: the crawler process's ``ru_maxrss`` (and the largest child's, if any).
- **steady**: crawldex's next run on the unchanged site under its recrawl policy (each topic's
  first listing page, robots.txt, the sitemap), as a share of the first crawl's time.
- **recrawl**: crawldex's unchanged recrawl with every page due (the clock a month on): every
  page revalidated by a conditional GET answered 304. Seconds and share of the first crawl's,
  and body bytes the server sent for it against the first crawl's.
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.e2e_bench import summary_row
from bench.runs import run_child
from bench.site_server import start_server

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
SPIDERS = ("textbook", "tuned")


def _child(module: str, base: str, args: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    """Run one measured child (``python -m module --child base ...``); its last line of JSON."""
    cmd = [sys.executable, "-m", module, "--child", base]
    cmd += ["--articles", str(args.articles), "--topics", str(args.topics), *extra]
    return run_child(cmd, " ".join(cmd[2:3] + extra))


def _crawldex_row(run: dict[str, Any]) -> dict[str, Any]:
    """One crawldex run as a table row: ``bench.e2e_bench``'s figures, named for this table."""
    row = summary_row(run)
    shared = ("steady_s", "steady_pct", "pages", "pages_per_s", "cpu_ms_per_page")
    return {
        "crawler": f"crawldex c{row['concurrency']}",
        **{key: row[key] for key in shared},
        "peak_rss_mb": max(row["peak_rss_mb"], run["first"].get("peak_rss_children_mb", 0.0)),
        "recrawl_s": row["recrawl_s"],
        "recrawl_pct": row["recrawl_pct"],
        "recrawl_bytes_pct": 100 * row["recrawl_bytes"] / max(1, row["first_bytes"]),
        "truth_ok": row["truth_ok"],
    }


def _scrapy_row(run: dict[str, Any]) -> dict[str, Any]:
    """One Scrapy run as a table row."""
    return {
        "crawler": f"scrapy {run['spider']} c{run['concurrency']}",
        "pages": run["pages"],
        "pages_per_s": run["pages"] / run["seconds"],
        "cpu_ms_per_page": 1000 * run["cpu_seconds"] / max(1, run["pages"]),
        "peak_rss_mb": run["peak_rss_mb"],
        "truth_ok": run["truth"]["ok"],
    }


def _print_row(row: dict[str, Any], runs: int = 1) -> None:
    recrawl = ""
    if "recrawl_s" in row:
        recrawl = (
            f"{row['steady_pct']:>7.1f}%"
            f"{row['recrawl_s']:>10.1f}{row['recrawl_pct']:>7.0f}%{row['recrawl_bytes_pct']:>8.2f}%"
        )
    truth = "ok" if row["truth_ok"] is True else row["truth_ok"]
    print(
        f"{row['crawler']:<22}{runs:>5}{row['pages']:>8,}{row['pages_per_s']:>9.1f}"
        f"{row['cpu_ms_per_page']:>10.2f}{row['peak_rss_mb']:>8.0f}{recrawl:<35}  {truth}",
        flush=True,
    )


def _header() -> None:
    print(
        f"{'crawler':<22}{'runs':>5}{'pages':>8}{'pages/s':>9}{'CPU ms/p':>10}{'RSS MB':>8}"
        f"{'steady':>8}{'recrawl s':>10}{'% time':>8}{'% bytes':>9}  truth"
    )


def _medians(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per crawler: the median of each figure over its runs whose output matched the truth."""
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r["crawler"] for r in rows):
        mine = [r for r in rows if r["crawler"] == name]
        good = [r for r in mine if r["truth_ok"]] or mine
        figures = {
            key: statistics.median(r[key] for r in good)
            for key in good[0]
            if key not in ("crawler", "truth_ok")
        }
        ok = sum(1 for r in mine if r["truth_ok"])
        out[name] = {
            "crawler": name,
            "runs": len(mine),
            **figures,
            "truth_ok": True if ok == len(mine) else f"{ok}/{len(mine)} ok",
        }
    return out


def _ratios(medians: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """crawldex / Scrapy pages/s and Scrapy / crawldex CPU per page, for every pair."""
    ours = [m for name, m in medians.items() if name.startswith("crawldex")]
    theirs = [m for name, m in medians.items() if name.startswith("scrapy")]
    return [
        {
            "crawldex": a["crawler"],
            "scrapy": b["crawler"],
            "pages_per_s_ratio": a["pages_per_s"] / b["pages_per_s"],
            "cpu_ratio": b["cpu_ms_per_page"] / a["cpu_ms_per_page"],
        }
        for a in ours
        for b in theirs
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layout", choices=("plain", "heavy"), default="heavy")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--scrapy-concurrency", type=int, nargs="+", default=[16])
    parser.add_argument("--spiders", nargs="+", choices=SPIDERS, default=list(SPIDERS))
    args = parser.parse_args()
    # SIGTERM (e.g. `timeout`) unwinds, so the run child and the site server are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    runs: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    with start_server(args.articles, args.topics, args.layout) as (base, site):
        print(f"site: {json.dumps(site)}")
        _header()
        for round_no in range(1, args.repeats + 1):
            for conc in args.concurrency:
                run = _child("bench.e2e_bench", base, args, ["--concurrency", str(conc)])
                runs.append({"round": round_no, "crawler": "crawldex", **run})
                rows.append(_crawldex_row(run))
                _print_row(rows[-1])
            for conc in args.scrapy_concurrency:
                for spider in args.spiders:
                    extra = ["--concurrency", str(conc), "--spiders", spider]
                    run = _child("bench.scrapy_bench", base, args, extra)
                    runs.append({"round": round_no, "crawler": "scrapy", **run})
                    rows.append(_scrapy_row(run))
                    _print_row(rows[-1])
    medians = _medians(rows)
    ratios = _ratios(medians)
    print(f"\nmedians of {args.repeats} alternating round(s), {args.articles:,} articles:")
    _header()
    for row in medians.values():
        _print_row(row, row["runs"])
    print("\ncrawldex / Scrapy: pages/s ratio (higher is better), CPU ratio (Scrapy CPU per page /")
    print("crawldex CPU per page: above 1, crawldex spends less)")
    for pair in ratios:
        pages, cpu = pair["pages_per_s_ratio"], pair["cpu_ratio"]
        print(
            f"  {pair['crawldex']:<14} vs {pair['scrapy']:<22} pages/s x{pages:.2f}  CPU x{cpu:.2f}"
        )
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"throughput-{args.articles}.json"
    machine = {"python": platform.python_version(), "machine": platform.machine()}
    payload = {"site": site, "machine": machine, "medians": medians, "ratios": ratios, "runs": runs}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"written: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
