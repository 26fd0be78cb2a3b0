"""Export stage, part two: CSV and Parquet writers, the change feed and the history export.

Hands on: files other services read. Every writer is atomic (a temporary file in the target
folder, then a rename) and writes records in change order (``seq``), so two exports of the same
store are identical.

Tabular layout (CSV and Parquet share it, ``TABLE_COLUMNS``): one row per record, articles and
topics together (a topic's article-only columns are empty and the other way round). Lists
(``topics``, ``listed_in``, ``article_urls``) are Parquet ``list<string>``; in CSV they are joined
with ``|`` (``LIST_SEPARATOR``; values are not escaped: topic names and URLs hold no ``|``).
In Parquet, ``first_seen_at``/``last_seen_at``/``fetched_at`` are ``timestamp[us, UTC]``;
``published_at``/``updated_at`` stay strings exactly as in the contract (a day, or a time with
offset), and ``published_date``/``updated_date`` add the day as written as a typed ``date32``.
CSV writes empty cells for null.

The change feed: after every run, the records whose ``seq`` passed the feed cursor (created,
changed or gone since the previous feed export) go to ``changes-<run>.<format>`` in the export
folder with a manifest ``changes-<run>.json`` (``run_id``, ``time``, ``since``, ``cursor``,
``counts``, ``files``); ``latest.json`` is a copy of the newest manifest. The cursor moves only
after the files and the manifest are written, so a crash re-exports (at least once), never skips.
"""

from __future__ import annotations

import csv
import heapq
import io
import json
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pipeline.config import Settings
from pipeline.errors import ExportError
from pipeline.export import atomic_write_lines, contract_record
from pipeline.store import Store

__all__ = [
    "FEED_CURSOR_KEY",
    "FORMATS",
    "HISTORY_COLUMNS",
    "LIST_SEPARATOR",
    "TABLE_COLUMNS",
    "FeedExport",
    "export_file",
    "export_history_file",
    "iter_changed_records",
    "write_feed",
    "write_history",
    "write_records",
]

logger = logging.getLogger(__name__)

FORMATS = ("jsonl", "csv", "parquet")
LIST_SEPARATOR = "|"
FEED_CURSOR_KEY = "feed_seq"

# (column, Parquet type name: see _arrow_type) in file order; the *_date columns are derived
# from the string beside them.
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("schema_version", "int16"),
    ("kind", "string"),
    ("id", "string"),
    ("url", "string"),
    ("site", "string"),
    ("status", "string"),
    ("title", "string"),
    ("published_at", "string"),
    ("published_date", "date32"),
    ("updated_at", "string"),
    ("updated_date", "date32"),
    ("author", "string"),
    ("comment_count", "int64"),
    ("summary", "string"),
    ("text", "string"),
    ("topics", "list<string>"),
    ("listed_in", "list<string>"),
    ("language", "string"),
    ("word_count", "int64"),
    ("content_hash", "string"),
    ("name", "string"),
    ("description", "string"),
    ("article_urls", "list<string>"),
    ("article_count", "int64"),
    ("first_seen_at", "timestamp"),
    ("last_seen_at", "timestamp"),
    ("fetched_at", "timestamp"),
)
HISTORY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("article_id", "string"),
    ("url", "string"),
    ("observed_at", "timestamp"),
    ("field", "string"),
    ("old", "string"),  # JSON text in CSV and Parquet (a title, a number, a status)
    ("new", "string"),
    ("run_id", "int64"),
)


@dataclass(frozen=True, slots=True)
class FeedExport:
    """What one change-feed export wrote."""

    manifest: Path
    since: int
    cursor: int
    counts: dict[str, int] = field(default_factory=dict)
    files: tuple[Path, ...] = ()


def iter_changed_records(
    store: Store, *, since: int = 0, kind: str | None = None, site: str | None = None
) -> Iterator[dict[str, Any]]:
    """Store records with ``seq > since``, articles and topics merged in ``seq`` order."""
    streams: list[Iterable[dict[str, Any]]] = []
    if kind in (None, "article"):
        streams.append(store.records.iter_articles(since_seq=since, site=site))
    if kind in (None, "topic"):
        streams.append(store.records.iter_topics(since_seq=since, site=site))
    return heapq.merge(*streams, key=lambda r: int(r["seq"]))


def write_records(records: Iterable[Mapping[str, Any]], fmt: str, out: Path) -> dict[str, int]:
    """Validate store records against the contract and write them to ``out`` in ``fmt``.

    Args:
        records: store records (``iter_changed_records``).
        fmt: ``jsonl``, ``csv`` or ``parquet``.
        out: the file to write (atomically).

    Returns:
        Counts of records written: ``{"article": n, "topic": n, "gone": n}``.

    Raises:
        ExportError: a record breaks the contract (nothing is written), or writing fails.
    """
    counts = {"article": 0, "topic": 0, "gone": 0}

    def validated() -> Iterator[dict[str, Any]]:
        for raw in records:
            record = contract_record(raw)
            counts[record["kind"]] += 1
            counts["gone"] += record["status"] == "gone"
            yield record

    if fmt == "jsonl":
        atomic_write_lines(out, (_json_line(r) for r in validated()))
    elif fmt == "csv":
        _write_csv(out, TABLE_COLUMNS, (_table_row(r) for r in validated()), _csv_cell)
    elif fmt == "parquet":
        _write_parquet(out, TABLE_COLUMNS, [_table_row(r) for r in validated()])
    else:
        raise ExportError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    return counts


def _json_line(record: Mapping[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def _table_row(record: Mapping[str, Any]) -> dict[str, Any]:
    row = {name: record.get(name) for name, _type in TABLE_COLUMNS}
    for name in ("published", "updated"):
        value = record.get(f"{name}_at")
        row[f"{name}_date"] = date.fromisoformat(value[:10]) if value else None
    for name in ("first_seen_at", "last_seen_at", "fetched_at"):
        value = row[name]
        row[name] = datetime.fromisoformat(value) if isinstance(value, str) else value
    return row


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return LIST_SEPARATOR.join(str(v) for v in value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _write_csv(
    out: Path,
    columns: tuple[tuple[str, str], ...],
    rows: Iterable[Mapping[str, Any]],
    cell: Callable[[Any], str],
) -> None:
    names = [name for name, _type in columns]

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(names)
        for row in rows:
            writer.writerow([cell(row.get(name)) for name in names])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    atomic_write_lines(out, lines())


def _write_parquet(
    out: Path, columns: tuple[tuple[str, str], ...], rows: list[dict[str, Any]]
) -> None:
    # pyarrow costs ~40 MB of memory to import: only Parquet exports pay for it
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([pa.field(name, _arrow_type(pa, kind)) for name, kind in columns])
    table = pa.Table.from_pylist(rows, schema=schema)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            prefix=f".{out.name}.", suffix=".tmp", dir=out.parent, delete=False
        ) as fh:
            tmp = Path(fh.name)
    except OSError as exc:
        raise ExportError(f"cannot write to {out.parent}: {exc.strerror}") from exc
    try:
        pq.write_table(table, tmp)
        tmp.replace(out)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ExportError(f"writing {out} failed: {exc.strerror}") from exc
        raise


def write_history(rows: Iterable[Mapping[str, Any]], fmt: str, out: Path) -> int:
    """Write history rows (``HistoryTable.iter_rows``) to ``out`` in ``fmt``; returns how many.

    JSON Lines keeps ``old``/``new`` as JSON values; CSV and Parquet hold them as JSON text.

    Raises:
        ExportError: writing fails, or the format is unknown.
    """
    names = [name for name, _type in HISTORY_COLUMNS]
    kept = [{name: row.get(name) for name in names} for row in rows]
    if fmt == "jsonl":
        atomic_write_lines(out, (_json_line(r) for r in kept))
        return len(kept)
    tabular = [
        {
            **r,
            "old": json.dumps(r["old"], ensure_ascii=False),
            "new": json.dumps(r["new"], ensure_ascii=False),
            "observed_at": datetime.fromisoformat(str(r["observed_at"])),
        }
        for r in kept
    ]
    if fmt == "csv":
        _write_csv(out, HISTORY_COLUMNS, tabular, _csv_cell)
    elif fmt == "parquet":
        _write_parquet(out, HISTORY_COLUMNS, tabular)
    else:
        raise ExportError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    return len(kept)


def write_feed(
    store: Store, export_dir: Path, *, run_id: int, now: datetime, formats: Iterable[str]
) -> FeedExport:
    """Export the records changed since the previous feed export, with a manifest.

    Args:
        store: the open store (the caller holds the crawl lock, so nothing changes meanwhile).
        export_dir: the export folder (``Settings.export_dir``).
        run_id: the run this export follows (names the files).
        now: the export time (UTC).
        formats: file formats to write (``FORMATS``).

    Returns:
        What was written; the store's feed cursor then equals ``cursor``.

    Raises:
        ExportError: a record breaks the contract or a file cannot be written (the cursor stays).
    """
    since = int(store.get_meta(FEED_CURSOR_KEY, "0") or 0)
    cursor = store.max_seq()
    stem = f"changes-{run_id:06d}"
    files: list[Path] = []
    counts = {"article": 0, "topic": 0, "gone": 0}
    if cursor > since:
        for fmt in dict.fromkeys(formats):
            path = export_dir / f"{stem}.{fmt}"
            counts = write_records(iter_changed_records(store, since=since), fmt, path)
            files.append(path)
    totals = {**counts, "records": counts["article"] + counts["topic"]}
    manifest = {
        "schema_version": 1,
        "run_id": run_id,
        "time": now.isoformat(),
        "since": since,
        "cursor": cursor,
        "counts": totals,
        "changes": store.changes_between(since, cursor),
        "files": [{"path": p.name, "format": p.suffix[1:]} for p in files],
    }
    text = json.dumps(manifest, indent=2) + "\n"
    manifest_path = export_dir / f"{stem}.json"
    atomic_write_lines(manifest_path, [text])
    atomic_write_lines(export_dir / "latest.json", [text])
    store.set_meta(FEED_CURSOR_KEY, str(cursor))
    logger.info("change feed: %s records since %s in %s", totals, since, stem)
    return FeedExport(manifest_path, since, cursor, totals, tuple(files))


def export_file(
    settings: Settings,
    out: Path,
    *,
    fmt: str = "jsonl",
    kind: str | None = None,
    site: str | None = None,
    since: int = 0,
) -> tuple[dict[str, int], int]:
    """Export the records with ``seq > since`` (all by default) to ``out`` in ``fmt``.

    Returns:
        The counts written and the cursor to pass as ``since`` next time (the newest change
        number when the export began: a record changed meanwhile may come again, never missing).

    Raises:
        ExportError: a record breaks the contract, or ``out`` cannot be written.
        StoreError: the store cannot be opened.
    """
    with Store(settings.storage.dir) as store:
        cursor = store.max_seq()
        records = iter_changed_records(store, since=since, kind=kind, site=site)
        return write_records(records, fmt, out), cursor


def export_history_file(settings: Settings, out: Path, *, fmt: str = "jsonl") -> int:
    """Write every history row (article id, observed_at, field, old, new) to ``out``.

    Raises:
        ExportError: ``out`` cannot be written. StoreError: the store cannot be opened.
    """
    with Store(settings.storage.dir) as store:
        return write_history(store.history.iter_rows(), fmt, out)


def _arrow_type(pa: Any, name: str) -> Any:
    """The pyarrow type of a column type name of ``TABLE_COLUMNS``/``HISTORY_COLUMNS``."""
    if name == "timestamp":
        return pa.timestamp("us", tz="UTC")
    if name == "list<string>":
        return pa.list_(pa.string())
    return getattr(pa, name)()
