"""Watches: saved searches evaluated after every run.

A watch is a name and a query in the search language (``crawldex search``). When it is added, the
articles it already matches are remembered; after each run the query is run again over the whole
index, and articles it matches for the first time are the watch's new matches: listed in the run
report and appended, one JSON object per line, to ``<export dir>/watches/NAME.jsonl``. The file is
appended before the matches are remembered, so a crash in between repeats lines, never loses one.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import index as search_index
from pipeline.config import Settings
from pipeline.errors import ConfigError, ExportError
from pipeline.store import Store
from pipeline.sync import index_dir

__all__ = [
    "WATCH_NAME",
    "add_watch",
    "evaluate_watches",
    "list_watches",
    "remove_watch",
    "save_watch",
    "watch_file",
]

logger = logging.getLogger(__name__)

WATCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PAGE = 500


def watch_file(settings: Settings, name: str) -> Path:
    """Where a watch's new matches are appended."""
    return settings.export_dir / "watches" / f"{name}.jsonl"


def add_watch(settings: Settings, store: Store, name: str, query: str, now: datetime) -> int:
    """Save a watch; the articles it matches now are not reported as new later.

    Returns:
        How many articles it matches now.

    Raises:
        ConfigError: a bad name, or a watch of that name exists.
        QuerySyntaxError: the query cannot be parsed.
    """
    if not WATCH_NAME.match(name):
        raise ConfigError(
            f"watch name {name!r}: use up to 64 letters, digits, '-', '_' or '.' (it names a file)",
            key="watch",
        )
    hits = _all_hits(settings, query)  # parses the query first: a bad one is never saved
    with store.transaction():
        if not store.watches.add(name, query, now):
            raise ConfigError(
                f"a watch named {name!r} exists; `crawldex watch remove {name}` first",
                key="watch",
            )
        store.watches.add_hits(name, (h.id for h in hits), now, None)
    return len(hits)


def evaluate_watches(
    settings: Settings, store: Store, *, run_id: int, now: datetime
) -> dict[str, list[dict[str, Any]]]:
    """Run every watch; returns each watch's new matches (watches without any are left out).

    Raises:
        SearchIndexError: the index cannot be read. ExportError: a watch file cannot be written.
    """
    found: dict[str, list[dict[str, Any]]] = {}
    for watch in store.watches.all():
        name = watch["name"]
        known = store.watches.known_hits(name)
        new = [h for h in _all_hits(settings, watch["query"]) if h.id not in known]
        if not new:
            continue
        lines = [_match(h, name, run_id, now) for h in new]
        _append(watch_file(settings, name), lines)
        with store.transaction():
            store.watches.add_hits(name, (h.id for h in new), now, run_id)
        found[name] = lines
        logger.info("watch %s: %d new matches", name, len(new))
    return found


def _all_hits(settings: Settings, query: str) -> list[search_index.Hit]:
    hits: list[search_index.Hit] = []
    page = 1
    while True:
        results = search_index.search(
            index_dir(settings), query, sort="date", limit=_PAGE, page=page
        )
        hits.extend(results.hits)
        if page >= results.pages:
            return hits
        page += 1


def _match(hit: search_index.Hit, name: str, run_id: int, now: datetime) -> dict[str, Any]:
    return {
        "watch": name,
        "matched_at": now.isoformat(),
        "run_id": run_id,
        "id": hit.id,
        "url": hit.url,
        "title": hit.title,
        "published_at": hit.published_at,
        "comment_count": hit.comment_count,
        "site": hit.site,
        "topics": list(hit.topics),
    }


def _append(path: Path, lines: list[dict[str, Any]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    except OSError as exc:
        raise ExportError(f"cannot append to {path}: {exc.strerror}") from exc


def save_watch(settings: Settings, name: str, query: str, now: datetime) -> int:
    """``add_watch`` on the data directory's store; returns how many articles match now."""
    with Store(settings.storage.dir) as store:
        return add_watch(settings, store, name, query, now)


def remove_watch(settings: Settings, name: str) -> bool:
    """Delete a watch (its file of matches stays); False when there was none."""
    with Store(settings.storage.dir) as store, store.transaction():
        return store.watches.remove(name)


def list_watches(settings: Settings) -> list[dict[str, Any]]:
    """Every watch: name, query, created_at, matches so far, and its file."""
    with Store(settings.storage.dir) as store:
        return [{**w, "file": str(watch_file(settings, w["name"]))} for w in store.watches.all()]
