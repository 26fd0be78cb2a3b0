"""Search benchmark: whoosh index build rate and query latency, with SQLite FTS5 as the yardstick.

Usage (from the repository root)::

    python -m bench.search_bench --records 100000
    python -m bench.search_bench --records 1000000 --queries 100
    python -m bench.search_bench --records 20000 --build both --build-only

Builds N synthetic article records from the demo generator (``pipeline.demo.build_site``: 200
realistic articles, recombined deterministically), indexes them with ``index.rebuild`` (what
``crawldex reindex`` does) and/or ``index.apply_changes`` (what a crawl's sync does), each in a
fresh process (docs/s, CPU per doc, peak RSS), runs a fixed list of queries of each form through
``index.search`` (p50/p95 latency), builds the same records into SQLite FTS5 and runs the
equivalent query per form where one exists, then prints the whoosh/FTS5 latency ratio and writes
JSON to ``bench/results/``. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import random
import re
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import index
from pipeline.demo import build_site

RESULTS = Path(__file__).parent / "results"
FORMS = ("words", "phrase", "boolean", "field", "prefix", "fuzzy", "range", "filter_sort")
_WORD = re.compile(r"[a-z]{5,}")
_STOP = frozenset(
    [
        "about",
        "after",
        "their",
        "there",
        "which",
        "where",
        "these",
        "those",
        "would",
        "could",
        "should",
    ]
)


def make_records(n: int) -> Iterator[dict[str, Any]]:
    """Yield ``n`` article records recombined from the demo site's 200 (same n, same records)."""
    base = build_site().articles
    m = len(base)
    for i in range(n):
        a, b, c = base[i % m], base[(i * 7 + 3) % m], base[(i * 31 + 11) % m]
        title_words = a.title.split()
        half = len(title_words) // 2
        title = " ".join(title_words[:half] + b.title.split()[len(b.title.split()) // 2 :])
        paras = (a.paragraphs[: 1 + i % 3], b.paragraphs[1:3], c.paragraphs[-1:])
        text = "\n\n".join(p for group in paras for p in group)
        published = a.published.astimezone(UTC) - timedelta(days=(i // m) % 900)
        record = {
            "kind": "article",
            "id": hashlib.sha256(f"bench-{i}".encode()).hexdigest()[:16],
            "url": f"https://bench.example/{i}/",
            "site": ("demo", "mirror", "archive")[i % 3],
            "title": f"{title} {i}",
            "summary": b.summary,
            "text": text,
            "topics": list(a.topics if i % 2 else b.topics),
            "author": c.author,
            "published_at": published.isoformat(),
            "comment_count": None if a.comment_count is None else a.comment_count + i % 13,
            "first_seen_at": published.isoformat(),
            "status": "active",
        }
        record["content_hash"] = hashlib.sha256(text.encode()).hexdigest()
        yield record


def _vocabulary() -> tuple[list[str], list[str], list[str], list[tuple[str, str]]]:
    """Title words, text words, topics and adjacent word pairs of the demo site."""
    site = build_site()
    titles = sorted({w for a in site.articles for w in _WORD.findall(a.title.lower())} - _STOP)
    words = sorted(
        {w for a in site.articles for p in a.paragraphs for w in _WORD.findall(p.lower())} - _STOP
    )
    topics = sorted({t for a in site.articles for t in a.topics})
    pairs = sorted(
        {
            (x, y)
            for a in site.articles
            for p in a.paragraphs[:2]
            for x, y in zip(p.lower().split(), p.lower().split()[1:], strict=False)
            if _WORD.fullmatch(x) and _WORD.fullmatch(y)
        }
    )
    return titles, words, topics, pairs


def make_queries(per_form: int) -> dict[str, list[tuple[str, dict[str, Any], str | None]]]:
    """``{form: [(whoosh query, search options, FTS5 MATCH or None), ...]}``, fixed by a seed."""
    rng = random.Random(42)
    titles, words, topics, pairs = _vocabulary()
    out: dict[str, list[tuple[str, dict[str, Any], str | None]]] = {f: [] for f in FORMS}
    for _ in range(per_form):
        w1, w2, w3 = rng.sample(words, 3)
        x, y = rng.choice(pairs)
        t = rng.choice(titles)
        start = date(2023, 1, 1) + timedelta(days=rng.randrange(900))
        end = start + timedelta(days=rng.randrange(10, 120))
        out["words"].append((f"{w1} {w2}", {}, f"{w1} {w2}"))
        out["phrase"].append((f'"{x} {y}"', {}, f'"{x} {y}"'))
        bool_q = f"{w1} AND ({w2} OR {w3}) NOT {t}"
        out["boolean"].append((bool_q, {}, bool_q))
        out["field"].append((f"title:{t}", {}, f"title:{t}"))
        out["prefix"].append((f"{w1[:4]}*", {}, f"{w1[:4]}*"))
        out["fuzzy"].append((f"{w1}~", {}, None))  # FTS5 has no fuzzy matching
        out["range"].append((f"published:[{start} TO {end}]", {}, f"@range {start} {end}"))
        topic = rng.choice(topics)
        out["filter_sort"].append(
            (w1, {"topic": topic, "sort": "date"}, f'{w1} AND topics:"{topic}"')
        )
    return out


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def with_progress(records: Iterator[dict[str, Any]], n: int, what: str) -> Iterator[dict[str, Any]]:
    """Pass records through, reporting every tenth on stderr (so a cut-short run says how far)."""
    started = time.perf_counter()
    for i, record in enumerate(records, start=1):
        yield record
        if i % max(n // 10, 1) == 0:
            elapsed = time.perf_counter() - started
            print(
                f"{what}: {i} records in {elapsed:.0f} s ({i / elapsed:.0f}/s), "
                f"peak RSS {peak_rss_mb():.0f} MB",
                file=sys.stderr,
                flush=True,
            )


def _build_in_child(path: Path, n: int, how: str, options: dict[str, Any], out: Any) -> None:
    """Build the index in this (fresh) process and put its figures on ``out``."""
    started, cpu = time.perf_counter(), time.process_time()
    records = with_progress(make_records(n), n, f"whoosh {how}")
    if how == "rebuild":
        index.rebuild(path, records, procs=options["procs"], limit_mb=options["limit_mb"])
    else:
        index.apply_changes(path, records, batch_size=options["batch_size"])
    seconds = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # rebuild's sub-writers, if any
    cpu_s = time.process_time() - cpu + children.ru_utime + children.ru_stime
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    out.put(
        {
            "how": how,
            **{k: options[k] for k in (("procs", "limit_mb") if how == "rebuild" else ())},
            **({"batch_size": options["batch_size"]} if how == "apply" else {}),
            "docs": index.doc_count(path),
            "seconds": round(seconds, 2),
            "docs_per_s": round(n / seconds, 1),
            "cpu_ms_per_doc": round(cpu_s * 1000 / n, 2),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "subwriter_peak_rss_mb": round(children.ru_maxrss / 1024, 1),
            "size_mb": round(size / 1e6, 1),
        }
    )


def build_whoosh(path: Path, n: int, how: str, options: dict[str, Any]) -> dict[str, Any]:
    """Index ``n`` records with ``index.rebuild`` or ``index.apply_changes`` in a fresh process.

    A process of its own, so that its peak RSS is the build's alone (not the other build's,
    nor the records and queries of this one), and CPU seconds include any sub-writers.
    Returns docs/s, seconds, CPU ms per doc, peak RSS and index size.
    """
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    child = context.Process(target=_build_in_child, args=(path, n, how, options, out))
    child.start()
    result: dict[str, Any] = out.get()
    child.join()
    return result


_FTS_SCHEMA = """
CREATE VIRTUAL TABLE fts USING fts5(
    title, summary, text, topics, author,
    tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TABLE meta (rowid INTEGER PRIMARY KEY, id TEXT, published TEXT, comments INTEGER);
"""


def build_fts(db: sqlite3.Connection, n: int) -> dict[str, Any]:
    """Load the same ``n`` records into FTS5 (one transaction per 5000)."""
    started = time.perf_counter()
    db.executescript(_FTS_SCHEMA)
    for i, r in enumerate(with_progress(make_records(n), n, "fts5"), start=1):
        db.execute(
            "INSERT INTO fts (rowid, title, summary, text, topics, author) VALUES (?,?,?,?,?,?)",
            (i, r["title"], r["summary"], r["text"], ", ".join(r["topics"]), r["author"]),
        )
        db.execute(
            "INSERT INTO meta VALUES (?,?,?,?)",
            (i, r["id"], r["published_at"], r["comment_count"]),
        )
        if i % 5000 == 0:
            db.commit()
    db.execute("CREATE INDEX meta_published ON meta (published)")
    db.commit()
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "docs_per_s": round(n / seconds, 1)}


def fts_search(db: sqlite3.Connection, match: str, options: dict[str, Any]) -> int:
    """The FTS5 counterpart of ``index.search``: a count plus the top 10 with snippets."""
    if match.startswith("@range "):
        _, start, end = match.split()
        where, params = "published >= ? AND published < ?", (start, f"{end}T99")
        total = db.execute(f"SELECT COUNT(*) FROM meta WHERE {where}", params).fetchone()[0]
        db.execute(
            f"SELECT id FROM meta WHERE {where} ORDER BY published DESC LIMIT 10", params
        ).fetchall()
        return int(total)
    total = db.execute("SELECT COUNT(*) FROM fts WHERE fts MATCH ?", (match,)).fetchone()[0]
    order = "meta.published DESC" if options.get("sort") == "date" else "bm25(fts, 3, 1.5, 1)"
    db.execute(
        "SELECT meta.id, snippet(fts, 2, '[[', ']]', ' … ', 30) FROM fts "
        f"JOIN meta ON meta.rowid = fts.rowid WHERE fts MATCH ? ORDER BY {order} LIMIT 10",
        (match,),
    ).fetchall()
    return int(total)


def timed(run: Callable[[], int]) -> tuple[float, int]:
    """Milliseconds one call takes, and what it returned (the hit count)."""
    started = time.perf_counter()
    hits = run()
    return (time.perf_counter() - started) * 1000, hits


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50 and p95 of latencies in ms."""
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50_ms": round(cuts[49], 2), "p95_ms": round(cuts[94], 2)}


def run_queries(path: Path, db: sqlite3.Connection, per_form: int) -> dict[str, Any]:
    """Latency per form for whoosh and (where it has one) FTS5, and their p50 ratio."""
    out: dict[str, Any] = {}
    for form, queries in make_queries(per_form).items():
        whoosh = [timed(lambda q=q, o=o: index.search(path, q, **o).total) for q, o, _ in queries]
        row: dict[str, Any] = {
            "queries": len(queries),
            "whoosh": percentiles([ms for ms, _ in whoosh]),
            "whoosh_mean_hits": round(statistics.fmean(h for _, h in whoosh), 1),
        }
        if queries[0][2] is not None:
            fts = [timed(lambda m=m, o=o: fts_search(db, m, o)) for _, o, m in queries if m]
            row["fts5"] = percentiles([ms for ms, _ in fts])
            row["fts5_mean_hits"] = round(statistics.fmean(h for _, h in fts), 1)
            row["ratio_p50"] = round(row["whoosh"]["p50_ms"] / max(row["fts5"]["p50_ms"], 1e-3), 1)
        out[form] = row
    return out


def print_report(result: dict[str, Any]) -> None:
    """The figures, as a table on stdout."""
    print(f"records: {result['records']}")
    for b in result["whoosh_builds"]:
        how = (
            f"rebuild, procs {b['procs']}"
            if b["how"] == "rebuild"
            else f"apply, batch {b['batch_size']}"
        )
        print(
            f"whoosh build ({how}): {b['docs_per_s']} docs/s ({b['seconds']} s, "
            f"{b['cpu_ms_per_doc']} ms CPU/doc, {b['size_mb']} MB on disk), peak RSS "
            f"{b['peak_rss_mb']} MB (sub-writers {b['subwriter_peak_rss_mb']} MB)"
        )
    if "fts5_build" not in result:
        return
    f = result["fts5_build"]
    print(f"FTS5 build:   {f['docs_per_s']} docs/s ({f['seconds']} s)")
    print(f"{'form':<12} {'n':>4} {'whoosh p50':>11} {'p95':>8} {'FTS5 p50':>9} {'p95':>8} ratio")
    for form, row in result["queries"].items():
        fts = row.get("fts5", {})
        print(
            f"{form:<12} {row['queries']:>4} {row['whoosh']['p50_ms']:>9.2f}ms "
            f"{row['whoosh']['p95_ms']:>6.2f}ms {fts.get('p50_ms', float('nan')):>7.2f}ms "
            f"{fts.get('p95_ms', float('nan')):>6.2f}ms {row.get('ratio_p50', 'n/a')}"
        )
    print(f"peak RSS overall: {result['peak_rss_mb']} MB")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100, help="queries per form (>= 100)")
    parser.add_argument(
        "--build",
        choices=("rebuild", "apply", "both"),
        default="rebuild",
        help="index.rebuild (crawldex reindex), index.apply_changes (a crawl's sync) or both",
    )
    parser.add_argument(
        "--batch-size", type=int, default=index.DEFAULT_BATCH_SIZE, help="apply: per commit"
    )
    parser.add_argument(
        "--procs", type=int, default=min(2, os.cpu_count() or 1), help="rebuild: processes"
    )
    parser.add_argument("--limit-mb", type=int, default=index.DEFAULT_LIMIT_MB)
    parser.add_argument("--build-only", action="store_true", help="no FTS5, no queries")
    parser.add_argument("--workdir", type=Path, help="where to build (default: a temp dir)")
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="build into DIR and keep it; a later run with the same DIR and --records reuses "
        "the builds (and their figures) and only runs the queries",
    )
    args = parser.parse_args(argv)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    work = args.keep or Path(tempfile.mkdtemp(prefix="crawldex-bench-", dir=args.workdir))
    options = {"batch_size": args.batch_size, "procs": args.procs, "limit_mb": args.limit_mb}
    kept = _kept_builds(work, args.records) if args.keep else None
    try:
        path = work / "index"
        result: dict[str, Any] = {"records": args.records, "whoosh_builds": []}
        if kept is not None:
            result.update(kept)
            print(f"reusing the builds in {work}", file=sys.stderr)
            db = sqlite3.connect(work / "fts.sqlite3")
        else:
            db = _build_all(work, path, args, options, result)
            if db is None:
                return 0
        result["queries"] = run_queries(path, db, args.queries)
        result["peak_rss_mb"] = round(peak_rss_mb(), 1)
        result["at"] = datetime.now(UTC).isoformat(timespec="seconds")
        db.close()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print_report(result)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"search-{args.records}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    return 0


_KEPT = "builds.json"


def _kept_builds(work: Path, records: int) -> dict[str, Any] | None:
    """The build figures of a kept work directory built for ``records`` records, if complete."""
    try:
        kept = json.loads((work / _KEPT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return kept if kept.get("records") == records and "fts5_build" in kept else None


def _build_all(
    work: Path,
    path: Path,
    args: argparse.Namespace,
    options: dict[str, Any],
    result: dict[str, Any],
) -> sqlite3.Connection | None:
    """Build whoosh (as ``--build`` says) and FTS5; None with ``--build-only`` (report printed)."""
    if args.build in ("apply", "both"):
        apply_path = path if args.build == "apply" else work / "index-apply"
        result["whoosh_builds"].append(build_whoosh(apply_path, args.records, "apply", options))
        if apply_path != path:
            shutil.rmtree(apply_path)
    if args.build in ("rebuild", "both"):
        result["whoosh_builds"].append(build_whoosh(path, args.records, "rebuild", options))
    if args.build_only:
        print_report(result)
        return None
    db = sqlite3.connect(work / "fts.sqlite3")
    result["fts5_build"] = build_fts(db, args.records)
    (work / _KEPT).write_text(json.dumps(result) + "\n", encoding="utf-8")
    return db


if __name__ == "__main__":
    raise SystemExit(main())
