"""Export stage: the record contract other services read, and its writers.

The contract is versioned by ``SCHEMA_VERSION``: fields are only ever added within a version
(consumers must ignore unknown fields); renaming, removing or retyping a field bumps it. The JSON
Schema (``crawldex schema``) is generated from the models below, and every exported record is
validated against them before it is written (the writers are in ``pipeline.feed``). Writes are
atomic: a temporary file in the target folder, fsynced, then renamed over the target, so a reader
never sees half a file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import ExportError

__all__ = [
    "SCHEMA_VERSION",
    "ArticleOut",
    "ExportStats",
    "TopicOut",
    "contract_record",
    "json_schema",
]

SCHEMA_VERSION = 1

# A day ("2025-11-01") or a full ISO 8601 timestamp with offset ("2025-11-01T09:30:00+00:00").
_DATE_OR_DATETIME = r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z))?$"


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = Field(
        description="Version of this contract; bumped only on an incompatible change."
    )
    id: str = Field(
        pattern=r"^[0-9a-f]{16}$", description="Stable id derived from the canonical URL."
    )
    url: str = Field(description="Canonical URL.")
    site: str = Field(description="Name of the configured site.")
    first_seen_at: AwareDatetime = Field(description="When crawldex first saw the record (UTC).")
    last_seen_at: AwareDatetime = Field(description="When crawldex last saw the record (UTC).")
    fetched_at: AwareDatetime | None = Field(
        description="When its own page was last fetched (UTC); "
        "null for an article known only from listing cards."
    )
    status: Literal["active", "gone"] = Field(
        description="'gone' once its page answers 404/410; gone records are kept."
    )


class ArticleOut(_Out):
    """An article record."""

    kind: Literal["article"]
    title: str | None = Field(description="Title without the site-name suffix.")
    published_at: str | None = Field(
        pattern=_DATE_OR_DATETIME,
        description="ISO 8601: a day, or a time with UTC offset when the page gives one.",
    )
    updated_at: str | None = Field(
        pattern=_DATE_OR_DATETIME, description="Same form as published_at."
    )
    author: str | None
    comment_count: int | None = Field(
        ge=0, description="null when the site shows no count (comments closed)."
    )
    summary: str | None
    text: str | None = Field(description="Body text, paragraphs separated by a blank line.")
    topics: list[str] = Field(
        description="The article's own topics (names), else the topics listing it."
    )
    listed_in: list[str] = Field(description="Names of every topic page the article was listed on.")
    language: str | None = Field(description="Primary language subtag, e.g. 'en'.")
    word_count: int = Field(ge=0)
    content_hash: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the content fields; changes when the content does.",
    )


class TopicOut(_Out):
    """A topic (category/tag listing) record."""

    kind: Literal["topic"]
    name: str | None
    description: str | None
    article_urls: list[str] = Field(
        description="Articles listed, in the site's order across pages."
    )
    article_count: int = Field(ge=0)


_MODELS: dict[str, type[_Out]] = {"article": ArticleOut, "topic": TopicOut}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of one exported line: an article or a topic, told apart by ``kind``."""
    article = ArticleOut.model_json_schema()
    topic = TopicOut.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://crawldex.invalid/schema/record-v{SCHEMA_VERSION}.json",
        "title": f"crawldex record, schema_version {SCHEMA_VERSION}",
        "oneOf": [{"$ref": "#/$defs/ArticleOut"}, {"$ref": "#/$defs/TopicOut"}],
        "$defs": {"ArticleOut": article, "TopicOut": topic},
    }


def contract_record(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A store record in the contract's shape, validated.

    Raises:
        ExportError: naming the record id and the field that breaks the contract.
    """
    kind = raw.get("kind")
    model = _MODELS.get(str(kind))
    if model is None:
        raise ExportError(
            f"record {raw.get('id')} has unknown kind {kind!r}",
            record_id=raw.get("id"),
            field="kind",
        )
    data = {name: raw.get(name) for name in model.model_fields}
    data["schema_version"] = SCHEMA_VERSION
    try:
        model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ExportError(
            f"record {raw.get('id')} ({raw.get('url')}) breaks the export contract "
            f"at {field!r}: {err['msg']}",
            record_id=raw.get("id"),
            field=field,
        ) from None
    return data


@dataclass(frozen=True, slots=True)
class ExportStats:
    """What an export wrote."""

    path: Path
    records: int
    articles: int
    topics: int


def atomic_write_lines(out: Path, lines: Iterable[str]) -> None:
    """Write text lines to ``out`` via a temporary file and a rename."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    except OSError as exc:
        raise ExportError(f"cannot write to {out.parent}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.writelines(lines)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(out)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ExportError(f"writing {out} failed: {exc.strerror}") from exc
        raise
