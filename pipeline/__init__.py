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

import importlib
import logging
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from pipeline.config import Settings, SiteConfig, load_settings
    from pipeline.export import SCHEMA_VERSION, json_schema
    from pipeline.run import (
        RunReport,
        export_records,
        inspect_page,
        reindex,
        run_once,
        store_status,
    )

#: The API's names from the stage modules, imported on first use: the crawl's worker and index
#: processes import ``pipeline.workers`` and ``pipeline.follow``, and importing the whole
#: pipeline with them (``pipeline.run`` and all it needs) cost each ~0.2 s of CPU a crawl.
_LAZY = {
    **dict.fromkeys(("Settings", "SiteConfig", "load_settings"), "pipeline.config"),
    **dict.fromkeys(("SCHEMA_VERSION", "json_schema"), "pipeline.export"),
    **dict.fromkeys(
        ("RunReport", "export_records", "inspect_page", "reindex", "run_once", "store_status"),
        "pipeline.run",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
