"""Index stage: whoosh's segment format with one write-path fix (same files on disk).

While flushing a segment, whoosh asks the new segment's per-document reader for the length of
the field of every posting it writes. For fields without a length column (ids, numbers and dates,
which are not scored) ``W3PerDocReader`` does not remember that the column is missing and asks
the file system again: one ``os.path.exists`` per posting, about 13 % of indexing time. ``Codec``
is ``W3Codec`` with a reader that remembers. The files it writes are byte for byte W3Codec's.

Segments pickle their codec into the index's table of contents, so ``index.codec.Codec`` must
keep its name and module (an index written by it cannot be opened without it); an index written
with the plain ``W3Codec`` opens and merges as before.
"""

from __future__ import annotations

from typing import Any

from whoosh.codec.whoosh3 import W3Codec, W3PerDocReader


class _PerDocReader(W3PerDocReader):  # type: ignore[misc]  # whoosh is untyped
    """``W3PerDocReader`` that also remembers which columns a segment does not have."""

    def _cached_reader(self, fieldname: str, column: Any) -> Any:
        try:
            return self._readers[fieldname]
        except KeyError:
            reader = self._readers[fieldname] = super()._cached_reader(fieldname, column)
            return reader


class Codec(W3Codec):  # type: ignore[misc]
    """``W3Codec`` whose per-document readers remember missing columns."""

    def per_document_reader(self, storage: Any, segment: Any) -> Any:
        return _PerDocReader(storage, segment)
