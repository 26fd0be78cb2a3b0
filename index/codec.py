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
files as a ``StructFile`` that counts the bytes it writes instead. The files it writes are byte
for byte W3Codec's.

Segments pickle their codec into the index's table of contents, so ``index.codec.Codec`` must
keep its name and module (an index written by it cannot be opened without it); an index written
with the plain ``W3Codec`` opens and merges as before.
"""

from __future__ import annotations

import pickle
from copy import copy
from typing import Any

from whoosh.codec.whoosh3 import (
    LENGTHS_COLUMN,
    W3Codec,
    W3FieldWriter,
    W3PerDocReader,
    _lenfield,
)
from whoosh.columns import NumericColumn
from whoosh.filedb.structfile import StructFile
from whoosh.system import IS_LITTLE
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


class _FieldWriter(W3FieldWriter):  # type: ignore[misc]
    """``W3FieldWriter`` writing its terms and postings files through ``_CountingFile``."""

    def _create_file(self, ext: str) -> Any:
        made = super()._create_file(ext)
        if type(made) is not StructFile or not made.is_real:
            return made  # another storage's file: leave it as it is
        return _CountingFile(made.file, name=made._name, onclose=made.onclose)


class Codec(W3Codec):  # type: ignore[misc]
    """``W3Codec`` whose per-document readers remember missing columns and read length
    columns whole, and whose field writer counts its files' positions."""

    def per_document_reader(self, storage: Any, segment: Any) -> Any:
        return _PerDocReader(storage, segment)

    def field_writer(self, storage: Any, segment: Any) -> Any:
        return _FieldWriter(self, storage, segment)
