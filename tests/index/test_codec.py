"""The index's codec: missing columns looked up once, length columns read whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from whoosh.codec.whoosh3 import W3Codec, W3PerDocReader

from index import apply_changes
from index.codec import Codec
from index.layout import current_generation, open_generation
from tests.index.conftest import long_documents, segment_files


def test_segments_are_written_with_the_codec_and_remember_missing_columns(
    tmp_path: Path, articles: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "index"
    apply_changes(path, articles)
    generation = current_generation(path)
    assert generation is not None
    ix = open_generation(generation, mmap=False)
    (segment,) = ix._segments()
    assert type(segment.codec()) is Codec

    storage = segment.open_compound_file(ix.storage) if segment.is_compound() else ix.storage
    reader = segment.codec().per_document_reader(storage, segment)
    checks: list[str] = []
    exists = type(storage).file_exists
    monkeypatch.setattr(
        type(storage), "file_exists", lambda self, name: checks.append(name) or exists(self, name)
    )
    # ``id`` is not scored, so it has no length column: whoosh's reader checked the file
    # system on every call (once per posting while flushing); this one checks once.
    assert [reader.doc_field_length(n, "id") for n in range(3)] == [0, 0, 0]
    assert len(checks) == 1
    assert reader.doc_field_length(0, "text") > 0
    assert reader.doc_field_length(1, "text") > 0
    assert len(checks) == 2
    monkeypatch.undo()

    # Every length the same as whoosh's own reader gives, for every field and document.
    plain = W3PerDocReader(storage, segment)
    names = [name for name in ix.schema.names() if name != "published_at"]
    for docnum in range(segment.doc_count_all() + 1):
        for name in names:
            assert reader.doc_field_length(docnum, name) == plain.doc_field_length(docnum, name)
    assert any(reader.doc_field_length(n, "title") for n in range(segment.doc_count_all()))
    for other in (reader, plain):
        with pytest.raises(IndexError):
            other.doc_field_length(segment.doc_count_all() + 1, "text")
    plain.close()
    reader.close()
    storage.close()
    ix.close()


def test_the_codec_writes_the_same_bytes_as_whoosh_without_asking_positions(
    tmp_path: Path, articles: list[dict[str, Any]]
) -> None:
    documents = long_documents(articles)
    ours, ours_writer = segment_files(
        tmp_path / "ours", documents, lambda ix: ix.writer(codec=Codec(), compound=False)
    )
    theirs, their_writer = segment_files(
        tmp_path / "theirs", documents, lambda ix: ix.writer(codec=W3Codec(), compound=False)
    )
    assert {"pst", "trm", "_text_len.col"} <= set(ours)
    assert ours == theirs
    assert type(ours_writer.fieldwriter._postfile).__name__ == "_CountingFile"
    assert type(their_writer.fieldwriter._postfile).__name__ == "StructFile"
