"""The segment writer adds text fields a field at a time, merges segments a term at a time, and
writes whoosh's segment, byte for byte."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from whoosh import fields
from whoosh import index as whoosh_index
from whoosh.writing import OPTIMIZE, SegmentWriter

import index.codec
import index.pool
import index.segment
from index.codec import Codec, _FieldWriter
from index.pool import GroupedPostingPool, use_grouped_pool
from index.schema import build_schema
from index.segment import Writer, _tier_items
from tests.index.conftest import long_documents, segment_files

_SCHEMA = build_schema()


@given(
    published=st.datetimes(),
    first_seen=st.datetimes(),
    comments=st.integers(min_value=-(2**31), max_value=2**31 - 1),
)
def test_a_numeric_fields_tiers_are_the_terms_whoosh_indexes(published, first_seen, comments):
    for name, value in (
        ("published", published),
        ("first_seen", first_seen),
        ("comments", comments),
    ):
        field = _SCHEMA[name]
        assert _tier_items(field, value) == list(field.index(value))
    plain = fields.NUMERIC(int, bits=32, shift_step=0)  # no tiers: whoosh's code
    assert _tier_items(plain, comments) is None
    assert _tier_items(_SCHEMA["comments"], [comments]) is None  # a list: whoosh's code
    assert _tier_items(_SCHEMA["published"], "2025-05-03") is None


def _pooled(kind: type[Any], limit_mb: int) -> Any:
    def make(ix: Any) -> Any:
        writer = kind(ix, codec=Codec(), compound=False, limitmb=limit_mb)
        use_grouped_pool(writer, limit_mb)
        return writer

    return make


@pytest.mark.parametrize("limit_mb", [1, 64])  # 1: the pool spills runs as it goes
def test_the_writer_writes_the_segment_whoosh_writes(
    tmp_path: Path, articles: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, limit_mb: int
) -> None:
    documents = long_documents(articles)
    documents[0]["_boost"] = 2.0  # whoosh's own code for this one
    documents[1]["author"] = None  # a field left out
    documents[2]["_stored_title"] = "a stored title that differs"
    calls: list[str] = []
    runs: list[str] = []
    add_field = GroupedPostingPool.add_field_postings
    add_run = GroupedPostingPool._add_run

    def counted(self: GroupedPostingPool, fieldname: str, docnum: int, items: list[Any]) -> int:
        calls.append(fieldname)
        return add_field(self, fieldname, docnum, items)

    def run_added(self: GroupedPostingPool, path: str) -> None:
        runs.append(path)
        add_run(self, path)

    flushed: list[str] = []
    add_terms = _FieldWriter.add_terms

    def by_term(self: _FieldWriter, *args: Any) -> None:
        flushed.append("terms")
        add_terms(self, *args)

    monkeypatch.setattr(index.pool.GroupedPostingPool, "add_field_postings", counted)
    monkeypatch.setattr(index.pool.GroupedPostingPool, "_add_run", run_added)
    monkeypatch.setattr(index.codec._FieldWriter, "add_terms", by_term)
    ours, writer = segment_files(tmp_path / "ours", documents, _pooled(Writer, limit_mb))
    # held in memory, the pool hands its postings over a term at a time; spilled, one by one
    assert flushed == ([] if limit_mb == 1 else ["terms"])
    # the text fields, and the numeric ones' tiers (a number prepared once, not once a tier)
    assert {"title", "summary", "text", "author", "published", "first_seen", "comments"} == set(
        calls
    )
    assert calls.count("text") == len(documents) - 2  # not the two with special keys
    calls.clear()
    flushed.clear()
    theirs, _ = segment_files(tmp_path / "theirs", documents, _pooled(SegmentWriter, limit_mb))
    assert calls == []
    assert flushed == []
    assert {"pst", "trm", "_stored.col", "_text_len.col"} <= set(ours)
    assert ours == theirs
    assert isinstance(writer.pool, GroupedPostingPool)
    assert (len(runs) > 2) is (limit_mb == 1)  # both writers spilled, or neither did


def _merged_segment(
    folder: Path, documents: list[dict[str, Any]], kind: type[Any], spill: bool
) -> dict[str, bytes]:
    """Write ``documents`` in three segments with whoosh's writer, delete some, then add the
    last few with a ``kind`` writer whose commit merges every segment into its own; returns
    the merged segment's files by kind."""
    folder.mkdir()
    ix = whoosh_index.create_in(str(folder), build_schema())
    thirds = [documents[:10], documents[10:22], documents[22:-4]]
    for part in thirds:
        writer = _pooled(SegmentWriter, 64)(ix)
        for document in part:
            writer.add_document(**document)
        writer.commit(merge=False)
    writer = _pooled(SegmentWriter, 64)(ix)
    for document in thirds[1][::3] + thirds[2][:1]:  # deleted: numbers missing from a docmap
        writer.delete_by_term("id", document["id"])
    writer.commit(merge=False)
    writer = _pooled(kind, 64)(ix)
    for document in documents[-4:]:
        writer.add_document(**document)
    if spill:
        writer.pool.save()  # a run of the new documents' postings, as past the memory limit
    writer.commit(mergetype=OPTIMIZE)
    ix.close()
    return {p.name.split(".", 1)[1]: p.read_bytes() for p in folder.glob("MAIN_*.*")}


@pytest.mark.parametrize("spill", [False, True])  # a pool that spilled takes merges in
def test_merged_segments_stream_into_the_segment_whoosh_writes(
    tmp_path: Path, articles: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, spill: bool
) -> None:
    documents = long_documents(articles)
    documents[12]["_boost"] = 2.0  # a merged segment with weights other than frequencies
    streamed: list[int] = []
    read = index.segment.segment_terms

    def counted(reader: Any, schema: Any, basedoc: int, docmap: Any) -> Any:
        streamed.append(basedoc)
        return read(reader, schema, basedoc, docmap)

    monkeypatch.setattr(index.segment, "segment_terms", counted)
    ours = _merged_segment(tmp_path / "ours", documents, Writer, spill)
    # held in memory, the pool's postings and the three segments' are merged a term at a time
    assert streamed == ([] if spill else [4, 14, 22])
    streamed.clear()
    theirs = _merged_segment(tmp_path / "theirs", documents, SegmentWriter, spill)
    assert streamed == []
    assert {"pst", "trm", "_stored.col", "_text_len.col"} <= set(ours)
    assert ours == theirs
