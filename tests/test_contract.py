"""The export contract other services depend on: names, types and version are pinned here.

Changing this file means changing the contract: add fields freely, but renaming, removing or
retyping one needs a SCHEMA_VERSION bump and a CHANGELOG entry.
"""

from __future__ import annotations

import pytest

from pipeline.errors import ExportError
from pipeline.export import SCHEMA_VERSION, ArticleOut, TopicOut, contract_record, json_schema

ARTICLE_KEYS = {
    "schema_version",
    "kind",
    "id",
    "url",
    "site",
    "title",
    "published_at",
    "updated_at",
    "author",
    "comment_count",
    "summary",
    "text",
    "topics",
    "listed_in",
    "language",
    "word_count",
    "first_seen_at",
    "last_seen_at",
    "fetched_at",
    "content_hash",
    "status",
}
TOPIC_KEYS = {
    "schema_version",
    "kind",
    "id",
    "url",
    "site",
    "name",
    "description",
    "article_urls",
    "article_count",
    "fetched_at",
    "first_seen_at",
    "last_seen_at",
    "status",
}


def test_version_and_keys_are_pinned():
    assert SCHEMA_VERSION == 1
    assert set(ArticleOut.model_fields) == ARTICLE_KEYS
    assert set(TopicOut.model_fields) == TOPIC_KEYS


def test_json_schema_covers_both_kinds():
    schema = json_schema()
    assert set(schema["$defs"]) == {"ArticleOut", "TopicOut"}
    props = schema["$defs"]["ArticleOut"]["properties"]
    assert set(props) == ARTICLE_KEYS
    # every key is always present (null when unknown), so consumers never need .get()
    assert set(schema["$defs"]["ArticleOut"]["required"]) == ARTICLE_KEYS
    assert set(schema["$defs"]["TopicOut"]["required"]) == TOPIC_KEYS


def _article(**changes):
    record = {
        "kind": "article",
        "id": "0123456789abcdef",
        "url": "http://a.test/x/",
        "site": "s",
        "title": "T",
        "published_at": "2025-11-01",
        "updated_at": None,
        "author": None,
        "comment_count": None,
        "summary": None,
        "text": None,
        "topics": [],
        "listed_in": [],
        "language": "en",
        "word_count": 0,
        "first_seen_at": "2025-11-20T12:00:00+00:00",
        "last_seen_at": "2025-11-20T12:00:00+00:00",
        "fetched_at": None,
        "content_hash": "0" * 64,
        "status": "active",
        "seq": 5,
        "sources": {},
    }
    record.update(changes)
    return record


def test_contract_record_drops_internal_fields_and_adds_the_version():
    out = contract_record(_article())
    assert set(out) == ARTICLE_KEYS
    assert out["schema_version"] == SCHEMA_VERSION


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("published_at", "Nov, 1 2025"),
        ("comment_count", -1),
        ("status", "deleted"),
        ("id", "XYZ"),
        ("first_seen_at", "2025-11-20T12:00:00"),
    ],
)
def test_a_record_breaking_the_contract_names_id_and_field(field, value):
    with pytest.raises(ExportError) as info:
        contract_record(_article(**{field: value}))
    assert info.value.record_id == (value if field == "id" else "0123456789abcdef")
    assert info.value.field == field
    assert field in str(info.value)
