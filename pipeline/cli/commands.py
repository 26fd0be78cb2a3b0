"""The ``crawldex`` commands other than ``demo``: crawl, search, export, schema, status, extract."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType
from typing import Any, cast

import click
import yaml

import index as search_index
from pipeline import heap
from pipeline.cli import CliState, cli, echo_json
from pipeline.cli.render import (
    crawl_progress,
    hit_rows,
    print_facets,
    print_hits,
    print_report,
    print_status,
    print_unattended,
    write_csv,
    write_jsonl,
)
from pipeline.errors import ConfigError, PipelineError, StoreError
from pipeline.export import json_schema
from pipeline.feed import export_file, export_history_file
from pipeline.postrun import unattended_status
from pipeline.run import (
    RunReport,
    contract_articles,
    inspect_page,
    run_once,
    run_started_at,
    store_status,
)
from pipeline.run import reindex as reindex_store
from pipeline.sync import index_dir

pass_state = click.make_pass_decorator(CliState)


def crawl_with_progress(state: CliState, settings: Any, sites: tuple[str, ...]) -> RunReport:
    """Run once with a progress bar on a terminal; SIGINT/SIGTERM stop it cleanly."""
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        state.stderr.print("Stopping: finishing pages in flight (again to abort)...")
        stop.set()

    heap.settle()  # this process is a crawl's from here
    previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with crawl_progress(state.stderr) as on_page:
            return run_once(settings, sites=list(sites) or None, progress=on_page, stop=stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@cli.command()
@click.option(
    "--site", "sites", multiple=True, metavar="NAME", help="Crawl only this site (repeatable)."
)
@click.option(
    "--max-pages",
    type=click.IntRange(min=1),
    help="Pages fetched at most in this run (crawl.max_pages).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 512),
    help="Requests in flight at once (crawl.concurrency).",
)
@click.option(
    "--delay",
    type=click.FloatRange(min=0),
    help="Seconds between requests to one host (crawl.delay).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON on stdout.")
@pass_state
def crawl(
    state: CliState,
    sites: tuple[str, ...],
    max_pages: int | None,
    concurrency: int | None,
    delay: float | None,
    as_json: bool,
) -> None:
    """Crawl the configured sites once: fetch, extract, store, index.

    An interrupted crawl (Ctrl-C, kill) is resumed by the next one. Exits 1 when pages failed.

    \b
    Example:  crawldex crawl --site demo --max-pages 500
    """
    settings = state.settings(
        **{"crawl.max_pages": max_pages, "crawl.concurrency": concurrency, "crawl.delay": delay}
    )
    report = crawl_with_progress(state, settings, sites)
    if as_json:
        echo_json(report.to_dict())
    print_report(state.stderr, report, settings)
    if report.pages_failed:
        raise SystemExit(1)


@cli.command()
@click.argument("query", required=False, default="*")
@click.option("--topic", help="Only articles of this topic (name).")
@click.option("--site", help="Only articles of this site.")
@click.option(
    "--since", type=click.DateTime(["%Y-%m-%d"]), help="Published on or after (YYYY-MM-DD)."
)
@click.option(
    "--until", type=click.DateTime(["%Y-%m-%d"]), help="Published on or before (YYYY-MM-DD)."
)
@click.option("--min-comments", type=click.IntRange(min=0), help="At least this many comments.")
@click.option(
    "--sort",
    type=click.Choice(["relevance", "date", "comments"]),
    default="relevance",
    show_default=True,
)
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=10, show_default=True, help="Hits per page."
)
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--new-since",
    metavar="DATE|RUN",
    help="Only articles first seen since a date (YYYY-MM-DD[THH:MM]) or since run number RUN.",
)
@click.option("--facets", is_flag=True, help="Also show hit counts by topic and by month.")
@click.option(
    "--json", "as_json", is_flag=True, help="JSON Lines: the record plus score and snippet."
)
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row.")
@pass_state
def search(
    state: CliState,
    query: str,
    topic: str | None,
    site: str | None,
    since: Any,
    until: Any,
    min_comments: int | None,
    sort: str,
    limit: int,
    page: int,
    new_since: str | None,
    facets: bool,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Search the index: words, "phrases", AND/OR/NOT, field:value, prefix*, fuzzy~, ranges.

    \b
    Examples:
      crawldex search "side effects"
      crawldex search 'title:valpro* AND comments:>10' --sort date
      crawldex search '*' --topic Immunomodulation --since 2025-01-01 --json
      crawldex search '*' --new-since 3 --sort date      (new since run 3)
    """
    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    settings = state.settings()
    results = search_index.search(
        index_dir(settings),
        query,
        topic=topic,
        site=site,
        since=_as_date(since),
        until=_as_date(until),
        min_comments=min_comments,
        first_seen_since=_first_seen_since(settings, new_since),
        sort=cast("search_index.SortOrder", sort),
        limit=limit,
        page=page,
        facets=facets,
    )
    if not (as_json or as_csv):
        print_hits(results, query, stdout=sys.stdout.isatty())
        return
    rows = hit_rows(results, contract_articles(settings, [h.id for h in results.hits]))
    (write_jsonl if as_json else write_csv)(rows)
    if not rows:
        state.stderr.print(f"No articles match {query!r}.")
    print_facets(results, err=True)


def _first_seen_since(settings: Any, value: str | None) -> datetime | None:
    """``--new-since``: a run number (its start time) or an ISO date/time (UTC if naive)."""
    if value is None:
        return None
    if value.strip().isdigit():
        try:
            return run_started_at(settings, int(value))
        except StoreError as exc:
            raise click.BadParameter(str(exc), param_hint="--new-since") from exc
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither a run number nor a date; write e.g. 2025-11-01 or 12",
            param_hint="--new-since",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _as_date(value: Any) -> date | None:
    return value.date() if value is not None else None


@cli.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "parquet"]),
    default="jsonl",
    show_default=True,
    help="JSON Lines (the contract), CSV (lists joined with '|') or typed Parquet.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="File to write (atomically).",
)
@click.option("--kind", type=click.Choice(["article", "topic"]), help="Only this kind of record.")
@click.option("--site", help="Only records of this site.")
@click.option(
    "--since",
    type=click.IntRange(min=0),
    default=0,
    metavar="CURSOR",
    help="Only records created, changed or gone after this cursor (a manifest's `cursor`).",
)
@click.option(
    "--history", is_flag=True, help="Write the history of title/comment/status changes instead."
)
@pass_state
def export(
    state: CliState,
    fmt: str,
    out: Path,
    kind: str | None,
    site: str | None,
    since: int,
    history: bool,
) -> None:
    """Write stored records in the versioned record contract (see `crawldex schema`).

    Records come in change order. The cursor printed at the end, passed as --since next time,
    gives only what was created, changed or gone (status "gone") in between.

    \b
    Examples:
      crawldex export --format jsonl --out records.jsonl
      crawldex export --format parquet --kind article --since 1200 --out new.parquet
      crawldex export --history --out history.jsonl
    """
    settings = state.settings()
    if history:
        rows = export_history_file(settings, out, fmt=fmt)
        state.stderr.print(f"Wrote {rows} history rows to {out}")
        return
    counts, cursor = export_file(settings, out, fmt=fmt, kind=kind, site=site, since=since)
    state.stderr.print(
        f"Wrote {counts['article'] + counts['topic']} records ({counts['article']} articles, "
        f"{counts['topic']} topics, {counts['gone']} gone) to {out}; "
        f"next time pass --since {cursor}"
    )


@cli.command()
def schema() -> None:
    """Print the JSON Schema of exported records (articles and topics).

    \b
    Example:  crawldex schema > record-schema.json
    """
    echo_json(json_schema())


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option(
    "--check",
    is_flag=True,
    help="For monitoring: exit 1 when a drift warning stands or a scheduled job last failed.",
)
@click.option(
    "--runs",
    type=click.IntRange(1, 100),
    default=5,
    show_default=True,
    help="How many recent runs to show.",
)
@pass_state
def status(state: CliState, as_json: bool, check: bool, runs: int) -> None:
    """Show record counts, the frontier, the last runs, scheduled jobs and drift warnings.

    \b
    Examples:
      crawldex status --runs 10
      crawldex status --check || notify-team   # non-zero on drift or a failed job
    """
    settings = state.settings()
    if not (settings.storage.dir / "crawldex.sqlite3").exists():
        raise ConfigError(
            f"no crawldex data in {settings.storage.dir} yet; "
            "run `crawldex crawl` first (or `crawldex demo`)"
        )
    info = {**store_status(settings, runs=runs), **unattended_status(settings)}
    if as_json:
        echo_json(info)
    else:
        print_status(info)
        print_unattended(info)
    failed_jobs = [j for j in info["schedule"] if j["last_outcome"] == "failed"]
    if check and (info["drift"] or failed_jobs):
        raise SystemExit(1)


@cli.command()
@click.argument("sources", nargs=-1, required=True, metavar="FILE_OR_URL...")
@click.option("--url", help="URL the (single) file was saved from, to resolve its links.")
@click.option(
    "--site",
    "site_name",
    metavar="NAME",
    help="Apply this configured site's selectors and timezone.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON line per page (for many pages).")
@pass_state
def extract(
    state: CliState, sources: tuple[str, ...], url: str | None, site_name: str | None, as_json: bool
) -> None:
    """Show what the extractor makes of pages: files, folders (*.html inside) or URLs.

    \b
    Examples:
      crawldex extract saved-page.html --url https://example.com/topic/x/
      crawldex extract https://example.com/2025/11/some-post/
      crawldex extract pages/ --json > extracted.jsonl
    """
    settings = state.settings()
    paths = list(_expand_sources(sources))
    if url and len(paths) > 1:
        raise click.UsageError("--url applies to a single page; pass one FILE_OR_URL with it")
    failed = 0
    lines: list[str] = []  # JSON lines are echoed in batches: click.echo flushes every call
    for source in paths:
        try:
            result = inspect_page(source, settings, url=url, site_name=site_name)
        except PipelineError as exc:
            if len(paths) == 1:
                raise
            failed += 1
            result = {"source": source, "error": str(exc)}
        if as_json:
            lines.append(json.dumps(result, ensure_ascii=False, separators=(",", ":")))
            if len(lines) >= _JSON_BATCH:
                click.echo("\n".join(lines))
                lines.clear()
        else:
            echo_json(result)
    if lines:
        click.echo("\n".join(lines))
    if failed:
        state.stderr.print(f"{failed} of {len(paths)} pages could not be read")
        raise SystemExit(1)


_JSON_BATCH = 200


def _expand_sources(sources: tuple[str, ...]) -> Iterator[str]:
    for source in sources:
        path = Path(source)
        if path.is_dir():
            yield from (str(p) for p in sorted(path.rglob("*.htm*")))
        else:
            yield source


@cli.group(name="config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command(name="check")
@pass_state
def config_check(state: CliState) -> None:
    """Validate the config file and print the effective settings as YAML.

    \b
    Example:  crawldex --config config.yaml config check
    """
    settings = state.settings()
    click.echo(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False))
    state.stderr.print(f"OK: {len(settings.sites)} site(s); data in {settings.storage.dir}")


@cli.command(name="index")
@click.option("--rebuild", is_flag=True, help="Rebuild the whole index from the store.")
@pass_state
def index_cmd(state: CliState, rebuild: bool) -> None:
    """Bring the search index up to date with the store (crawls do this themselves).

    \b
    Example:  crawldex index --rebuild
    """
    report = reindex_store(state.settings(), rebuild=rebuild)
    state.stderr.print(
        f"index: {report.mode}, {report.written} written, {report.deleted} deleted, "
        f"{report.documents} documents"
    )


@cli.command()
@pass_state
def reindex(state: CliState) -> None:
    """Rebuild the search index from the store into a new directory and swap it in atomically.

    Searches keep working while it runs. Use it after an upgrade that changes the index schema,
    or whenever the index seems wrong: the store is the source of truth.

    \b
    Example:  crawldex reindex
    """
    report = reindex_store(state.settings(), rebuild=True)
    state.stderr.print(f"index rebuilt: {report.documents} documents in {report.seconds:.1f} s")
