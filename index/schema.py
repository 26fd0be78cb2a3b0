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
from whoosh.analysis import (
    CharsetFilter,
    IDTokenizer,
    LowercaseFilter,
    RegexTokenizer,
    StemFilter,
    StopFilter,
)
from whoosh.support.charset import accent_map

from index.analysis import FusedPositions
from pipeline.errors import SearchIndexError

logger = logging.getLogger(__name__)

#: Bump when a field, analyzer or boost changes; an index of another version must be rebuilt.
SCHEMA_VERSION = 2  # 2: content_hash, for checking the index against the store
#: File written inside the index directory, next to whoosh's own files.
VERSION_FILE = "crawldex-index.json"
#: Fields searched by free text (no ``field:``); ``title`` weighs most through its field boost.
DEFAULT_FIELDS = ("title", "summary", "text", "topics", "author")
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
        published=fields.DATETIME(
            stored=True, sortable=columns.NumericColumn("Q", default=_MISSING_LOWEST)
        ),
        published_at=fields.STORED(),
        comments=fields.NUMERIC(
            int, bits=32, stored=True, sortable=columns.NumericColumn("I", default=_MISSING_LOWEST)
        ),
        first_seen=fields.DATETIME(sortable=columns.NumericColumn("Q", default=_MISSING_LOWEST)),
        status=fields.ID(),
        # The store's hash of the record's content: ``sync`` compares it with the store to find
        # documents a crash left stale. A column, so reading all of them is one pass.
        content_hash=fields.ID(sortable=True),
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
