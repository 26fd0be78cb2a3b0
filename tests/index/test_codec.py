"""The index's codec: missing columns looked up once, length columns read whole, a term's
postings written whole, small blocks compressed once, blocks and stored fields deflated by
ISA-L; whoosh's files and values throughout."""

from __future__ import annotations

import io
import random
import zlib
from array import array
from pathlib import Path
from typing import Any

import pytest
from whoosh import index as whoosh_index
from whoosh.codec.whoosh3 import W3Codec, W3PerDocReader
from whoosh.filedb.filestore import FileStorage
from whoosh.filedb.filetables import OrderedHashWriter
from whoosh.filedb.structfile import StructFile

import index.codec
from index import apply_changes
from index.codec import Codec, _compress, _TermsTable
from index.layout import current_generation, open_generation
from index.schema import build_schema
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


def test_the_codec_writes_whoosh_files_without_asking_positions(
    tmp_path: Path, articles: list[dict[str, Any]]
) -> None:
    """The same files as whoosh's, but for what ISA-L deflates (postings blocks, stored fields,
    and the terms file's pointers into the postings): those hold the same values."""
    documents = long_documents(articles)
    ours, ours_writer = segment_files(
        tmp_path / "ours", documents, lambda ix: ix.writer(codec=Codec(), compound=False)
    )
    theirs, their_writer = segment_files(
        tmp_path / "theirs", documents, lambda ix: ix.writer(codec=W3Codec(), compound=False)
    )
    assert {"pst", "trm", "_text_len.col", "_stored.col"} <= set(ours)
    assert set(ours) == set(theirs)
    deflated = {"pst", "trm", "_stored.col"}
    assert {kind: ours[kind] for kind in set(ours) - deflated} == {
        kind: theirs[kind] for kind in set(theirs) - deflated
    }
    assert _contents(tmp_path / "ours") == _contents(tmp_path / "theirs")
    assert type(ours_writer.fieldwriter._postfile).__name__ == "_CountingFile"
    assert type(their_writer.fieldwriter._postfile).__name__ == "StructFile"
    assert type(ours_writer.fieldwriter._tindex) is _TermsTable
    assert type(their_writer.fieldwriter._tindex) is OrderedHashWriter


def _contents(folder: Path) -> tuple[list[Any], list[Any]]:
    """Every posting (term, document, weight, value) and every document's stored fields of an
    index, read by whoosh."""
    with whoosh_index.open_dir(str(folder)).reader() as reader:
        postings = []
        for field, term in reader.all_terms():
            matcher = reader.postings(field, term)
            while matcher.is_active():
                postings.append((field, term, matcher.id(), matcher.weight(), matcher.value()))
                matcher.next()
        stored = [reader.stored_fields(docnum) for docnum in range(reader.doc_count_all())]
    assert len(postings) > 1000
    assert any(fields.get("text") for fields in stored)
    return postings, stored


class _Kept(io.BytesIO):
    """A file that keeps what was written when it is closed."""

    written = b""

    def close(self) -> None:
        self.written = self.getvalue()
        super().close()


def _table_bytes(make: Any, keys: list[bytes]) -> bytes:
    out = _Kept()
    table = make(StructFile(out))
    table.extras["fieldmap"] = {"text": 0}
    for key in keys:
        table.add(key, key[::-1] * 3)
    table.close()  # closes the file too
    return out.written


@pytest.mark.parametrize("count", [0, 1, 3000])
def test_the_terms_table_writes_whoosh_terms_file(count: int) -> None:
    rng = random.Random(count)
    keys = sorted(
        {bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12))) for _ in range(count)}
    )
    theirs = _table_bytes(OrderedHashWriter, keys)
    assert _table_bytes(_TermsTable, keys) == theirs
    # taking over a fresh whoosh table, as the field writer does
    assert _table_bytes(lambda f: _TermsTable.taking_over(OrderedHashWriter(f)), keys) == theirs
    table = _TermsTable(StructFile(io.BytesIO()))
    table.add(b"b", b"")
    with pytest.raises(ValueError, match="Keys must increase"):
        table.add(b"a", b"")


def test_the_terms_table_leaves_a_table_it_cannot_take_over() -> None:
    used = OrderedHashWriter(StructFile(io.BytesIO()))
    used.add(b"a", b"1")
    crc = OrderedHashWriter(StructFile(io.BytesIO()))
    crc.hashtype = 1
    assert _TermsTable.taking_over(used) is used
    assert _TermsTable.taking_over(crc) is crc


class _Lengths:
    """A per-document reader of another kind: lengths asked one document at a time."""

    def doc_field_length(self, docnum: int, fieldname: str, default: int = 0) -> int:
        return 0 if fieldname == "id" else docnum % 7 + len(fieldname)  # id: not scored


@pytest.mark.parametrize("lengths", [None, _Lengths()])
def test_terms_given_whole_are_written_as_whoosh_writes_their_postings(
    tmp_path: Path, lengths: Any
) -> None:
    """``add_terms`` against whoosh's ``add_postings`` on the same postings: terms of one to
    three blocks, weights that differ or not, and whoosh's spelling marks (document -1),
    which it skips (a term of nothing but marks still starts its field)."""
    schema = build_schema()
    rng = random.Random(11)
    terms: list[Any] = []
    for fieldname in ("author", "id", "summary", "text", "title"):
        for n in range(40):
            count = rng.choice((1, 2, 127, 128, 129, 300))
            docnums = sorted(rng.sample(range(400), count))
            if n % 9 == 0:
                docnums = [-1, *docnums]  # a spelling mark before the postings
            weights = [1.0 if n % 3 else float(rng.randrange(1, 4)) for _ in docnums]
            # empty values: none for ids (a fixed size of 0), some where whoosh leaves them out
            values = [
                b""
                if fieldname == "id" or (fieldname == "text" and d % 5 == 0)
                else bytes([d % 251, 1])
                for d in docnums
            ]
            terms.append((fieldname, f"t{n:03d}".encode(), docnums, weights, values))
    terms.append(("url", b"only-marks", [-1], [1.0], [b""]))  # starts its field, no term
    postings = [
        (field, term, docnum, weight, value)
        for field, term, docnums, weights, values in terms
        for docnum, weight, value in zip(docnums, weights, values, strict=True)
    ]
    grouped = [
        (field, term, array("q", docnums), array("d", weights), values)
        for field, term, docnums, weights, values in terms
    ]

    def written(folder: str, write: Any) -> dict[str, bytes]:
        storage = FileStorage(str(tmp_path / folder)).create()
        codec = Codec()
        segment = codec.new_segment(storage, "MAIN")
        fieldwriter = codec.field_writer(storage, segment)
        write(fieldwriter)
        fieldwriter.close()
        return {
            ext: (tmp_path / folder / segment.make_filename(ext)).read_bytes()
            for ext in (W3Codec.TERMS_EXT, W3Codec.POSTS_EXT)
        }

    theirs = written("theirs", lambda w: w.add_postings(schema, lengths, iter(postings)))
    ours = written("ours", lambda w: w.add_terms(schema, lengths, iter(grouped)))
    assert len(theirs[W3Codec.POSTS_EXT]) > 10_000
    assert ours == theirs


def test_small_blocks_are_compressed_once_and_the_cache_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[bytes] = []
    deflate = index.codec._deflate

    def counted(data: bytes) -> bytes:
        calls.append(data)
        return deflate(data)

    monkeypatch.setattr(index.codec, "_COMPRESSED", {})
    monkeypatch.setattr(index.codec, "_COMPRESSED_LIMIT", 3)
    monkeypatch.setattr(index.codec, "_deflate", counted)
    small, large = b"\x80\x02K\x07\x85q\x00.", bytes(range(200))
    for level in (3, 3, 1):
        assert zlib.decompress(_compress(small, level)) == small  # a zlib stream
    assert calls == [small]  # once, whatever whoosh's level
    for _ in range(2):
        assert zlib.decompress(_compress(large, 3)) == large
    assert calls[1:] == [large, large]  # a large block is not kept
    for n in range(4):
        _compress(bytes([n]), 3)
    assert len(index.codec._COMPRESSED) <= 3  # started over when full
