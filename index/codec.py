"""Index stage: whoosh's segment format with faster field lengths (same files on disk).

While flushing a segment, whoosh asks the new segment's per-document reader for the length of
the field of every posting it writes, and scoring asks it for every matching document. Two costs
of ``W3PerDocReader`` there:

- for fields without a length column (ids, numbers and dates, which are not scored) it does not
  remember that the column is missing and asks the file system again: one ``os.path.exists`` per
  posting, about 13 % of indexing time;
- for the others each lookup is a seek and a one-byte read through two column-reader layers.

``Codec`` is ``W3Codec`` with a reader that remembers missing columns and reads a field's length
column (one byte per document) in one piece the first time it is asked.

Writing, whoosh asks the postings and terms files for their position (``tell``) at the start and
end of every term's postings and for every key of the terms table. On a buffered file each
``tell`` is an ``lseek`` system call (10 % of an index build's samples in py-spy, which counts
time in system calls; about 4 % of its CPU, measured). ``Codec``'s field writer opens those
files as a ``StructFile`` that counts the bytes it writes instead.

Flushing a segment, whoosh hands its postings to the field writer one call per posting
(``FieldWriter.add_postings``, four Python frames each, ~470,000 for 2,000 articles).
``_FieldWriter.add_terms`` takes a term's postings at once, as ``GroupedPostingPool`` holds
them, and sets the postings writer's block from slices. Each block is deflated, which costs
several us however small the block; ``_PostingsWriter`` deflates a small block once and
remembers it (most blocks are a term's one posting, and repeat).

whoosh deflates each postings block and each document's stored fields with zlib at level 3:
~15 % of the index process's samples on 50 KB articles. ``Codec`` has ISA-L (``isal``, already
the fetcher's gzip inflater) deflate them, three times as fast; whoosh reads them with zlib as
before. Apart from those blocks (and the terms file's pointers to them), the files are byte for
byte W3Codec's.

Merging segments, whoosh reads every posting of every merged segment through a matcher (five
calls a posting) into the writer's pool, which passes its memory limit and spills. ``segment_terms``
reads a merged segment's terms in order, each term's postings a block at a time, renumbered for
the new segment, so the writer can stream them into the field writer beside its pool's own
(``index.segment``). Same values, same files.

The terms file is a hash table that whoosh's ``OrderedHashWriter`` builds in memory until the
segment is closed: a ``(hash, position)`` tuple of two ints per term, ~125 bytes. A segment of
22,000 articles has ~220,000 terms (most of them ids, one per document): 28 MB, the index
process's peak at 100,000 articles. ``_TermsTable`` keeps them in two arrays per bucket, 12
bytes a term, and writes the same file.

Segments pickle their codec into the index's table of contents, so ``index.codec.Codec`` must
keep its name and module (an index written by it cannot be opened without it); an index written
with the plain ``W3Codec`` opens and merges as before.
"""

from __future__ import annotations

import pickle
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from copy import copy
from hashlib import md5
from typing import Any

from isal import isal_zlib
from whoosh import columns
from whoosh.codec.whoosh3 import (
    LENGTHS_COLUMN,
    WHOOSH3_HEADER_MAGIC,
    W3Codec,
    W3FieldWriter,
    W3LeafMatcher,
    W3PerDocReader,
    W3PerDocWriter,
    W3PostingsWriter,
    W3TermsReader,
    _lenfield,
)
from whoosh.columns import NumericColumn
from whoosh.filedb.filetables import OrderedHashWriter, _lengths, _pointer
from whoosh.filedb.structfile import StructFile
from whoosh.system import IS_LITTLE
from whoosh.util.numeric import byte_to_length, length_to_byte

#: A length byte -> the field length it stands for (whoosh stores lengths as one lossy byte).
_LENGTHS = tuple(byte_to_length(b) for b in range(256))


class _PerDocReader(W3PerDocReader):  # type: ignore[misc]  # whoosh is untyped
    """``W3PerDocReader`` that remembers missing columns and reads length columns whole."""

    def doc_field_length(self, docnum: int, fieldname: str, default: int = 0) -> Any:
        raw = self._length_bytes(fieldname)
        if raw is None:
            return super().doc_field_length(docnum, fieldname, default)
        if docnum > self._doccount:
            raise IndexError(f"Asked for docnum {docnum!r} of {self._doccount}")
        code = raw[docnum] if docnum < len(raw) else 0
        # whoosh returns None, not ``default``, for a document with a zero length byte
        return _LENGTHS[code] if code else None

    def lengths_of(self, fieldname: str) -> _Lengths:
        """How to read ``fieldname``'s length of many documents at once, decided once for the
        field: ``doc_field_length`` of each (0 for a zero length), or None for a field without
        a length column, for which whoosh answers 0 throughout."""
        raw = self._length_bytes(fieldname)
        doccount = self._doccount
        if raw is None:
            if self._cached_reader(_lenfield(fieldname), LENGTHS_COLUMN) is not None:
                return _asking(self, fieldname)  # another kind of length column: whoosh reads it

            def none(docnums: Sequence[int]) -> None:
                _check(docnums, doccount)

            return none
        size = len(raw)

        def read(docnums: Sequence[int]) -> list[int]:
            _check(docnums, doccount)
            return [_LENGTHS[raw[docnum]] if docnum < size else 0 for docnum in docnums]

        return read

    def _length_bytes(self, fieldname: str) -> bytes | None:
        """``_length_column(fieldname)``, read once."""
        lengths: dict[str, bytes | None] = self.__dict__.setdefault("_lengths_read", {})
        if fieldname not in lengths:
            lengths[fieldname] = self._length_column(fieldname)
        return lengths[fieldname]

    def _length_column(self, fieldname: str) -> bytes | None:
        """The field's length bytes, one per document (None: let whoosh's reader answer)."""
        reader = self._cached_reader(_lenfield(fieldname), LENGTHS_COLUMN)
        if type(reader) is not NumericColumn.Reader or reader._fixedlen != 1:
            return None  # no column (whoosh answers ``default``) or not the one-byte kind
        return bytes(reader._dbfile.get(reader._basepos, reader._count))

    def _cached_reader(self, fieldname: str, column: Any) -> Any:
        try:
            return self._readers[fieldname]
        except KeyError:
            reader = self._readers[fieldname] = super()._cached_reader(fieldname, column)
            return reader


class _CountingFile(StructFile):  # type: ignore[misc]
    """A ``StructFile`` over a file it creates, knowing its position without asking the OS."""

    def __init__(self, fileobj: Any, name: str | None = None, onclose: Any = None) -> None:
        super().__init__(fileobj, name=name, onclose=onclose)
        self._position: int = fileobj.tell()

    def write(self, data: Any) -> int:
        written: int = self.file.write(data)
        self._position += written
        return written

    def tell(self) -> int:
        return self._position

    # StructFile writes these two to the file itself: here they go through ``write``.
    def write_pickle(self, obj: Any, protocol: int = -1) -> None:
        self.write(pickle.dumps(obj, protocol))

    def write_array(self, arry: Any) -> None:
        if IS_LITTLE:
            arry = copy(arry)
            arry.byteswap()
        self.write(arry.tobytes())

    def seek(self, *args: Any) -> int:
        position: int = self.file.seek(*args)
        self._position = position
        return position


class _TermsTable(OrderedHashWriter):  # type: ignore[misc]
    """``OrderedHashWriter`` keeping each bucket's hashes and positions in two arrays rather
    than a list of tuples (12 bytes a key instead of ~125); the file it writes is the same."""

    lastkey: bytes

    def __init__(self, dbfile: Any) -> None:
        super().__init__(dbfile)
        self._use_arrays()

    def _use_arrays(self) -> None:
        """Empty arrays per bucket in place of whoosh's lists, which nothing else may fill."""
        self._hashes = [array("I") for _ in range(256)]
        self._positions = [array("q") for _ in range(256)]
        del self.buckets

    @classmethod
    def taking_over(cls, table: Any) -> Any:
        """This kind of table in place of whoosh's ``table``, which has written its header and
        holds no key yet (what ``W3FieldWriter`` makes); the same file and extras."""
        if (
            type(table) is not OrderedHashWriter
            or table.hashtype != 0  # not whoosh's MD5: ``add`` computes that one
            or len(table.index)
            or any(table.buckets)
        ):
            return table
        ours = cls.__new__(cls)
        ours.__dict__.update(table.__dict__)
        ours._use_arrays()
        return ours

    def add(self, key: bytes, value: bytes) -> None:
        # OrderedHashWriter.add and HashWriter.add in one
        if key <= self.lastkey:
            raise ValueError(f"Keys must increase: {self.lastkey!r}..{key!r}")
        assert type(key) is bytes  # as whoosh checks
        assert type(value) is bytes
        dbfile = self.dbfile
        pos = dbfile.tell()
        self.index.append(pos)
        dbfile.write(_lengths.pack(len(key), len(value)))
        dbfile.write(key)
        dbfile.write(value)
        # md5_hash: the low 32 bits of the key's MD5, taken from the digest's last 4 bytes
        h = int.from_bytes(md5(key, usedforsecurity=False).digest()[-4:], "big")
        self._hashes[h & 255].append(h)
        self._positions[h & 255].append(pos)
        self.lastkey = key

    def _write_hashes(self) -> None:
        # HashWriter._write_hashes, a bucket's table built from its arrays, then dropped
        dbfile = self.dbfile
        null = (0, 0)
        for bucket in range(256):
            hashes, positions = self._hashes[bucket], self._positions[bucket]
            self._hashes[bucket], self._positions[bucket] = array("I"), array("q")
            numslots = 2 * len(hashes)
            self.directory.append((dbfile.tell(), numslots))
            hashtable = [null] * numslots
            for hashval, position in zip(hashes, positions, strict=True):
                slot = (hashval >> 8) % numslots
                while hashtable[slot] != null:
                    slot = (slot + 1) % numslots
                hashtable[slot] = (hashval, position)
            dbfile.write(b"".join([_pointer.pack(h, p) for h, p in hashtable]))


class _FieldWriter(W3FieldWriter):  # type: ignore[misc]
    """``W3FieldWriter`` writing its terms and postings files through ``_CountingFile``, its
    terms table with ``_TermsTable``, and taking a term's postings in one call."""

    def __init__(self, codec: Any, storage: Any, segment: Any) -> None:
        super().__init__(codec, storage, segment)
        self._tindex: Any = _TermsTable.taking_over(self._tindex)

    def _create_file(self, ext: str) -> Any:
        made = super()._create_file(ext)
        if type(made) is not StructFile or not made.is_real:
            return made  # another storage's file: leave it as it is
        return _CountingFile(made.file, name=made._name, onclose=made.onclose)

    def add_terms(self, schema: Any, lengths: Any, terms: Iterable[Any]) -> None:
        """What ``add_postings`` does with the postings of ``terms`` (``(field, term bytes,
        document numbers, weights, values)``, in whoosh's order, as ``GroupedPostingPool``
        gives them), writing each term's blocks from slices instead of one call per posting.
        The files written are the same, byte for byte."""
        lastfn = None
        lengths_of: _Lengths = _no_lengths
        for fieldname, tbytes, docnums, weights, values in terms:
            if fieldname != lastfn:
                if lastfn is not None:
                    self.finish_field()
                self.start_field(fieldname, schema[fieldname])
                lastfn = fieldname
                if isinstance(lengths, _PerDocReader):
                    lengths_of = lengths.lengths_of(fieldname)
                elif lengths is not None:
                    lengths_of = _asking(lengths, fieldname)
            if docnums[0] == -1:  # whoosh's mark of a spelling word, not a posting: skipped
                kept = [i for i, docnum in enumerate(docnums) if docnum != -1]
                if not kept:
                    continue
                docnums = array("q", [docnums[i] for i in kept])
                weights = array("d", [weights[i] for i in kept])
                values = [values[i] for i in kept]
            self.start_term(tbytes)
            _fill_blocks(self._postwriter, docnums, weights, values, lengths_of(docnums))
            self.finish_term()
        if lastfn is not None:
            self.finish_field()


#: Document numbers -> their lengths of one field (None: all 0), as ``add_postings`` asks them.
_Lengths = Callable[[Sequence[int]], "list[int] | None"]


def _no_lengths(docnums: Sequence[int]) -> None:
    """Lengths when the writer keeps no length statistics: ``add_postings`` takes 0 for all."""


def _asking(reader: Any, fieldname: str) -> _Lengths:
    """Lengths asked of a per-document reader a document at a time, as ``add_postings`` does."""
    length = reader.doc_field_length
    return lambda docnums: [length(docnum, fieldname) or 0 for docnum in docnums]


def _check(docnums: Sequence[int], doccount: int) -> None:
    """Raise IndexError, as whoosh's reader does, for a number past the segment's documents."""
    if docnums and max(docnums) > doccount:
        raise IndexError(f"Asked for docnum {max(docnums)!r} of {doccount}")


def _fill_blocks(
    writer: Any,
    docnums: array[int],
    weights: array[float],
    values: list[bytes],
    lengths: list[int] | None,
) -> None:
    """Give a started term's postings to whoosh's ``W3PostingsWriter`` a block at a time: the
    state ``add_posting`` leaves after each posting of a block, set from slices. Full blocks
    are written as ``add_posting`` writes them (when the next posting comes); the last is left
    for ``finish_postings``."""
    limit = writer._blocklimit
    for start in range(0, len(docnums), limit):
        if start:
            writer._write_block()
        end = start + limit
        block_weights = weights[start:end]
        writer._ids = array("I", docnums[start:end])
        writer._weights = array("f", block_weights)
        writer._values = [value for value in values[start:end] if value]
        heaviest = max(block_weights)
        writer._maxweight = heaviest if heaviest > 0 else 0
        block_lengths = [length for length in lengths[start:end] if length] if lengths else None
        if block_lengths:
            writer._minlength = min(block_lengths)
            writer._maxlength = max(block_lengths)
        else:
            writer._minlength, writer._maxlength = None, 0


def _compress(data: bytes, level: int) -> bytes:
    """A block deflated by ISA-L (``_deflate``), remembered for small blocks.

    ``level`` is whoosh's (3): it is written in each block's header, where readers only check
    that it is not 0, and whoosh's ``zlib.decompress`` reads what ISA-L writes.

    Most of a segment's blocks are a term's one posting: ~14 bytes, the same for every id-like
    term of a document (``((docnum,), None, None)``) and again in each segment, whose numbers
    restart at 0. About 70 % of them repeat one already compressed (2,000 articles: 28,565
    blocks, 8,470 distinct), and deflate gives the same bytes for the same input and level.
    Each call sets up a deflate stream, however small the block (zlib's took 3-7 us in a
    warmed-up process; remembering them made building 5,000 articles 2 % faster then).
    """
    if len(data) > _SMALL_BLOCK:
        return _deflate(data)
    found = _COMPRESSED.get(data)
    if found is None:
        if len(_COMPRESSED) >= _COMPRESSED_LIMIT:
            _COMPRESSED.clear()
        found = _COMPRESSED[data] = _deflate(data)
    return found


def _deflate(data: bytes) -> bytes:
    """``data`` as a zlib stream, by ISA-L at its level 1.

    On the blocks of a 3,000-article build (scratch ``compbench.py``): postings blocks (2.4 KB)
    in 13.2 us against zlib's 39.0 us at whoosh's level 3, 9 % larger (ratio 0.351 against
    0.323); stored fields (3.6 KB) in 16.9 against 51.5 us, the same size (0.466).
    """
    return isal_zlib.compress(data, _ISAL_LEVEL)


#: ISA-L's level 1 (of 0-3): level 0 made postings blocks a third larger, 2 took the same time
#: for the same size, 3 saved 1 % of the size for a third more time.
_ISAL_LEVEL = 1


#: Blocks up to this many bytes are compressed once (a term's few postings; a full block of
#: 128 is several KB and rarely repeats).
_SMALL_BLOCK = 64
#: Small blocks remembered before the cache starts over: ~1 MB at most.
_COMPRESSED_LIMIT = 4096
_COMPRESSED: dict[bytes, bytes] = {}


class _PostingsWriter(W3PostingsWriter):  # type: ignore[misc]
    """``W3PostingsWriter`` whose small blocks are compressed once (``_compress``)."""

    def _write_block(self, last: bool = False) -> None:
        # whoosh 2.7's W3PostingsWriter._write_block (BSD licence), but for ``_compress``
        if not self._blockcount:
            self._postfile.write(WHOOSH3_HEADER_MAGIC)
        self._terminfo.add_block(self)
        databytes = pickle.dumps((self._mini_ids(), self._mini_weights(), self._mini_values()), 2)
        comp = self._compression
        if comp:
            databytes = _compress(databytes, comp)
        ids = self._ids
        info = (
            len(ids),
            ids[-1],
            self._maxweight,
            comp,
            length_to_byte(self._minlength),
            length_to_byte(self._maxlength),
        )
        infobytes = pickle.dumps(info, 2)
        blocklength = len(infobytes) + len(databytes)
        postfile = self._postfile
        postfile.write_int(-blocklength if last else blocklength)  # negative: the last block
        postfile.write(infobytes)
        postfile.write(databytes)
        self._blockcount += 1
        self._new_block()


class _StoredBytes(columns.CompressedBytesColumn):  # type: ignore[misc]
    """whoosh's column of stored fields, each document's deflated by ISA-L (``_deflate``);
    read by whoosh's own reader, with ``zlib``."""

    def writer(self, dbfile: Any) -> Any:
        return self.Writer(dbfile)

    class Writer(columns.VarBytesColumn.Writer):  # type: ignore[misc]
        def add(self, docnum: int, value: bytes) -> None:
            columns.VarBytesColumn.Writer.add(self, docnum, _deflate(value))


_STORED_COLUMN = columns.PickleColumn(_StoredBytes())


class _PerDocWriter(W3PerDocWriter):  # type: ignore[misc]
    """``W3PerDocWriter`` whose stored fields are deflated by ISA-L."""

    def _create_column(self, fieldname: str, column: Any) -> None:
        super()._create_column(fieldname, _STORED_COLUMN if fieldname == "_stored" else column)


class Codec(W3Codec):  # type: ignore[misc]
    """``W3Codec`` whose per-document readers remember missing columns and read length
    columns whole, whose field writer counts its files' positions, and whose blocks and
    stored fields ISA-L deflates."""

    def per_document_writer(self, storage: Any, segment: Any) -> Any:
        return _PerDocWriter(self, storage, segment)

    def per_document_reader(self, storage: Any, segment: Any) -> Any:
        return _PerDocReader(storage, segment)

    def field_writer(self, storage: Any, segment: Any) -> Any:
        return _FieldWriter(self, storage, segment)

    def postings_writer(self, dbfile: Any, byteids: bool = False) -> Any:
        return _PostingsWriter(
            dbfile,
            blocklimit=self._blocklimit,
            byteids=byteids,
            compression=self._compression,
            inlinelimit=self._inlinelimit,
        )


def reads_terms(reader: Any) -> bool:
    """Whether ``segment_terms`` reads this reader: a ``SegmentReader`` of W3 terms and
    postings (any other only whoosh's merge reads)."""
    terms = getattr(reader, "_terms", None)
    return type(terms) is W3TermsReader and type(reader.codec()) in (W3Codec, Codec)


def segment_terms(
    reader: Any, schema: Any, basedoc: int, docmap: dict[int, int] | None
) -> Iterator[Any]:
    """The postings of a merged segment's terms, as whoosh's merge adds them to its pool
    (``SegmentWriter.add_postings_to_pool``), a term at a time: ``(field, term bytes, document
    numbers, weights, values)``, in order of field name and term, fields not in ``schema`` left
    out. A document ``d`` becomes ``docmap[d]`` (a deleted one, missing from ``docmap``, is
    left out, and so is a term left without postings), or ``basedoc + d`` with no ``docmap``.
    ``reader`` is one that ``reads_terms``.
    """
    terms = reader._terms
    fieldnames = sorted(name for name in terms.indexed_field_names() if name in schema)
    for fieldname in fieldnames:
        fmt = schema[fieldname].format
        # a field's keys are its number then the term: in term order whatever the numbering
        for (name, tbytes), terminfo in terms.items_from(fieldname, b""):
            if name != fieldname:
                break
            if terminfo.is_inlined():
                ids, weights, values = terminfo.inlined_postings()
            else:
                ids, weights, values = _read_postings(terms, terminfo, fmt, (fieldname, tbytes))
            if docmap is None:
                docnums = array("q", [basedoc + docnum for docnum in ids])
            else:
                kept = [i for i, docnum in enumerate(ids) if docnum in docmap]
                if len(kept) < len(ids):
                    if not kept:
                        continue
                    weights = [weights[i] for i in kept]
                    values = [values[i] for i in kept]
                docnums = array("q", [docmap[ids[i]] for i in kept])
            yield fieldname, tbytes, docnums, array("d", weights), list(values)


def _read_postings(
    terms: Any, terminfo: Any, fmt: Any, term: tuple[str, bytes]
) -> tuple[list[int], list[float], list[Any]]:
    """A term's postings from its blocks: what its matcher's ``id()``, ``weight()`` and
    ``value()`` give, posting by posting."""
    offset, length = terminfo.extent()
    matcher = W3LeafMatcher(terms._postfile, offset, length, fmt, term=term)
    ids: list[int] = []
    weights: list[float] = []
    values: list[Any] = []
    while matcher.is_active():
        matcher._read_ids()
        matcher._read_weights()
        matcher._read_values()
        ids.extend(matcher._ids)
        weights.extend(matcher._weights)
        values.extend(matcher._values)
        matcher._next_block()
    return ids, weights, values
