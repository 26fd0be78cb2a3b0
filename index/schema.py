"""Index stage, part 1: what an article record becomes in the whoosh index.

Defines the whoosh schema (one document per article), the schema version stamped beside every
index (and its check), and the conversion of an export-contract record dict into a whoosh
document. ``layout.py``, ``writer.py`` and ``search.py`` build on this; nothing outside ``index/``
sees a whoosh object.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from whoosh import columns, fields
from whoosh import query as wq
from whoosh.analysis import (
    CharsetFilter,
    IDTokenizer,
    LowercaseFilter,
    RegexTokenizer,
    StemFilter,
    StopFilter,
)
from whoosh.support.charset import accent_map
from whoosh.util.times import datetime_to_long, long_to_datetime

from index.analysis import FusedPositions
from pipeline.errors import SearchIndexError

logger = logging.getLogger(__name__)

#: Bump when a field, analyzer or boost changes; an index of another version must be rebuilt.
#: 2: content_hash, for checking the index against the store.
#: 3: dates indexed to the second or millisecond (``DATE_UNITS``), counts in 8-bit tiers.
SCHEMA_VERSION = 3
#: File written inside the index directory, next to whoosh's own files.
VERSION_FILE = "crawldex-index.json"
#: Fields searched by free text (no ``field:``); ``title`` weighs most through its field boost.
DEFAULT_FIELDS = ("title", "summary", "text", "topics", "author")
#: Date fields (``CoarseDatetime``) and their steps in microseconds. ``first_seen`` to the
#: millisecond: ``--new-since RUN`` compares it with a run's start, which follows the articles
#: the run before it saw by much more than that.
DATE_UNITS = {"published": 1_000_000, "first_seen": 1_000}
#: Text fields analyzed with ``ENGLISH``: the only ones where phrases and stemming apply.
STEMMED_FIELDS = ("title", "summary", "text")
#: Sort-column value of a missing date or comment count: whoosh's own default is the largest
#: value, which would put undated articles first when sorting newest first. Column values are
#: offset to be unsigned, so 0 is below any real value (``datetime.min``, -2**31 comments).
_MISSING_LOWEST = 0


def english_analyzer() -> Any:
    """Return the analyzer of English text fields: words, lowercase, accents folded, stemmed.

    This is whoosh's ``StemmingAnalyzer`` with a ``CharsetFilter(accent_map)`` placed *before* the
    stemmer rather than appended after it: stemming an accented word and folding afterwards
    gives "résumés" -> "resume" but "resumes" -> "resum", so the two would not find each other.
    """
    return (
        RegexTokenizer()
        | LowercaseFilter()
        | CharsetFilter(accent_map)
        | StopFilter()
        | StemFilter()
    )


def name_analyzer() -> Any:
    """Return the analyzer for names: words, lowercase, accents folded, no stemming."""
    return RegexTokenizer() | LowercaseFilter() | CharsetFilter(accent_map)


def build_schema() -> Any:
    """Return a fresh whoosh ``Schema`` for article documents (version ``SCHEMA_VERSION``)."""
    return fields.Schema(
        id=fields.ID(stored=True, unique=True, sortable=True),
        url=fields.ID(stored=True),
        title=_text(english_analyzer(), field_boost=3.0),
        summary=_text(english_analyzer(), field_boost=1.5),
        # Storing the full text roughly doubles the index size, but whoosh can only highlight
        # (build snippets from) stored text; re-reading the store per hit would be slower.
        text=_text(english_analyzer()),
        topics=fields.KEYWORD(commas=True, lowercase=True, scorable=True, stored=True),
        author=_text(name_analyzer()),
        site=fields.ID(stored=True, analyzer=_lowercase_id_analyzer()),
        published=CoarseDatetime(
            DATE_UNITS["published"],
            stored=True,
            sortable=columns.NumericColumn("Q", default=_MISSING_LOWEST),
        ),
        published_at=fields.STORED(),
        # 8-bit tiers (whoosh's default is 4): 4 terms a count instead of 8; counts are small,
        # so a range still reads a few terms
        comments=fields.NUMERIC(
            int,
            bits=32,
            shift_step=8,
            stored=True,
            sortable=columns.NumericColumn("I", default=_MISSING_LOWEST),
        ),
        first_seen=CoarseDatetime(
            DATE_UNITS["first_seen"], sortable=columns.NumericColumn("Q", default=_MISSING_LOWEST)
        ),
        status=fields.ID(),
        # The store's hash of the record's content: ``sync`` compares it with the store to find
        # documents a crash left stale. A column, so reading all of them is one pass.
        content_hash=fields.ID(sortable=True),
    )


class CoarseDatetime(fields.DATETIME):  # type: ignore[misc]  # whoosh is untyped
    """A ``DATETIME`` indexed in steps of ``unit`` microseconds, in whoosh's 8-bit tiers.

    whoosh counts microseconds, so a date's lowest tiers (1 us, 256 us, 65 ms, 16.8 s, often
    71.6 min) are terms of that document alone: one posting each, the dearest kind of term to
    write. To the second (``published``) only the 1 s and 4.3 min tiers are; to the millisecond
    (``first_seen``) the 1 ms and 256 ms ones. A range reads about as many terms either way
    (its edges span up to 255 values a tier). Replaying the 20k bench's index process: ~7 %
    less time (medians of 4 alternating rounds), an index 8.5 % smaller.

    Values are ``unit`` steps since 0001-01-01 (whoosh's microseconds // unit, so 0 stays
    below any real date). Query it with ``date_range``: whoosh's ``DateRange`` counts in
    microseconds. Stored values are the datetimes as given.
    """

    def __init__(self, unit: int, stored: bool = False, sortable: Any = False) -> None:
        fields.NUMERIC.__init__(self, int, 64, stored=stored, shift_step=8, sortable=sortable)
        self.unit = unit

    def prepare_datetime(self, x: Any) -> Any:
        value = super().prepare_datetime(x)  # microseconds, or bytes as given
        return value // self.unit if isinstance(value, int) else value

    def from_column_value(self, x: int) -> datetime:
        return _from_micro(x * self.unit)

    def from_bytes(self, bs: bytes) -> datetime:
        return _from_micro(fields.NUMERIC.from_bytes(self, bs) * self.unit)

    def parse_query(self, fieldname: str, qstring: str, boost: float = 1.0) -> Any:
        raise NotImplementedError("crawldex builds date queries with index.schema.date_range")

    def parse_range(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("crawldex builds date queries with index.schema.date_range")


def in_units(value: datetime, unit: int, *, ceil: bool = False) -> int:
    """A ``CoarseDatetime``'s value of a naive UTC datetime: rounded down, or up with ``ceil``."""
    micro = int(datetime_to_long(value))
    return -(-micro // unit) if ceil else micro // unit


def column_datetime(field: str, value: int) -> datetime:
    """The datetime of a date field's sort-column value."""
    return _from_micro(value * DATE_UNITS[field])


def _from_micro(value: int) -> datetime:
    """whoosh's ``long_to_datetime`` (microseconds since 0001-01-01), typed."""
    moment: datetime = long_to_datetime(value)
    return moment


def date_range(field: str, start: datetime | None, end: datetime | None) -> Any:
    """The documents whose date ``field`` (one of ``DATE_UNITS``) lies in [start, end) (naive
    UTC; None: open).

    A document's date counts as the step of its field's unit it falls in, and a bound inside a
    step takes that whole step (start rounded down, end up): no document in the span is ever
    left out.
    """
    unit = DATE_UNITS[field]
    return wq.NumericRange(
        field,
        None if start is None else in_units(start, unit),
        None if end is None else in_units(end, unit, ceil=True),
        endexcl=end is not None,
    )


def _text(analyzer: Any, field_boost: float = 1.0) -> Any:
    """Return a stored, phrase-searchable ``TEXT`` field that indexes through ``FusedPositions``."""
    field = fields.TEXT(analyzer=analyzer, field_boost=field_boost, stored=True)
    field.format = FusedPositions(field_boost=field_boost)
    return field


def _lowercase_id_analyzer() -> Any:
    """Return the analyzer of case-insensitive ID fields (site names)."""
    return IDTokenizer() | LowercaseFilter()


def to_index_datetime(value: str | date | datetime) -> datetime:
    """Turn an ISO date or timestamp into the naive UTC datetime whoosh stores.

    Date-only values become midnight UTC; naive timestamps are taken as UTC. whoosh's
    ``DATETIME`` drops tzinfo without converting, so aware values are converted first.

    Args:
        value: ``"2025-11-01"``, ``"2025-11-01T09:30:00+00:00"``, a ``date`` or a ``datetime``.

    Returns:
        A naive datetime in UTC.

    Raises:
        ValueError: the string is not ISO 8601.
    """
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        value = datetime.combine(value, time.min)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def date_span(value: str) -> tuple[datetime, datetime]:
    """Return the UTC span [start, end) named by ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD`` or a time.

    Raises:
        ValueError: ``value`` is none of those.
    """
    parts = value.split("-")
    if len(parts) == 1 and value.isdigit() and len(value) == 4:
        return datetime(int(value), 1, 1), datetime(int(value) + 1, 1, 1)
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        year, month = int(parts[0]), int(parts[1])
        return datetime(year, month, 1), datetime(year + month // 12, month % 12 + 1, 1)
    if len(value) == 10:
        day = datetime.combine(date.fromisoformat(value), time.min)
        return day, day + timedelta(days=1)
    moment = to_index_datetime(value)
    return moment, moment + timedelta(microseconds=1)


def is_indexable(record: Mapping[str, Any]) -> bool:
    """Return True when ``record`` belongs in the index: an article whose status is not gone."""
    return record.get("kind", "article") == "article" and record.get("status") != "gone"


def record_to_document(record: Mapping[str, Any]) -> dict[str, Any]:
    """Map an export-contract record to whoosh field values, leaving out null fields.

    Args:
        record: an article record dict (``id``, ``url``, ``title``, ``published_at``, ...).

    Returns:
        Keyword arguments for ``writer.update_document``.
    """
    doc: dict[str, Any] = {"id": str(record["id"]), "url": str(record.get("url") or "")}
    for name in ("title", "summary", "text", "author"):
        if record.get(name):
            doc[name] = str(record[name])
    if record.get("site"):
        doc["site"] = str(record["site"])
    topics = [str(t).strip() for t in record.get("topics") or () if str(t).strip()]
    if topics:
        doc["topics"] = ",".join(topics)
    if record.get("comment_count") is not None:
        doc["comments"] = int(record["comment_count"])
    doc["status"] = str(record.get("status") or "active")
    if record.get("content_hash"):
        doc["content_hash"] = str(record["content_hash"])
    published = _record_date(record, "published_at")
    if published is not None:
        doc["published"] = published
        doc["published_at"] = str(record["published_at"])
    first_seen = _record_date(record, "first_seen_at")
    if first_seen is not None:
        doc["first_seen"] = first_seen
    return doc


def _record_date(record: Mapping[str, Any], key: str) -> datetime | None:
    """Parse ``record[key]``; a malformed date is logged and left out, not fatal to a reindex."""
    raw = record.get(key)
    if not raw:
        return None
    try:
        return to_index_datetime(raw)
    except (TypeError, ValueError):
        logger.warning("record %s: %s=%r is not an ISO date; not indexed", record["id"], key, raw)
        return None


def write_version(path: Path) -> None:
    """Stamp ``SCHEMA_VERSION`` into ``path`` (an index directory)."""
    (path / VERSION_FILE).write_text(
        json.dumps({"schema_version": SCHEMA_VERSION}) + "\n", encoding="utf-8"
    )


def check_version(path: Path) -> None:
    """Raise SearchIndexError unless the index in ``path`` has schema ``SCHEMA_VERSION``."""
    stamp = path / VERSION_FILE
    try:
        found = json.loads(stamp.read_text(encoding="utf-8")).get("schema_version")
    except (OSError, ValueError, AttributeError):
        found = None
    if found != SCHEMA_VERSION:
        shown = "unknown" if found is None else found
        raise SearchIndexError(
            f"the search index in {path} has schema version {shown}, this crawldex "
            f"needs version {SCHEMA_VERSION}; run `crawldex reindex` to rebuild it from the store"
        )
