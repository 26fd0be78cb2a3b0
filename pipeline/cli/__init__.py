"""The ``crawldex`` command: parse options, load settings, call one library function, render.

The only place that imports click and rich and configures logging. Data goes to stdout (tables,
JSON Lines, CSV); progress and messages to stderr. Exit codes: 0 success, 1 some pages failed or
a runtime error, 2 a usage or configuration error.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.logging import RichHandler

from pipeline.config import Settings, load_settings
from pipeline.errors import ConfigError, PipelineError, QuerySyntaxError

__all__ = ["cli", "main"]

DEFAULT_CONFIG = Path("config.yaml")


@dataclass(slots=True)
class CliState:
    """Options of the ``crawldex`` group, shared by every command."""

    config_path: Path | None
    debug: bool
    stderr: Console

    def settings(self, **overrides: Any) -> Settings:
        """Settings from --config / CRAWLDEX_CONFIG, else ./config.yaml, else defaults."""
        path = self.config_path
        if path is None and DEFAULT_CONFIG.is_file():
            path = DEFAULT_CONFIG
        return load_settings(path, environ=os.environ, overrides=overrides)


class _Group(click.Group):
    """Turns our errors into one line on stderr (traceback only with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PipelineError as exc:
            if "--debug" in sys.argv:
                raise
            _fail(exc)


def _fail(exc: PipelineError) -> None:
    console = Console(stderr=True, highlight=False)
    console.print(f"[bold red]Error:[/] {exc}", markup=True, soft_wrap=True)
    if isinstance(exc, QuerySyntaxError) and exc.hint and exc.hint not in str(exc):
        console.print(f"Hint: {exc.hint}", soft_wrap=True, markup=False)
    raise SystemExit(2 if isinstance(exc, ConfigError | QuerySyntaxError) else 1)


@click.group(
    cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="CRAWLDEX_CONFIG",
    help="Config file (default: ./config.yaml if present; env CRAWLDEX_CONFIG).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="crawldex")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, verbose: int, debug: bool) -> None:
    """crawldex: crawl topic and article pages into records, a search index and exports.

    \b
    Try it:  crawldex demo
    Then:    crawldex --config crawldex-demo/config.yaml search "immune"
    """
    stderr = Console(stderr=True, highlight=False, soft_wrap=True)  # messages never wrap mid-word
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(console=stderr, show_path=False, rich_tracebacks=debug)],
        force=True,
    )
    ctx.obj = CliState(config_path=config_path, debug=debug, stderr=stderr)


def main() -> None:
    """Entry point of the ``crawldex`` command."""
    cli(prog_name="crawldex")


def echo_json(data: Any) -> None:
    """One JSON document on stdout."""
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


# Register the commands (each module adds its own to ``cli``).
from pipeline.cli import commands as _commands  # noqa: E402,F401
from pipeline.cli import demo as _demo  # noqa: E402,F401
from pipeline.cli import unattended as _unattended  # noqa: E402,F401
