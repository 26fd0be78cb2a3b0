"""crawldex: crawl topic and article pages of content sites into normalized records, a full-text
search index and versioned exports.

The stages, in order (each its own module)::

    config -> frontier -> fetch -> extract -> normalize -> store -> index (sync) -> export
                                      run.run_once chains them; schedule runs it on a timer

Use it from Python::

    from pipeline import load_settings, run_once
    report = run_once(load_settings(Path("config.yaml")))
"""

from __future__ import annotations

import logging

from pipeline.config import Settings, SiteConfig, load_settings
from pipeline.errors import (
    BadStatus,
    ConfigError,
    ExportError,
    ExtractError,
    FetchError,
    FetchTimeout,
    PageSkipped,
    PipelineError,
    QuerySyntaxError,
    SearchIndexError,
    StoreError,
    TooLarge,
)
from pipeline.export import SCHEMA_VERSION, json_schema
from pipeline.run import RunReport, export_records, inspect_page, reindex, run_once, store_status

__all__ = [
    "SCHEMA_VERSION",
    "BadStatus",
    "ConfigError",
    "ExportError",
    "ExtractError",
    "FetchError",
    "FetchTimeout",
    "PageSkipped",
    "PipelineError",
    "QuerySyntaxError",
    "RunReport",
    "SearchIndexError",
    "Settings",
    "SiteConfig",
    "StoreError",
    "TooLarge",
    "export_records",
    "inspect_page",
    "json_schema",
    "load_settings",
    "reindex",
    "run_once",
    "store_status",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
