"""Index stage: a whoosh segment writer that adds a text field's postings in one call.

whoosh adds a document by asking each field for its postings (``FieldType.index``: a generator
that encodes every term) and handing them to the pool one ``(field, term, docnum, weight,
value)`` tuple per call: four Python frames per posting, ~200 postings per article. For the text
fields analyzed by ``FusedPositions``, ``SegmentWriter.add_document`` here gets a field's
postings as one list (``FusedPositions.index_items``) and gives them to the grouped pool in one
call (``GroupedPostingPool.add_field_postings``). A number or date's tiered terms go the same
way, the value prepared once (``_tier_items``), where whoosh prepares it again for each tier.
Every other field, and any document with whoosh's special keys (``_boost``, ``_stored_<name>``),
takes whoosh's own code. The segment written is byte for byte the one whoosh writes
(``tests/index/test_segment.py`` compares them).

Flushing, it gives the field writer each term's postings at once (``_FieldWriter.add_terms``)
when the pool holds them all in memory; a pool that spilled runs takes whoosh's way.

Merging, whoosh's ``add_reader`` copies a merged segment's documents, then puts every posting of
it in the pool, a matcher call and a pool call each, where they pass the memory limit and
spill: merging ten segments of 2,000 articles took ~45 s. Here the postings stay in the merged
segments until the flush, which reads them a term at a time, a block at a time
(``index.codec.segment_terms``), and merges them with the pool's (``merge_terms``): the same
segment, in ~20 s, holding one term of each segment at a time.

The rest of ``add_document`` follows whoosh 2.7's ``SegmentWriter.add_document`` (BSD licence),
without what this writer never meets: spelling words and term vectors make it use whoosh's.
"""

from __future__ import annotations

from contextlib import ExitStack
from datetime import datetime
from typing import Any

from whoosh import fields
from whoosh.reading import SegmentReader
from whoosh.util.numeric import to_sortable
from whoosh.writing import SegmentWriter

from index.analysis import FusedPositions
from index.codec import Codec, reads_terms, segment_terms
from index.pool import GroupedPostingPool, merge_terms
from index.schema import CoarseDatetime

#: Numeric field types whose ``index`` is whoosh's ``NUMERIC.index`` over ``to_bytes``.
_TIERED = frozenset({fields.NUMERIC, fields.DATETIME, CoarseDatetime})

__all__ = ["Writer"]


class Writer(SegmentWriter):  # type: ignore[misc]  # whoosh is untyped
    """``SegmentWriter`` that adds ``FusedPositions`` fields' postings a field at a time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # no field with spelling words or term vectors: the writer's schema is fixed
        self._plain_schema = not any(
            field.separate_spelling() or field.vector for _name, field in self.schema.items()
        )
        #: merged segments whose postings the flush reads: (segment, first number, docmap)
        self._merged: list[tuple[Any, int, dict[int, int] | None]] = []

    def add_reader(self, reader: Any) -> None:
        # whoosh's, but a segment's postings are left where they are until the flush
        if not self._streams(reader):
            super().add_reader(reader)
            return
        self._check_state()
        basedoc = self.docnum
        indexed = {name for name in reader.indexed_field_names() if name in self.schema}
        docmap = self.write_per_doc(set(self.schema.names()) | indexed, reader)
        self._merged.append((reader.segment(), basedoc, docmap))
        self._added = True

    def _streams(self, reader: Any) -> bool:
        """Whether a merged segment's postings can wait for the flush: the grouped pool and
        our codec writing, a plain schema, and a segment ``segment_terms`` reads."""
        return (
            type(self.pool) is GroupedPostingPool
            and type(self.codec) is Codec
            and self._plain_schema
            and type(reader) is SegmentReader
            and reads_terms(reader)
        )

    def add_document(self, **fields: Any) -> None:
        if not self._fast(fields):
            super().add_document(**fields)
            return
        self._check_state()
        schema = self.schema
        docnum = self.docnum
        fieldnames = sorted(fields)
        self._check_fields(schema, fieldnames)
        self.perdocwriter.start_doc(docnum)
        try:
            for fieldname in fieldnames:
                value = fields[fieldname]
                if value is not None:
                    self._add_field(fieldname, schema[fieldname], value, docnum)
        except Exception:
            self.perdocwriter.cancel_doc()
            raise
        self.perdocwriter.finish_doc()
        self._added = True
        self.docnum += 1

    def _flush_segment(self) -> None:
        # whoosh's, but the postings go to the field writer a term at a time when the pool can
        # give them so (it spilled no runs) and the codec is ours, merged segments' beside them
        terms = None
        if type(self.codec) is Codec and type(self.pool) is GroupedPostingPool:
            terms = self.pool.take_terms()
        with ExitStack() as readers:
            if terms is None:
                for reader, basedoc, docmap in self._merged_readers(readers):
                    self.add_postings_to_pool(reader, basedoc, docmap)  # whoosh's way
                super()._flush_segment()
                return
            if self._merged:
                sources = [terms]
                for reader, basedoc, docmap in self._merged_readers(readers):
                    sources.append(segment_terms(reader, self.schema, basedoc, docmap))
                terms = merge_terms(sources)
            self.perdocwriter.close()
            lengths = self.per_document_reader() if self.codec.length_stats else None
            self.fieldwriter.add_terms(self.schema, lengths, terms)
            self.fieldwriter.close()
            if lengths:
                lengths.close()

    def _merged_readers(self, stack: ExitStack) -> list[tuple[Any, int, dict[int, int] | None]]:
        """The merged segments opened again (closed with ``stack``), each with its first new
        document number and ``docmap``; they are the flush's to read once."""
        merged, self._merged = self._merged, []
        opened = []
        for segment, basedoc, docmap in merged:
            reader = SegmentReader(self.storage, self.schema, segment)
            stack.callback(reader.close)
            opened.append((reader, basedoc, docmap))
        return opened

    def _fast(self, fields: dict[str, Any]) -> bool:
        """Whether this document can take the fast path: the grouped pool, a schema without
        spelling or vectors, and none of whoosh's special keys (boosts, stored values)."""
        return (
            type(self.pool) is GroupedPostingPool
            and self._plain_schema
            and not any(name.startswith("_") for name in fields)
        )

    def _add_field(self, fieldname: str, field: Any, value: Any, docnum: int) -> None:
        length = self._add_postings(fieldname, field, value, docnum) if field.indexed else 0
        self.perdocwriter.add_field(fieldname, field, value if field.stored else None, length)
        column = field.column_type
        if column:
            self.perdocwriter.add_column_value(fieldname, column, field.to_column_value(value))

    def _add_postings(self, fieldname: str, field: Any, value: Any, docnum: int) -> int:
        """Pool a field's postings; returns its length (0 when the field is not scored)."""
        pool = self.pool
        items = None
        if type(field.format) is FusedPositions:
            items = field.format.index_items(value, field.analyzer)
        elif type(field) in _TIERED:
            items = _tier_items(field, value)
        if items is not None:
            length = pool.add_field_postings(fieldname, docnum, items)
        else:
            length = 0
            for tbytes, freq, weight, vbytes in field.index(value):
                length += freq
                # whoosh multiplies by the field's boost for this document: 1.0 here
                pool.add((fieldname, tbytes, docnum, weight * 1.0, vbytes))
        return length if field.scorable else 0


def _tier_items(field: Any, value: Any) -> list[tuple[bytes, int, float, bytes]] | None:
    """What ``list(field.index(value))`` gives for a number or datetime of a ``_TIERED`` field
    with tiers, the value prepared once: whoosh prepares it again for every tier's term (a
    date's eight), which made the three numeric fields ~68 us of an article's indexing. None
    for anything else (lists, strings, bytes), which takes whoosh's own code."""
    if not field.shift_step or isinstance(value, list | tuple | str | bytes):
        return None
    if isinstance(field, fields.DATETIME):
        if not isinstance(value, datetime):
            return None
        value = field.prepare_datetime(value)
    number = to_sortable(field.numtype, field.bits, field.signed, field.prepare_number(value))
    return [
        (field.sortable_to_bytes(number, shift), 1, 1.0, b"")
        for shift in range(0, field.bits, field.shift_step)
    ]
