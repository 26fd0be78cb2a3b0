"""How the CLI shows things: progress, run reports, search hits, status. Rich lives here only."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from pipeline.config import Settings
from pipeline.run import Progress as PageProgress
from pipeline.run import RunReport
from pipeline.sync import index_dir

logger = logging.getLogger("crawldex")

_MARK = re.compile(r"\[\[(.+?)\]\]")
#: ``crawldex search --csv`` columns: rank order is the row order; then the record contract.
CSV_FIELDS = [
    "score",
    "id",
    "url",
    "site",
    "title",
    "published_at",
    "updated_at",
    "author",
    "comment_count",
    "topics",
    "listed_in",
    "summary",
    "snippet",
    "language",
    "word_count",
    "first_seen_at",
    "last_seen_at",
    "fetched_at",
    "status",
    "content_hash",
    "schema_version",
    "text",
]


@contextmanager
def crawl_progress(console: Console) -> Iterator[Callable[[PageProgress], None]]:
    """A progress bar on a terminal; a plain line every 100 pages otherwise."""
    if not console.is_terminal:

        def log_line(p: PageProgress) -> None:
            if p.done % 100 == 0:
                console.print(f"crawling: {p.done} pages done, {p.queued} queued", markup=False)

        yield log_line
        return
    columns = (
        TextColumn("[bold]crawling"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[url]}", style="dim"),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("crawl", total=None, url="")

        def update(p: PageProgress) -> None:
            bar.update(task, completed=p.done, total=p.done + p.queued, url=p.url[-60:])

        yield update


def print_report(console: Console, report: RunReport, settings: Settings) -> None:
    """The summary of a run, on stderr."""
    changes = report.changes
    table = Table(title=f"Run {report.run_id}: {report.status}", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("sites", ", ".join(report.sites))
    table.add_row(
        "pages fetched",
        f"{report.pages_fetched} ({report.not_modified} not modified, {report.bytes / 1e6:.1f} MB)",
    )
    table.add_row("articles", _changes_line(changes, "article"))
    table.add_row("topics", _changes_line(changes, "topic"))
    if report.failed:
        table.add_row("failed", _counter_line(report.failed), style="red")
    if report.skipped:
        table.add_row("skipped", _counter_line(report.skipped))
    table.add_row(
        "index",
        f"{report.index.get('documents', 0)} documents ({report.index.get('mode')}) "
        f"in {index_dir(settings)}",
    )
    table.add_row("time", f"{report.seconds:.1f} s")
    if report.status == "paused":
        table.add_row("next", "page budget used: run `crawldex crawl` again to continue this pass")
    console.print(table)
    _print_outputs(console, report)


def _changes_line(changes: dict[str, int], kind: str) -> str:
    return ", ".join(f"{changes.get(f'{kind}_{c}', 0)} {c}" for c in ("new", "changed", "gone"))


def _counter_line(counter: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counter.items(), key=lambda kv: -kv[1]))


def print_hits(results: Any, query: str, *, stdout: bool) -> None:
    """Hits on stdout: a coloured table on a terminal, plain aligned lines when piped."""
    if results.total == 0:
        click.echo(f"No articles match {query!r}.", err=True)
        return
    if stdout:
        _hits_table(results)
    else:
        for hit in results.hits:
            comments = "-" if hit.comment_count is None else str(hit.comment_count)
            click.echo(
                f"{hit.rank:>3}  {(hit.published_at or '')[:10]:<10}  {comments:>5}  "
                f"{hit.title or '(untitled)'}  <{hit.url}>"
            )
            if hit.snippet_plain:
                click.echo(f"     {hit.snippet_plain}")
    click.echo(f"{results.total} hits, page {results.page} of {results.pages}", err=True)
    print_facets(results, err=False)


def hit_rows(results: Any, records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each hit as its stored record in the contract plus ``score`` and ``snippet`` (unmarked).

    A hit whose record the store no longer has (the index is a sync behind) keeps the fields the
    index holds.
    """
    rows = []
    for hit in results.hits:
        row = dict(records.get(hit.id) or _hit_fields(hit))
        row["score"] = hit.score
        row["snippet"] = hit.snippet_plain
        rows.append(row)
    return rows


def _hit_fields(hit: Any) -> dict[str, Any]:
    return {
        "kind": "article",
        "id": hit.id,
        "url": hit.url,
        "site": hit.site,
        "title": hit.title,
        "published_at": hit.published_at,
        "author": hit.author,
        "comment_count": hit.comment_count,
        "summary": hit.summary,
        "topics": list(hit.topics),
    }


def write_jsonl(rows: list[dict[str, Any]]) -> None:
    """One JSON object per line on stdout."""
    for row in rows:
        click.echo(json.dumps(row, ensure_ascii=False))


def write_csv(rows: list[dict[str, Any]]) -> None:
    """CSV on stdout: a header, then ``CSV_FIELDS`` per hit; lists joined by "; ", null empty."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore", restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _flat(v) for k, v in row.items()})
    click.echo(out.getvalue(), nl=False)


def _flat(value: Any) -> Any:
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return "" if value is None else value


def print_facets(results: Any, *, err: bool) -> None:
    """Hit counts by topic and by month: two small tables (on stderr when stdout carries data)."""
    if not results.facets:
        return
    console = Console(stderr=err, highlight=False)
    for name, title in (("topic", "topic"), ("month", "month")):
        table = Table(title=f"hits by {title}", box=None)
        table.add_column(title)
        table.add_column("hits", justify="right")
        for key, count in results.facets.get(name, []):
            table.add_row(key, str(count))
        console.print(table)


def _hits_table(results: Any) -> None:
    table = Table(expand=True)
    for name, kw in (
        ("#", {"justify": "right"}),
        ("title", {"ratio": 3}),
        ("date", {"no_wrap": True}),
        ("comments", {"justify": "right"}),
        ("topics", {"ratio": 1}),
        ("url / snippet", {"ratio": 4}),
    ):
        table.add_column(name, **kw)
    for hit in results.hits:
        cell = Text(hit.url, style="cyan")
        cell.append("\n")
        cell.append_text(_marked(hit.snippet))
        table.add_row(
            str(hit.rank),
            Text(hit.title or "(untitled)", style="bold"),
            (hit.published_at or "")[:10],
            "" if hit.comment_count is None else str(hit.comment_count),
            ", ".join(hit.topics),
            cell,
        )
    Console(highlight=False).print(table)


def _marked(snippet: str) -> Text:
    """A snippet with ``[[term]]`` marks rendered bold yellow."""
    text = Text()
    pos = 0
    for match in _MARK.finditer(snippet or ""):
        text.append(snippet[pos : match.start()])
        text.append(match.group(1), style="bold yellow")
        pos = match.end()
    text.append((snippet or "")[pos:])
    return text


def print_status(info: dict[str, Any]) -> None:
    """``crawldex status`` as tables (full width when piped, so nothing is cut)."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=200)
    console.print(f"[bold]data directory[/] {info['data_dir']}")
    counts = Table("records", "active", "gone", box=None)
    for kind in ("articles", "topics"):
        counts.add_row(
            kind,
            str(info["counts"].get(f"{kind}_active", 0)),
            str(info["counts"].get(f"{kind}_gone", 0)),
        )
    console.print(counts)
    lag = info["store_seq"] - info["index_seq"]
    console.print(
        "index: "
        + ("up to date" if lag <= 0 else f"{lag} changes behind (`crawldex index` applies them)")
    )
    if info["frontier"]:
        console.print(
            "frontier: " + ", ".join(f"{k} {v}" for k, v in sorted(info["frontier"].items()))
        )
    runs = Table(
        "run",
        "started",
        "status",
        "fetched",
        "failed",
        "new",
        "changed",
        "gone",
        "seconds",
        "failed / skipped by reason",
        title="last runs",
    )
    for run in info["runs"]:
        report = run.get("report") or {}
        ch = report.get("changes", {})
        runs.add_row(
            str(run["id"]),
            run["started_at"][:19],
            run["status"],
            str(report.get("pages_fetched", "")),
            str(sum((report.get("failed") or {}).values())),
            str(ch.get("article_new", 0)),
            str(ch.get("article_changed", 0)),
            str(ch.get("article_gone", 0)),
            str(report.get("seconds", "")),
            _reasons_cell(report),
        )
    console.print(runs)


def print_unattended(info: dict[str, Any]) -> None:
    """Scheduled jobs (last and next run) and drift warnings, after ``print_status``."""
    console = Console(highlight=False)
    if info["schedule"]:
        jobs = Table("job", "trigger", "last run", "outcome", "fetched", "changes", "next run")
        for job in info["schedule"]:
            counts = job["last_counts"] or {}
            changes = sum((counts.get("changes") or {}).values())
            outcome = job["last_outcome"] or "-"
            if job["skipped_locked"]:
                outcome += f" ({job['skipped_locked']} skipped: locked)"
            jobs.add_row(
                job["job_id"],
                job["spec"],
                (job["last_run_at"] or "-")[:19],
                Text(outcome, style="red" if outcome.startswith("failed") else ""),
                str(counts.get("pages_fetched", "")),
                str(changes) if counts else "",
                (job["next_run_at"] or "-")[:19],
                style=None,
            )
        console.print(jobs)
    for warning in info["drift"]:
        console.print(Text(f"drift warning: {warning['message']}", style="bold yellow"))
    console.print(f"change feed cursor: {info['feed_cursor']}")


def _print_outputs(console: Console, report: RunReport) -> None:
    """The run's change feed, watches' new matches and drift warnings."""
    if report.feed:
        counts = report.feed.get("counts", {})
        console.print(
            f"change feed: {counts.get('records', 0)} records -> {report.feed.get('manifest')} "
            f"(cursor {report.feed.get('cursor')})"
        )
    for name, hits in report.watches.items():
        console.print(f"[bold]watch {name}[/]: {len(hits)} new", markup=True)
        for hit in hits[:10]:
            console.print(f"  {hit.get('title') or '(untitled)'}  <{hit['url']}>", markup=False)
    for warning in report.drift:
        console.print(Text(f"drift warning: {warning['message']}", style="bold yellow"))


def _reasons_cell(report: dict[str, Any]) -> str:
    """``failed: timeout 2, http_404 1; skipped: robots 3`` (empty when nothing went wrong)."""
    parts = [
        f"{label}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        for label, counts in (
            ("failed", report.get("failed") or {}),
            ("skipped", report.get("skipped") or {}),
            ("capped", report.get("capped") or {}),
        )
        if counts
    ]
    return "; ".join(parts)
