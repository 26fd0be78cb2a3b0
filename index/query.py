"""Index stage, part 3: the search query language, parsed into whoosh queries.

``parse_query(text)`` hands ``search.py`` a whoosh query (command-line filters such as
``--topic`` are built there as filter queries, never parsed from text). The language is a small
Elasticsearch/Lucene ``query_string`` dialect::

    valproate epilepsy           both words (the default operator is AND), any text field
    valproate OR lamotrigine     either; precedence NOT > AND > OR, group with ( )
    epilepsy NOT children        also -children; AND, OR, NOT are written in capitals
    "drug interactions"          a phrase; "drug interactions"~2 allows up to 2 words between
    valpro*   valproate~  ~2     prefix; fuzzy (1 or 2 edits, applied after stemming)
    title:vaccine  topic:"mental health"  site:healthwire.example  author:gonzalez
    published:2025-11  date:[2025-01-01 TO 2025-06-30]  published:>=2025-06-01
    comments:>10  comments:[5 TO 20]  {5 TO 20} excludes the ends, * is an open end
    *  or an empty query         every article (combine with filters)

whoosh's own ``QueryParser`` silently turns mistakes into ``ErrorNode``s and searches for
whatever is left, so this module tokenizes and parses itself: every mistake raises
``QuerySyntaxError`` with the 0-based character position and a hint.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NoReturn

from whoosh import query as wq
from whoosh.support.charset import accent_map

from index.schema import DEFAULT_FIELDS, date_range, date_span, english_analyzer, name_analyzer
from pipeline.errors import QuerySyntaxError

#: What users may write before ``:``, mapped to index fields.
FIELD_ALIASES: dict[str, str] = {
    **{name: name for name in ("title", "text", "summary", "topics", "author", "site")},
    **{name: name for name in ("comments", "published", "first_seen", "url", "id")},
    **{"body": "text", "topic": "topics", "date": "published"},
}
_KINDS = {
    **dict.fromkeys(("title", "summary", "text", "author"), "text"),
    **dict.fromkeys(("site", "url", "id"), "id"),
    **{"topics": "keyword", "comments": "number", "published": "date", "first_seen": "date"},
}
_ANALYZERS = {name: english_analyzer() for name in ("title", "summary", "text")}
_ANALYZERS["author"] = name_analyzer()
_OPERATORS = frozenset({"AND", "OR", "NOT"})
_WORD_END = frozenset(' \t\r\n()"[]{}')
_KNOWN = ", ".join(sorted(FIELD_ALIASES))
#: Every syntax error the parser raises: kind -> (what is wrong, what to do), ``str.format``-ed.
SYNTAX_ERRORS: dict[str, tuple[str, str]] = {
    "unclosed_quote": ("unclosed quote", 'close the phrase with a second "'),
    "unclosed_paren": ("unclosed parenthesis", "close the group with )"),
    "unmatched_paren": ("unmatched ')'", "remove it, or open a group with ("),
    "empty_group": ("empty parentheses", "put terms inside ( ) or remove them"),
    "unclosed_range": ("unclosed range", "close the range with ] (or }} to exclude the end)"),
    "unmatched_bracket": ("unmatched {char!r}", "remove it, or open a range with ["),
    "bad_range": ("bad range", "write [low TO high], e.g. comments:[5 TO 20]; * is an open end"),
    "empty_range": ("empty range", "put the smaller value first"),
    "unknown_field": ("unknown field {name!r}", "known fields: {known}; quote text with a colon"),
    "missing_value": ("missing value after {name}:", "write field:value, e.g. title:vaccine"),
    "needs_field": ("a {form} needs a field", "e.g. comments:>10 or date:[2025-01-01 TO *]"),
    "bad_compare": ("missing or bad value after {op!r}", "e.g. comments:>10 or date:<2025-06"),
    "operand_after": ("{op} needs a term after it", "add a term after {op} or remove it"),
    "operand_before": ("{op} needs a term before it", "add a term before {op} or remove it"),
    "bad_wildcard": ("'*' inside a word", "wildcards work only at the end of a word: valpro*"),
    "bad_tilde": ("'~' must be followed by a number", "write term~, term~1 or term~2"),
    "bad_distance": ("fuzzy distance ~{n} is not supported", "use term~1 or term~2"),
    "no_fuzzy": ("{form} search does not work on {field}", "use a value, >value or [a TO b]"),
    "no_range": ("ranges and comparisons do not work on {field}", "use them on date or comments"),
    "bad_number": ("{value!r} is not a whole number", "write e.g. comments:>10"),
    "bad_date": ("{value!r} is not a date", "write dates as YYYY-MM-DD, YYYY-MM or YYYY"),
}


@dataclass(frozen=True, slots=True)
class _Token:
    """One lexical unit; for ``kind == "term"`` the value's form and parts."""

    kind: str  # "term", "group" (``field:(``), "(", ")", "AND", "OR", "NOT"
    pos: int
    field: str | None = None
    form: str = "word"  # word, prefix, fuzzy, phrase, range, compare, all
    text: str = ""
    number: int = 0  # phrase slop or fuzzy edit distance
    low: str | None = None
    high: str | None = None
    low_excl: bool = False
    high_excl: bool = False
    op: str = ""


def _fail(query: str, pos: int, kind: str, **details: object) -> NoReturn:
    """Raise QuerySyntaxError of ``kind`` (a ``SYNTAX_ERRORS`` key) at character ``pos``."""
    what, hint = (text.format(**details) for text in SYNTAX_ERRORS[kind])
    lo, hi = max(0, pos - 20), pos + 20
    excerpt = ("…" if lo else "") + query[lo:hi] + ("…" if hi < len(query) else "")
    raise QuerySyntaxError(
        f"{what} at character {pos + 1} of the query ({excerpt!r}); {hint}", position=pos, hint=hint
    )


class _Lexer:
    """Splits a query string into tokens, rejecting malformed quotes, ranges and fields."""

    def __init__(self, query: str) -> None:
        self.query = query
        self.i = 0
        self.tokens: list[_Token] = []

    def run(self) -> list[_Token]:
        """Tokenize the whole query."""
        q = self.query
        while self.i < len(q):
            c = q[self.i]
            if c.isspace():
                self.i += 1
            elif c in "()":
                self.tokens.append(_Token(c, self.i))
                self.i += 1
            elif c in "]}":
                _fail(q, self.i, "unmatched_bracket", char=c)
            elif c in "-+" and self.i + 1 < len(q) and not q[self.i + 1].isspace():
                if c == "-":  # "-term" excludes; "+term" is what AND does anyway
                    self.tokens.append(_Token("NOT", self.i))
                self.i += 1
            else:
                self._term()
        return self.tokens

    def _term(self) -> None:
        """Read ``[field:]value`` at ``i``."""
        q, start = self.query, self.i
        field = self._field()
        if field is not None and self.i < len(q) and q[self.i] == "(":
            self.tokens.append(_Token("group", start, field=field))
            return
        if field is not None and (self.i >= len(q) or q[self.i].isspace() or q[self.i] == ")"):
            _fail(q, start, "missing_value", name=q[start : self.i - 1])
        token = self._value(self.i)  # value errors point at the value, not the field name
        if field is None and token.form in ("range", "compare"):
            _fail(q, start, "needs_field", form=token.form)
        if field is None and token.form == "word" and token.text in _OPERATORS:
            token = _Token(token.text, start)
        self.tokens.append(replace(token, field=field))

    def _field(self) -> str | None:
        """Consume ``name:`` at ``i`` if present and return the index field it names."""
        q, j = self.query, self.i
        while j < len(q) and (q[j].isalnum() or q[j] == "_") and q[j].isascii():
            j += 1
        if j == self.i or j >= len(q) or q[j] != ":" or q[self.i].isdigit():
            return None
        name = q[self.i : j]
        if name.lower() not in FIELD_ALIASES:
            _fail(q, self.i, "unknown_field", name=name, known=_KNOWN)
        self.i = j + 1
        return FIELD_ALIASES[name.lower()]

    def _value(self, start: int) -> _Token:
        """Read a phrase, range, comparison or word at ``i``."""
        c = self.query[self.i]
        if c == '"':
            return self._phrase(start)
        if c in "[{":
            return self._range(start)
        if c in "<>":
            return self._compare(start)
        return self._word(start)

    def _phrase(self, start: int) -> _Token:
        """Read ``"..."`` with an optional ``~N`` slop."""
        q, open_at = self.query, self.i
        close = q.find('"', open_at + 1)
        if close < 0:
            _fail(q, open_at, "unclosed_quote")
        self.i = close + 1
        slop = self._tilde(default=0) if self.i < len(q) and q[self.i] == "~" else 0
        return _Token("term", start, form="phrase", text=q[open_at + 1 : close], number=slop)

    def _tilde(self, *, default: int) -> int:
        """Read ``~`` and optional digits at ``i``; return the number (``default`` if none)."""
        q, at = self.query, self.i
        j = self.i = at + 1
        while j < len(q) and q[j].isdigit():
            j += 1
        if j < len(q) and q[j] not in _WORD_END:
            _fail(q, at, "bad_tilde")
        digits, self.i = q[self.i : j], j
        return int(digits) if digits else default

    def _range(self, start: int) -> _Token:
        """Read ``[low TO high]`` (``{}`` for exclusive ends, mixable; ``*`` for open)."""
        q, open_at = self.query, self.i
        ends = [k for k in (q.find("]", open_at), q.find("}", open_at)) if k >= 0]
        if not ends:
            _fail(q, open_at, "unclosed_range")
        close = min(ends)
        parts = q[open_at + 1 : close].split()
        if len(parts) != 3 or parts[1].upper() != "TO":
            _fail(q, open_at, "bad_range")
        self.i = close + 1
        low, high = (None if p == "*" else p for p in (parts[0], parts[2]))
        token = _Token("term", start, form="range", low=low, high=high)
        return replace(token, low_excl=q[open_at] == "{", high_excl=q[close] == "}")

    def _compare(self, start: int) -> _Token:
        """Read ``>v``, ``>=v``, ``<v`` or ``<=v``."""
        q = self.query
        op = q[self.i : self.i + 2] if q[self.i + 1 : self.i + 2] == "=" else q[self.i]
        self.i += len(op)
        word = self._word(start)
        if not word.text or word.form != "word":
            _fail(q, start, "bad_compare", op=op)
        return replace(word, form="compare", op=op)

    def _word(self, start: int) -> _Token:
        """Read a bare word with an optional trailing ``*`` (prefix) or ``~N`` (fuzzy)."""
        q, j = self.query, self.i
        while j < len(q) and q[j] not in _WORD_END and q[j] != "~":
            j += 1
        text, self.i = q[self.i : j], j
        if j < len(q) and q[j] == "~":
            return _Token("term", start, form="fuzzy", text=text, number=self._tilde(default=1))
        if text == "*":
            return _Token("term", start, form="all")
        if "*" in text[:-1]:
            _fail(q, j - len(text) + text.index("*"), "bad_wildcard")
        if text.endswith("*"):
            return _Token("term", start, form="prefix", text=text[:-1])
        return _Token("term", start, text=text)


class _Parser:
    """Recursive descent: or := and (OR and)*; and := unary (AND? unary)*; unary := NOT unary
    | ( or ) | field:( or ) | term."""

    def __init__(self, query: str, tokens: list[_Token]) -> None:
        self.query = query
        self.tokens = tokens
        self.i = 0

    def _peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _next(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def parse(self) -> Any:
        """Parse all tokens into one whoosh query."""
        result = self._or(None)
        extra = self._peek()
        if extra is not None:
            _fail(self.query, extra.pos, "unmatched_paren")
        return wq.NullQuery if result is None else result

    def _operand_follows(self, op: _Token) -> None:
        """Fail unless a term follows the binary or NOT operator ``op``."""
        nxt = self._peek()
        if nxt is None or nxt.kind in ("AND", "OR", ")"):
            _fail(self.query, op.pos, "operand_after", op=op.kind)

    def _or(self, field: str | None) -> Any:
        parts = [self._and(field)]
        while (tok := self._peek()) is not None and tok.kind == "OR":
            self._operand_follows(self._next())
            parts.append(self._and(field))
        return _combine(wq.Or, parts)

    def _and(self, field: str | None) -> Any:
        parts = [self._unary(field)]
        while (tok := self._peek()) is not None and tok.kind not in ("OR", ")"):
            if tok.kind == "AND":
                self._operand_follows(self._next())
            parts.append(self._unary(field))
        return _combine(wq.And, parts)

    def _unary(self, field: str | None) -> Any:
        # Callers guarantee a token is left: operators check for their operand first.
        tok = self._next()
        if tok.kind in ("AND", "OR"):
            _fail(self.query, tok.pos, "operand_before", op=tok.kind)
        if tok.kind == ")":
            _fail(self.query, tok.pos, "unmatched_paren")
        if tok.kind == "NOT":
            self._operand_follows(tok)
            inner = self._unary(field)
            return None if inner is None else wq.Not(inner)
        if tok.kind in ("(", "group"):
            return self._group(tok, tok.field or field)
        return _term_query(self.query, tok, tok.field or field)

    def _group(self, opener: _Token, field: str | None) -> Any:
        paren = self._next() if opener.kind == "group" else opener
        nxt = self._peek()
        if nxt is None:
            _fail(self.query, paren.pos, "unclosed_paren")
        if nxt.kind == ")":
            _fail(self.query, paren.pos, "empty_group")
        result = self._or(field)
        closing = self._peek()
        if closing is None or closing.kind != ")":
            _fail(self.query, paren.pos, "unclosed_paren")
        self._next()
        return result


def _combine(kind: Any, parts: list[Any]) -> Any:
    """Join sub-queries, dropping empty ones (a stop word like "the" matches nothing)."""
    kept = [p for p in parts if p is not None]
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else kind(kept)


def _term_query(query: str, tok: _Token, field: str | None) -> Any:
    """Build the whoosh query of one term token; None when it analyzes to nothing."""
    if tok.form == "fuzzy" and tok.number not in (1, 2):
        _fail(query, tok.pos, "bad_distance", n=tok.number)
    if tok.form == "all":
        return wq.Every() if field is None else wq.Every(field)
    if field is not None:
        return _field_query(query, tok, field)
    if tok.form != "prefix" and not any(_ANALYZERS["text"](tok.text, mode="query")):
        return None  # a stop word ("the") must not turn into author:the and match nothing
    return _combine(wq.Or, [_field_query(query, tok, name) for name in DEFAULT_FIELDS])


def _field_query(query: str, tok: _Token, field: str) -> Any:
    """Dispatch on the kind of ``field``: text, keyword, id, number or date."""
    kind = _KINDS[field]
    if kind in ("number", "date"):
        if tok.form in ("prefix", "fuzzy"):
            _fail(query, tok.pos, "no_fuzzy", form=tok.form, field=field)
        build = _number_query if kind == "number" else _date_query
        return build(query, tok, field)
    if tok.form in ("range", "compare"):
        _fail(query, tok.pos, "no_range", field=field)
    if kind == "text":
        return _text_query(tok, field)
    text = tok.text.strip() if kind == "id" and field != "site" else tok.text.strip().lower()
    if not text:
        return None
    if tok.form == "prefix":
        return wq.Prefix(field, text)
    if tok.form == "fuzzy":
        return wq.FuzzyTerm(field, text, maxdist=tok.number, prefixlength=1)
    return wq.Term(field, text)  # a phrase is one exact value here: topic:"mental health"


def _text_query(tok: _Token, field: str) -> Any:
    """Analyze the value like the indexed text (fold accents, stem) and build the query.

    A prefix is folded and lowercased but not stemmed, so it matches stems: ``valpro*``.
    """
    if tok.form == "prefix":
        folded = tok.text.lower().translate(accent_map)
        return wq.Prefix(field, folded) if folded else wq.Every(field)
    words = [t.text for t in _ANALYZERS[field](tok.text, mode="query")]
    if not words:
        return None
    if tok.form == "fuzzy":
        fuzzy = [wq.FuzzyTerm(field, w, maxdist=tok.number, prefixlength=1) for w in words]
        return _combine(wq.And, fuzzy)
    if len(words) == 1:
        return wq.Term(field, words[0])
    return wq.Phrase(field, words, slop=1 + tok.number)


def _number_query(query: str, tok: _Token, field: str) -> Any:
    """Build an exact, comparison or range query over an integer field."""

    def num(value: str | None) -> int | None:
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            _fail(query, tok.pos, "bad_number", value=value)

    if tok.form == "range":
        low, high = num(tok.low), num(tok.high)
        if low is not None and high is not None and low > high:
            _fail(query, tok.pos, "empty_range")
        return wq.NumericRange(field, low, high, startexcl=tok.low_excl, endexcl=tok.high_excl)
    value = num(tok.text)
    if tok.form == "compare":
        low, high = (value, None) if tok.op.startswith(">") else (None, value)
        return wq.NumericRange(field, low, high, startexcl=tok.op == ">", endexcl=tok.op == "<")
    return wq.NumericRange(field, value, value)


def _date_query(query: str, tok: _Token, field: str) -> Any:
    """Build a date query; every date names a half-open span [start, end) of a year/month/day."""

    def span(value: str) -> tuple[datetime, datetime]:
        try:
            return date_span(value)
        except ValueError:
            _fail(query, tok.pos, "bad_date", value=value)

    if tok.form == "range":
        start = None if tok.low is None else span(tok.low)[1 if tok.low_excl else 0]
        end = None if tok.high is None else span(tok.high)[0 if tok.high_excl else 1]
        if start is not None and end is not None and start >= end:
            _fail(query, tok.pos, "empty_range")
    elif tok.form == "compare":
        lo, hi = span(tok.text)
        start, end = {">": (hi, None), ">=": (lo, None), "<": (None, lo), "<=": (None, hi)}[tok.op]
    else:
        start, end = span(tok.text)
    return date_range(field, start, end)


def parse_query(query: str) -> Any:
    """Parse a query in the crawldex query language (see the module docstring).

    Args:
        query: what the user typed; empty or ``*`` means every article.

    Returns:
        A whoosh query object.

    Raises:
        QuerySyntaxError: the query is malformed; ``.position`` is the 0-based offset.
    """
    tokens = _Lexer(query).run()
    if not tokens:
        return wq.Every()
    return _Parser(query, tokens).parse()
