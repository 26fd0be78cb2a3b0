"""The ``crawldex`` commands for unattended operation: ``schedule`` and ``watch``."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from types import FrameType

import click
from rich.console import Console
from rich.table import Table

from pipeline import heap
from pipeline.cli import CliState, cli, echo_json
from pipeline.run import run_once
from pipeline.schedule import CrawlScheduler
from pipeline.watch import WATCH_NAME, list_watches, remove_watch, save_watch

pass_state = click.make_pass_decorator(CliState)


@cli.command()
@click.option("--list", "list_only", is_flag=True, help="Show the jobs and their next runs; exit.")
@pass_state
def schedule(state: CliState, list_only: bool) -> None:
    """Run the crawls of the config's `schedule:` section in the foreground, until stopped.

    For systemd, a container or a terminal. SIGTERM/SIGINT stop it: pages in flight are stored
    and it exits 0; the next start resumes the pass and runs once a job it missed while stopped.

    \b
    Example:  crawldex --config /etc/crawldex/config.yaml schedule
    """
    settings = state.settings()
    scheduler = CrawlScheduler(settings, run=run_once)
    planned = scheduler.add_jobs()
    for job in planned:
        when = job.first_run.isoformat() if job.first_run else "never"
        state.stderr.print(
            f"{job.job_id}: {job.spec}; first run {when}"
            + (" (missed: now)" if job.catch_up else "")
        )
    if list_only:
        return

    def _stop(signum: int, _frame: FrameType | None) -> None:
        state.stderr.print(f"{signal.Signals(signum).name}: stopping after pages in flight...")
        scheduler.request_stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)
    heap.settle()  # this process runs crawls from here, for months
    scheduler.start()  # blocks until request_stop
    scheduler.wait_idle()
    state.stderr.print("scheduler stopped")


@cli.group()
def watch() -> None:
    """Saved searches evaluated after every run; new matches go to exports/watches/NAME.jsonl."""


@watch.command(name="add")
@click.argument("name")
@click.argument("query")
@pass_state
def watch_add(state: CliState, name: str, query: str) -> None:
    """Save a search; articles it matches from now on are reported after each run.

    \b
    Example:  crawldex watch add valproate 'valpro* AND comments:>5'
    """
    if not WATCH_NAME.match(name):
        raise click.BadParameter("use up to 64 letters, digits, '-', '_' or '.'", param_hint="NAME")
    now_matching = save_watch(state.settings(), name, query, datetime.now(UTC))
    state.stderr.print(f"watch {name!r} saved; {now_matching} articles match already")


@watch.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_state
def watch_list(state: CliState, as_json: bool) -> None:
    """List saved watches with their matches so far.

    \b
    Example:  crawldex watch list
    """
    watches = list_watches(state.settings())
    if as_json:
        echo_json(watches)
        return
    table = Table("name", "query", "matches", "since", "file")
    for w in watches:
        table.add_row(w["name"], w["query"], str(w["matches"]), w["created_at"][:19], w["file"])
    if not watches:
        state.stderr.print("no watches yet: `crawldex watch add NAME QUERY`")
        return
    Console(highlight=False).print(table)


@watch.command(name="remove")
@click.argument("name")
@pass_state
def watch_remove(state: CliState, name: str) -> None:
    """Delete a saved watch (its file of matches is kept).

    \b
    Example:  crawldex watch remove valproate
    """
    if not remove_watch(state.settings(), name):
        raise click.ClickException(f"no watch named {name!r}; see `crawldex watch list`")
    state.stderr.print(f"watch {name!r} removed")
