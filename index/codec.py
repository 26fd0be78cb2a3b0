"""Index stage: whoosh's segment format with faster field lengths (same files on disk).

While flushing a segment, whoosh asks the new segment's per-document reader for the length of
the field of every posting it writes, and scoring asks it for every matching document. Two costs
of ``W3PerDocReader`` there:

- for fields without a length column (ids, numbers and dates, which are not scored) it does not
  remember that the column is missing and asks the file system again: one ``os.path.exists`` per
  posting, about 13 % of indexing time;
- for the others each lookup is a seek and a one-byte read through two column-reader layers.

``Codec`` is ``W3Codec`` with a reader that remembers missing columns and reads a field's length
column (one byte per document) in one piece the first time it is asked. The files it writes are
byte for byte W3Codec's.

Segments pickle their codec into the index's table of contents, so ``index.codec.Codec`` must
keep its name and module (an index written by it cannot be opened without it); an index written
with the plain ``W3Codec`` opens and merges as before.
"""

from __future__ import annotations

from typing import Any

from whoosh.codec.whoosh3 import LENGTHS_COLUMN, W3Codec, W3PerDocReader, _lenfield
from whoosh.columns import NumericColumn
from whoosh.util.numeric import byte_to_length

#: A length byte -> the field length it stands for (whoosh stores lengths as one lossy byte).
_LENGTHS = tuple(byte_to_length(b) for b in range(256))


class _PerDocReader(W3PerDocReader):  # type: ignore[misc]  # whoosh is untyped
    """``W3PerDocReader`` that remembers missing columns and reads length columns whole."""

    def doc_field_length(self, docnum: int, fieldname: str, default: int = 0) -> Any:
        lengths = self.__dict__.setdefault("_length_bytes", {})
        raw = lengths.get(fieldname)
        if raw is None:
            raw = lengths[fieldname] = self._length_column(fieldname)
        if raw is False:
            return super().doc_field_length(docnum, fieldname, default)
        if docnum > self._doccount:
            raise IndexError(f"Asked for docnum {docnum!r} of {self._doccount}")
        code = raw[docnum] if docnum < len(raw) else 0
        # whoosh returns None, not ``default``, for a document with a zero length byte
        return _LENGTHS[code] if code else None

    def _length_column(self, fieldname: str) -> bytes | bool:
        """The field's length bytes, one per document (False: let whoosh's reader answer)."""
        reader = self._cached_reader(_lenfield(fieldname), LENGTHS_COLUMN)
        if type(reader) is not NumericColumn.Reader or reader._fixedlen != 1:
            return False  # no column (whoosh answers ``default``) or not the one-byte kind
        return bytes(reader._dbfile.get(reader._basepos, reader._count))

    def _cached_reader(self, fieldname: str, column: Any) -> Any:
        try:
            return self._readers[fieldname]
        except KeyError:
            reader = self._readers[fieldname] = super()._cached_reader(fieldname, column)
            return reader


class Codec(W3Codec):  # type: ignore[misc]
    """``W3Codec`` whose per-document readers remember missing columns and read length
    columns whole."""

    def per_document_reader(self, storage: Any, segment: Any) -> Any:
        return _PerDocReader(storage, segment)
