"""Index stage: a faster way for whoosh to analyze text into positioned terms, same terms.

whoosh analyzes a document by chaining generators (tokenizer, lowercase, accent folding, stop
words, stemmer) over one mutable ``Token`` per word, then ``Positions.word_values`` groups the
tokens by term. In the index process that chain was the largest single cost of indexing (about
40 % of its samples on 50 KB articles): five Python generator frames per word.

``FusedPositions`` is the ``Positions`` format with a fast path for the analyzers this schema
uses: a regex tokenizer followed only by per-word filters. Those filters turn each word into the
same term (or drop it as a stop word) whatever surrounds it, so the term of a word is computed
once, by running whoosh's own filters on that word alone, and cached (per analyzer
configuration, for the whole process: every index write unpickles the schema anew). The tokens
are then just the regex's matches looked up in the cache, read with ``findall`` (whoosh's
default pattern has a group, so its non-capturing twin is used: the same matches, no match
object per word). Positions follow ``StopFilter``'s renumbering. Any other analyzer, argument
or value takes whoosh's own path, so the postings are identical either way
(``tests/index/test_analysis.py`` compares them).
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterator
from operator import sub
from typing import Any

from whoosh import formats
from whoosh.analysis import (
    CharsetFilter,
    CompositeAnalyzer,
    LowercaseFilter,
    RegexTokenizer,
    StemFilter,
    StopFilter,
)
from whoosh.analysis.acore import Token
from whoosh.system import pack_uint

#: Encoded positions of a word seen once in a field (most terms of a document), by position.
_ONCE: dict[int, bytes] = {}
#: Positions kept in ``_ONCE``: a 600-word article's text reaches ~600 (~70 bytes each).
_ONCE_LIMIT = 4096
#: Filters whose output for a word depends on that word alone.
_PER_WORD_FILTERS = (LowercaseFilter, CharsetFilter, StopFilter, StemFilter)
#: Cached words per analyzer before the cache starts over: bounds memory on a big vocabulary
#: (~8 MB). The words that recur are cached again within a few documents; a crawl's vocabulary
#: grows all the time (names, numbers: about one new word per article on the demo site), and at
#: 200,000 the cache was a tenth of the indexing process's memory at 100k articles.
_CACHE_LIMIT = 50_000


class FusedPositions(formats.Positions):  # type: ignore[misc]  # whoosh is untyped
    """``formats.Positions`` that analyzes plain index-mode text in one pass (same postings)."""

    def __getstate__(self) -> dict[str, Any]:
        # The schema is pickled into the index's table of contents: leave the cache out.
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_fused")}

    def word_values(self, value: Any, analyzer: Any, **kwargs: Any) -> Iterator[Any]:
        plan = self._plan(analyzer) if isinstance(value, str) and _plain(kwargs) else None
        if plan is None:
            yield from super().word_values(value, analyzer, **kwargs)
            return
        boost = self.field_boost
        encode = self.encode
        for term, poslist in _positions(value, plan).items():
            yield (term, len(poslist), len(poslist) * boost, encode(poslist))

    def index_items(self, value: Any, analyzer: Any) -> list[Any] | None:
        """What ``FieldType.index(value)`` gives for a field of this format, as a list:
        ``(term bytes, frequency, weight, encoded positions)`` per term; None when ``value``
        or ``analyzer`` takes whoosh's own path (then ask the field)."""
        plan = self._plan(analyzer) if isinstance(value, str) else None
        if plan is None:
            return None
        boost = self.field_boost
        encode = self.encode
        return [
            (term.encode("utf-8"), len(poslist), len(poslist) * boost, encode(poslist))
            for term, poslist in _positions(value, plan).items()
        ]

    def encode(self, poslist: list[int]) -> bytes:
        """``Positions.encode``: the same bytes, a word seen once taken from a table.

        A table's bytes are one object for every posting at that position, and pickle writes
        an object a block holds twice only once: a segment's postings file is ~4 % smaller
        than whoosh's own (whoosh reads the same values from either).
        """
        if len(poslist) == 1:
            pos = poslist[0]
            if 0 <= pos < _ONCE_LIMIT:
                found = _ONCE.get(pos)
                if found is None:
                    found = _ONCE[pos] = _encode(poslist)
                return found
        return _encode(poslist)

    def _plan(self, analyzer: Any) -> _Plan | None:
        """Return how to analyze with a fusable analyzer, else None."""
        known = self.__dict__.get("_fused_plan")
        if known is not None and known[0] is analyzer:
            return known[1]  # type: ignore[no-any-return]
        plan = _make_plan(analyzer)
        self.__dict__["_fused_plan"] = (analyzer, plan)
        return plan


def _positions(value: str, plan: _Plan) -> dict[str, list[int]]:
    """Each term of ``value`` and its positions, in order of first appearance."""
    words, term_of, renumber, cache = plan
    if len(cache) > _CACHE_LIMIT:
        cache.clear()
    poses: dict[str, list[int]] = {}
    pos = -1
    for index, word in enumerate(words(value)):
        term = cache.get(word)
        if term is None:
            term = cache[word] = term_of(word)
        if isinstance(term, bool):
            continue  # a stop word
        if not renumber:
            pos = index
        elif pos < 0:
            pos = index  # StopFilter keeps the first kept word's position, then counts on
        else:
            pos += 1
        found = poses.get(term)
        if found is None:
            poses[term] = [pos]
        else:
            found.append(pos)
    return poses


def _encode(poslist: list[int]) -> bytes:
    """whoosh's ``Positions.encode`` without its loop: the count, then the pickled gaps."""
    gaps = list(map(sub, poslist, [0, *poslist]))
    count: bytes = pack_uint(len(gaps))
    return count + pickle.dumps(gaps, 2)


def _plain(kwargs: dict[str, Any]) -> bool:
    """Whether whoosh asked for nothing but the defaults of indexing a field's text."""
    return set(kwargs) <= {"mode"} and kwargs.get("mode", "index") == "index"


#: (text -> its words, word -> term or False, renumber positions, the word -> term cache)
_Plan = tuple[Any, Any, bool, dict[str, str | bool]]
#: whoosh's default word pattern with its group made non-capturing: the same matches, and
#: ``findall`` then gives whole words as strings, without a match object per word.
_DEFAULT_WORDS = (
    RegexTokenizer().expression.pattern,
    re.compile(r"[\w\*]+(?:\.?[\w\*]+)*", re.UNICODE),
)
#: Word -> term caches by analyzer configuration (its pickled filters), shared by every schema
#: this process unpickles: each index write opens the index again, and the terms would be
#: worked out again each time.
_CACHES: dict[bytes, dict[str, str | bool]] = {}


def _make_plan(analyzer: Any) -> _Plan | None:
    if not isinstance(analyzer, CompositeAnalyzer):
        return None
    tokenizer, *filters = analyzer.items
    if type(tokenizer) is not RegexTokenizer or tokenizer.gaps:
        return None
    if not all(type(f) in _PER_WORD_FILTERS for f in filters):
        return None
    renumber = any(isinstance(f, StopFilter) and f.renumber for f in filters)

    def term_of(word: str) -> str | bool:
        """Run whoosh's own filters on one word: its term, or False for a stop word."""
        token = Token(positions=True, chars=False, removestops=True, mode="index")
        token.text, token.boost, token.stopped, token.pos = word, 1.0, False, 0
        stream: Any = iter((token,))
        for item in filters:
            stream = item(stream)
        for out in stream:
            if not out.stopped:
                return str(out.text)
        return False

    cache = _CACHES.setdefault(pickle.dumps(_canonical(analyzer.items)), {})
    return _word_finder(tokenizer.expression), term_of, renumber, cache


def _word_finder(expression: re.Pattern[str]) -> Any:
    """text -> the list of its words (whole matches of the tokenizer's pattern)."""
    if expression.groups == 0:
        return expression.findall
    pattern, words = _DEFAULT_WORDS
    if expression.pattern == pattern and expression.flags == words.flags:
        return words.findall
    finditer = expression.finditer
    return lambda text: [match.group(0) for match in finditer(text)]


def _canonical(value: Any) -> Any:
    """A picklable description of an analyzer's parts that is equal for equal configurations:
    sets and dicts sorted (an unpickled set may iterate in another order), functions and
    patterns by name, objects by class and state."""
    if isinstance(value, (frozenset, set)):
        return ("set", tuple(sorted((_canonical(v) for v in value), key=repr)))
    if isinstance(value, dict):
        items = ((_canonical(k), _canonical(v)) for k, v in value.items())
        return ("dict", tuple(sorted(items, key=repr)))
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(v) for v in value)
    if isinstance(value, re.Pattern):
        return ("re", value.pattern, value.flags)
    if callable(value) and hasattr(value, "__qualname__"):
        return ("fn", getattr(value, "__module__", ""), value.__qualname__)
    if hasattr(value, "__dict__"):
        state = value.__getstate__() if hasattr(value, "__getstate__") else vars(value)
        cls = type(value)
        return ("obj", cls.__module__, cls.__qualname__, _canonical(state))
    return value
