"""The posting pool of a writer: postings grouped by term as they come, spilled a block at a time.

A whoosh writer collects postings in a pool as ``(field, term, docnum, weight, value)`` tuples,
sorts them all when it flushes the segment and, past ``limit_mb``, sorts and spills them to a
temporary run file first, to merge all runs at the flush. In the index process of a
20,000-article crawl that pool was about a third of the process (py-spy: adding 8 %, sorting
and spilling 7 %, reading the runs back and merging them 16 %): a commit of 2,000 articles
holds ~400,000 postings, each a five-tuple with its own copy of the term, and passed the limit.

``GroupedPostingPool`` keeps one entry per (field, term) instead, in the order whoosh asks for
them: the document numbers and weights in arrays, the values in a list. A writer adds a
document's postings with its own, growing, document number (a merged segment's too, renumbered
above every earlier one), so each term's postings arrive already in order, and only the terms
need sorting; a term whose numbers did not arrive in order is sorted the way whoosh would sort
its tuples. A posting costs ~70 bytes instead of ~200, so a commit's postings mostly fit in the
limit and nothing is spilled (merging large segments still spills); past it, the pool spills a
sorted run as ``BlockPostingPool`` does (``marshal``'d lists of ``_BLOCK`` postings) and merges
the runs the same way. Postings of another shape (a weight that is not a float, no value) are
kept as whoosh keeps them and merged in, so ``items()`` gives exactly what whoosh's own pool
gives: ``sorted(every posting)``.
"""

from __future__ import annotations

import heapq
import marshal
from array import array
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import IO, TYPE_CHECKING, Any

from whoosh.writing import PostingPool

__all__ = ["BlockPostingPool", "GroupedPostingPool", "merge_terms", "use_grouped_pool"]

_BLOCK = 2048
"""Postings per marshal call (about 400 KB in memory per run being merged)."""
#: Estimated bytes of a new (field, term) entry, beyond the term's length: the key tuple, the
#: term, two arrays, a list and the dict slot.
_TERM_BYTES = 400
#: Estimated bytes of a grouped posting beyond its value's length: a document number and a
#: weight in arrays (with their spare room), a list slot and the value's ``bytes`` object.
_POSTING_BYTES = 70

if TYPE_CHECKING:
    #: (document numbers, weights, values) of one term's postings.
    _Group = tuple[array[int], array[float], list[bytes]]
    #: (field, term bytes, document numbers, weights, values) of one term's postings, in order.
    _Term = tuple[str, bytes, array[int], array[float], list[bytes]]


class BlockPostingPool(PostingPool):  # type: ignore[misc]  # whoosh is untyped
    """``PostingPool`` writing and reading its runs a block of postings at a time."""

    def _write_run(self, f: IO[bytes], items: Iterable[Any]) -> None:
        iterator = iter(items)
        try:
            while block := list(islice(iterator, _BLOCK)):
                marshal.dump(block, f)
        finally:
            f.close()

    def _read_run(self, path: str) -> Iterator[Any]:
        f = self._open_run(path)
        try:
            while True:
                try:
                    block = marshal.load(f)
                except EOFError:
                    return
                yield from block
        finally:
            f.close()
            self._remove_run(path)


class GroupedPostingPool(BlockPostingPool):
    """``BlockPostingPool`` holding its postings grouped by (field, term): the same items."""

    current: list[Any]  # whoosh's own list: postings of another shape

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._groups: dict[tuple[str, bytes], _Group] = {}
        self._unordered: set[tuple[str, bytes]] = set()

    def add(self, item: Any) -> None:
        # add_field_postings' loop for one posting, written out: merging segments adds every
        # posting of the merged segments through here, one call each
        fieldname, tbytes, docnum, weight, vbytes = item
        if type(weight) is not float or type(vbytes) is not bytes or type(docnum) is not int:
            super().add(item)  # kept as whoosh keeps it: merged in by ``_sorted``
            return
        key = (fieldname, tbytes)
        group = self._groups.get(key)
        if group is None:
            assert type(tbytes) is bytes, f"tbytes={tbytes!r}"  # as whoosh checks
            group = self._groups[key] = (array("q"), array("d"), [])
            self.fieldnames.add(fieldname)
            self.currentsize += _TERM_BYTES + len(tbytes)
        elif docnum <= group[0][-1]:
            self._unordered.add(key)
        group[0].append(docnum)
        group[1].append(weight)
        group[2].append(vbytes)
        self.currentsize += _POSTING_BYTES + len(vbytes)
        if self.currentsize > self.limit:
            self.save()

    def add_field_postings(self, fieldname: str, docnum: int, items: list[Any]) -> int:
        """Add one document's postings of one field at once: ``(term bytes, frequency, float
        weight, value bytes)`` each, terms distinct (what ``FusedPositions.index_items``
        gives). The same as ``add`` for each; returns the sum of the frequencies."""
        groups = self._groups
        length = size = 0
        for tbytes, freq, weight, vbytes in items:
            length += freq
            key = (fieldname, tbytes)
            group = groups.get(key)
            if group is None:
                group = groups[key] = (array("q"), array("d"), [])
                size += _TERM_BYTES + len(tbytes)
            elif docnum <= group[0][-1]:
                self._unordered.add(key)
            group[0].append(docnum)
            group[1].append(weight)
            group[2].append(vbytes)
            size += _POSTING_BYTES + len(vbytes)
        if items:
            self.fieldnames.add(fieldname)
        self.currentsize += size
        if self.currentsize > self.limit:
            self.save()
        return length

    def save(self) -> None:
        if not self._groups and not self.current:
            return
        path, f = self._new_run()
        self._write_run(f, self._sorted())
        self._add_run(path)

    def items(self, maxfiles: int = 128) -> Iterator[Any]:
        if not self.runs:
            return self._sorted()
        merged: Iterator[Any] = super().items(maxfiles)  # spills what it holds, merges runs
        return merged

    def take_terms(self) -> Iterator[_Term] | None:
        """Every posting held, a term at a time (see ``_terms``), emptying the pool; None, and
        nothing taken, when the pool spilled runs or holds postings of another shape: then only
        ``items()`` gives them in order."""
        if self.runs or self.current:
            return None
        groups, unordered = self._groups, self._unordered
        self._groups, self._unordered = {}, set()
        self.currentsize = 0
        return _terms(groups, unordered)

    def _sorted(self) -> Iterator[Any]:
        """Every posting held, in whoosh's order; the pool is empty afterwards."""
        groups, unordered = self._groups, self._unordered
        odd: list[Any] = self.current
        self._groups, self._unordered = {}, set()
        self.current = []
        self.currentsize = 0
        grouped = _flatten(groups, unordered)
        if not odd:
            return grouped
        odd.sort()
        return heapq.merge(grouped, odd)


def _terms(
    groups: dict[tuple[str, bytes], _Group], unordered: set[tuple[str, bytes]]
) -> Iterator[_Term]:
    """Each group as ``(field, term, document numbers, weights, values)``, terms in order and
    each term's postings in whoosh's order; groups are dropped as read."""
    for key in sorted(groups):
        fieldname, tbytes = key
        docnums, weights, values = groups.pop(key)  # freed as it goes
        term = (fieldname, tbytes, docnums, weights, values)
        yield _sorted_term(term) if key in unordered else term


def merge_terms(sources: list[Iterator[_Term]]) -> Iterator[_Term]:
    """Merge streams of ``(field, term bytes, document numbers, weights, values)`` into one.

    Each stream is in term order, each term's postings in order (as ``take_terms`` and
    ``index.codec.segment_terms`` give them). A term in several streams gets their postings
    joined in the order of ``sources``, then sorted the way whoosh sorts its tuples should
    the numbers of one stream not all come after the last one's. What flushing a pool that
    held them all gives, holding one term of each stream at a time.
    """
    current: _Term | None = None
    joined = ordered = False
    for term in heapq.merge(*sources, key=_term_key):
        if current is not None and current[0] == term[0] and current[1] == term[1]:
            if not joined:  # copies: the first stream's arrays are not ours to extend
                current = (
                    current[0],
                    current[1],
                    array("q", current[2]),
                    array("d", current[3]),
                    list(current[4]),
                )
                joined, ordered = True, True
            docnums = current[2]
            if ordered and docnums and term[2] and term[2][0] <= docnums[-1]:
                ordered = False
            docnums.extend(term[2])
            current[3].extend(term[3])
            current[4].extend(term[4])
            continue
        if current is not None:
            yield current if not joined or ordered else _sorted_term(current)
        current, joined = term, False
    if current is not None:
        yield current if not joined or ordered else _sorted_term(current)


def _term_key(term: _Term) -> tuple[str, bytes]:
    return term[0], term[1]


def _sorted_term(term: _Term) -> _Term:
    """A term with its postings sorted as whoosh sorts its tuples: by document number, then
    weight, then value."""
    fieldname, tbytes, docnums, weights, values = term
    postings = sorted(zip(docnums, weights, values, strict=True))
    return (
        fieldname,
        tbytes,
        array("q", [posting[0] for posting in postings]),
        array("d", [posting[1] for posting in postings]),
        [posting[2] for posting in postings],
    )


def _flatten(
    groups: dict[tuple[str, bytes], _Group], unordered: set[tuple[str, bytes]]
) -> Iterator[Any]:
    """Each group's postings as whoosh's tuples, terms in order; groups are dropped as read."""
    for fieldname, tbytes, docnums, weights, values in _terms(groups, unordered):
        for docnum, weight, value in zip(docnums, weights, values, strict=True):
            yield (fieldname, tbytes, docnum, weight, value)


def use_grouped_pool(writer: Any, limit_mb: int) -> None:
    """Give a fresh whoosh ``SegmentWriter`` a ``GroupedPostingPool`` (before anything is
    added)."""
    pool: Any = getattr(writer, "pool", None)
    if type(pool) is not PostingPool or pool.current or pool.runs:
        return  # not a plain segment writer's untouched pool: leave it as whoosh made it
    writer.pool = GroupedPostingPool(writer._tempstorage, writer.newsegment, limitmb=limit_mb)
