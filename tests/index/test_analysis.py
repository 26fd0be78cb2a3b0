"""The fused analysis path gives exactly the postings whoosh's own analyzer chain gives."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from whoosh import formats
from whoosh.analysis import RegexTokenizer, StemmingAnalyzer

from index.analysis import _DEFAULT_WORDS, FusedPositions, _word_finder
from index.schema import build_schema, english_analyzer, name_analyzer

TEXTS = [
    "",
    "The quick brown fox jumps over the lazy dog.",
    "a an the of to in is it",  # nothing but stop words
    "The the THE running runs Ran runner's, Résumés résumé RESUMES naïve café",
    "Version 3.141 of big-time under_score e.g. U.S.A. x* wild*card 2025-11-01",
    "Straße ΟΔΥΣΣΕΥΣ İstanbul ǅemal ﬁnance Ⅻ ½ ٣٤ 中文字 emoji🙂text",
    "to be or not to be, that is the question: whether 'tis nobler",
    "one  two\tthree\nfour\r\nfive — six…seven",
]
# Words the generator draws from: stop words, stems, accents, digits, odd Unicode.
WORDS = st.sampled_from(
    [
        "the", "a", "of", "is", "Running", "runs", "café", "Résumé", "3.14", "U.S.",
        "under_score", "x*", "İ", "ß", "ﬁ", "中文", "🙂", "don't", "--", "", " ", ".", "A.b",
    ]
)  # fmt: skip


def _both(text: str, analyzer: Any, boost: float = 1.0) -> tuple[list[Any], list[Any]]:
    fused = list(FusedPositions(field_boost=boost).word_values(text, analyzer, mode="index"))
    plain = list(formats.Positions(field_boost=boost).word_values(text, analyzer, mode="index"))
    return fused, plain


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("make", [english_analyzer, name_analyzer])
def test_same_postings_as_whoosh(text: str, make: Any) -> None:
    fused, plain = _both(text, make(), boost=3.0)
    assert fused == plain


@settings(max_examples=200, deadline=None)
@given(st.lists(WORDS, max_size=40).map(" ".join))
def test_same_postings_on_generated_text(text: str) -> None:
    fused, plain = _both(text, english_analyzer())
    assert fused == plain


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(WORDS, st.text(max_size=6)), max_size=30).map(" ".join))
@example("*x **y z.* .5 a..b c.d.e_f")
def test_every_word_finder_reads_the_words_the_pattern_matches(text: str) -> None:
    default = RegexTokenizer().expression
    other = RegexTokenizer(r"(\w)+(-\w+)?").expression  # groups, not whoosh's default
    plain = RegexTokenizer(r"\w+").expression  # no group
    for expression in (default, other, plain):
        finder = _word_finder(expression)
        assert finder(text) == [match.group(0) for match in expression.finditer(text)]
    assert _word_finder(default) == _DEFAULT_WORDS[1].findall  # the non-capturing twin
    assert _word_finder(plain) == plain.findall


def test_the_fast_path_is_taken_and_cached() -> None:
    fmt = FusedPositions()
    analyzer = english_analyzer()
    list(fmt.word_values("The runners ran", analyzer, mode="index"))
    cache = fmt.__dict__["_fused_plan"][1][3]
    assert {"The": False, "runners": "runner", "ran": "ran"}.items() <= cache.items()


def test_the_term_cache_starts_over_past_its_limit_and_postings_stay_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("index.analysis._CACHE_LIMIT", 10)
    fmt = FusedPositions()
    analyzer = english_analyzer()
    sizes = []
    for n in range(30):  # every document brings new words, as a crawl's do
        text = f"The runners ran past marker{n} and token{n}x, running again"
        fused = list(fmt.word_values(text, analyzer, mode="index"))
        assert fused == list(formats.Positions().word_values(text, analyzer, mode="index"))
        sizes.append(len(fmt.__dict__["_fused_plan"][1][3]))
    assert max(sizes) <= 10 + 9  # the limit, plus one document's words
    assert min(sizes[5:]) < max(sizes)  # it did start over


def test_schemas_unpickled_again_share_the_term_cache() -> None:
    """Each index write unpickles the schema again; its terms are not worked out again."""
    first, second = build_schema(), pickle.loads(pickle.dumps(build_schema()))
    for schema in (first, second):
        list(schema["text"].index("Cached words"))
    caches = [s["text"].format.__dict__["_fused_plan"][1][3] for s in (first, second)]
    assert caches[0] is caches[1]
    assert "Cached" in caches[0]
    # another analyzer configuration (no stemming) has its own
    list(first["author"].index("Cached words"))
    assert first["author"].format.__dict__["_fused_plan"][1][3] is not caches[0]


def test_other_analyzers_and_arguments_take_whooshs_path() -> None:
    fmt = FusedPositions()
    # A bare tokenizer is not a composite analyzer; query mode is not indexing.
    tokenizer = RegexTokenizer()
    assert list(fmt.word_values("a b", tokenizer, mode="index")) == list(
        formats.Positions().word_values("a b", tokenizer, mode="index")
    )
    assert fmt.__dict__["_fused_plan"] == (tokenizer, None)
    analyzer = StemmingAnalyzer()
    list(fmt.word_values("some words", analyzer, mode="query"))
    assert fmt.__dict__["_fused_plan"] == (tokenizer, None)  # query mode did not plan
    # A list of words (whoosh's pre-tokenized input) is not text.
    assert list(fmt.word_values(["x", "y"], analyzer, mode="index")) == list(
        formats.Positions().word_values(["x", "y"], analyzer, mode="index")
    )


def test_schema_pickles_without_the_cache() -> None:
    schema = build_schema()
    text_format = schema["text"].format
    assert isinstance(text_format, FusedPositions)
    list(text_format.word_values("cached words", schema["text"].analyzer, mode="index"))
    restored = pickle.loads(pickle.dumps(schema))
    assert "_fused_plan" not in restored["text"].format.__dict__
    words = "cached words"
    assert list(restored["text"].index(words)) == list(schema["text"].index(words))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 20_000), min_size=1, max_size=40, unique=True).map(sorted))
def test_positions_encode_to_whooshs_bytes(poslist: list[int]) -> None:
    plain = formats.Positions().encode(poslist)
    assert FusedPositions().encode(poslist) == plain
    assert FusedPositions().encode(poslist) == plain  # again: one position, from the table
    assert FusedPositions().decode_positions(plain) == poslist
