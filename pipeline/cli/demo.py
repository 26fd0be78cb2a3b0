"""``crawldex demo``: serve the bundled demo site, crawl it, index it, export it, show a search."""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console

import index as search_index
from pipeline.cli import CliState, cli
from pipeline.cli.commands import crawl_with_progress, pass_state
from pipeline.cli.render import print_hits, print_report
from pipeline.config import load_settings
from pipeline.demo import DEMO_TIMEZONE, DemoServer, build_site
from pipeline.run import export_records
from pipeline.sync import index_dir

DEMO_SITE = "demo"


@cli.command()
@click.option(
    "--dir",
    "data_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("crawldex-demo"),
    show_default=True,
    help="Data directory of the demo (store, index, exports, config).",
)
@click.option(
    "--articles",
    type=click.IntRange(10, 100_000),
    default=200,
    show_default=True,
    help="Size of the generated site.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port to serve on (default: the demo's last port if free, else any).",
)
@click.option(
    "--serve",
    is_flag=True,
    help="Only serve the demo site until Ctrl-C (to crawl it with your own config).",
)
@pass_state
def demo(state: CliState, data_dir: Path, articles: int, port: int | None, serve: bool) -> None:
    """Serve the bundled demo site on loopback, crawl it, index it, export it, try a search.

    Crawl settings come from your config (./config.yaml or --config), except that the
    politeness delay is off: the demo server is on this machine. The data directory (and the
    config the demo used) stays, so you can go on searching and exporting.

    \b
    Example:  crawldex demo --dir /tmp/demo && crawldex --config /tmp/demo/config.yaml status
    """
    base = state.settings()
    site = build_site(articles=articles)
    config_path = data_dir / "config.yaml"
    with DemoServer(site, port=_choose_port(port, config_path)) as server:
        if serve:
            _serve(state.stderr, server.base_url)
            return
        _write_config(config_path, server.base_url, base.crawl.model_dump(mode="json"))
        settings = load_settings(config_path)
        started = time.monotonic()
        report = crawl_with_progress(state, settings, (DEMO_SITE,))
    stats = export_records(settings, settings.export_dir / "records.jsonl")
    elapsed = time.monotonic() - started
    _summary(state.stderr, report, settings, stats, elapsed, config_path, site)


def _choose_port(port: int | None, config_path: Path) -> int:
    """Reuse the demo's previous port when free, so its URLs (and record ids) stay the same."""
    if port is not None:
        return port
    with contextlib.suppress(OSError, yaml.YAMLError, KeyError, IndexError, TypeError, ValueError):
        url = yaml.safe_load(config_path.read_text(encoding="utf-8"))["sites"][0]["start_urls"][0]
        previous = int(url.rsplit(":", 1)[1].strip("/"))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", previous))
        return previous
    return 0


def _write_config(path: Path, base_url: str, crawl: dict[str, Any]) -> None:
    crawl = {**crawl, "delay": 0.0, "per_host_concurrency": crawl["concurrency"]}
    config = {
        "storage": {"dir": "."},
        "crawl": crawl,
        "sites": [{"name": DEMO_SITE, "start_urls": [f"{base_url}/"], "timezone": DEMO_TIMEZONE}],
    }
    header = (
        "# Written by `crawldex demo`: the bundled demo site on loopback.\n"
        "# The politeness delay is off because the server is on this machine;\n"
        "# keep it on (crawl.delay) for real sites.\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def _serve(console: Console, base_url: str) -> None:
    console.print(f"Serving the demo site at {base_url}/ (Ctrl-C to stop)")
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)


def _summary(
    console: Console,
    report: Any,
    settings: Any,
    stats: Any,
    elapsed: float,
    config_path: Path,
    site: Any,
) -> None:
    print_report(console, report, settings)
    topic = site.topics[0].name
    query = "tapering"  # a word of several demo titles: title matches rank first
    out = Console(highlight=False, soft_wrap=True)
    out.print(
        f"\n[bold]Demo done[/] in {elapsed:.1f} s: {report.pages_fetched} pages fetched, "
        f"{stats.articles} articles and {stats.topics} topics stored."
    )
    out.print(f"  store:   {settings.storage.dir / 'crawldex.sqlite3'}")
    out.print(f"  index:   {index_dir(settings)}")
    out.print(f"  export:  {stats.path}")
    out.print(f"\n[bold]Sample search[/] for {query!r}:")
    results = search_index.search(index_dir(settings), query, limit=3)
    print_hits(results, query, stdout=out.is_terminal)
    out.print("\n[bold]Try next:[/]")
    out.print(f"  crawldex --config {config_path} search '\"side effects\"' --sort date")
    out.print(f"  crawldex --config {config_path} search 'comments:>50' --topic {topic!r}")
    out.print(f"  crawldex --config {config_path} status")
