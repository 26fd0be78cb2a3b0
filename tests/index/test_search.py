"""Search over a real whoosh index of the conftest records: query language, filters, sorting,
pages, facets, snippets and syntax errors."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bench.search_bench import make_records
from index import MARK_END, MARK_START, Hit, SearchResults, apply_changes, search
from index.layout import current_generation
from index.schema import VERSION_FILE
from pipeline.errors import QuerySyntaxError, SearchIndexError


def _ids(*numbers: int) -> set[str]:
    return {f"a{n:03d}" for n in numbers}


def _found(path: Path, query: str, **options: object) -> set[str]:
    results = search(path, query, limit=100, **options)  # type: ignore[arg-type]
    assert results.total == len(results.hits)
    return {hit.id for hit in results.hits}


FILLERS = set(range(17, 41))
ALL = set(range(1, 14)) | {15, 16} | FILLERS


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # free text, default AND, OR, NOT, grouping
        ("valproate", {1, 2}),
        ("valproate pregnancy", {2}),
        ("valproate AND pregnancy", {2}),
        ("valproate OR warfarin", {1, 2, 5, 15}),
        ("valproate NOT pregnancy", {1}),
        ("valproate -pregnancy", {1}),
        ("(valproate OR warfarin) -dosing", {2, 5}),
        ("-valproate", ALL - {1, 2}),
        ("the valproate", {1, 2}),  # stop words are dropped, not required
        ("the", set()),
        # phrases and proximity
        ('"drug interactions"', {5}),
        ("drug interactions", {5, 6}),
        ('"drug matter"', set()),
        ('"drug matter"~1', {6}),
        ('"mental health"', {9, 10}),
        # stemming and accent folding
        ("interactions", {5, 6}),
        ("interaction", {5, 6}),
        ("sjogren", {4, 16}),
        ("Sj\u00f6gren\u2019s", {4, 16}),
        ("résumé", {11}),
        ("resume", {11}),
        # fields and aliases
        ("title:vaccine", {7, 8}),
        ("title:(measles OR flu)", {7, 8}),
        ("text:anxiety", {9, 10}),
        ("body:anxiety", {9, 10}),
        ("summary:registry", {2}),
        ("author:gonzalez", {4, 10}),
        ("author:González", {4, 10}),
        ('topic:"mental health"', {9, 10}),
        ("topics:Epilepsy", {1, 2, 13}),
        ("site:medjournal.example valproate", {2}),
        ("SITE:MedJournal.example valproate", {2}),
        ("id:a005", {5}),
        # prefix and fuzzy
        ("valpro*", {1, 2, 3}),
        ("title:warf*", {15}),
        ("topic:rheum*", {4, 16}),
        ("epilapsy~", {1, 2, 13}),
        ("epylapsy~", set()),
        ("epylapsy~2", {1, 2, 13}),
        # dates (UTC days; a009 is 2025-09-09T23:30-02:00)
        ("published:[2025-03-01 TO 2025-05-31]", {1, 2, 8, 15, 16}),
        ("published:{2025-03-03 TO 2025-05-27}", {1, 2, 8}),
        ("published:2025-06", {5, 6}),
        ("date:>=2025-10-01", {7, 11}),
        ("date:>2025-10-05", {11}),
        ("date:[2025-10-01 TO *]", {7, 11}),
        ("published:2025-09-10", {9}),
        ("published:2025 comments:<3", {10}),
        # comments
        ("comments:>30", {2, 8, 11}),
        ("comments:>=40", {2, 8}),
        ("comments:[5 TO 12]", {1, 4, 6, 15, 16}),
        ("comments:{5 TO 12}", {4, 15, 16}),
        ("comments:12", {1}),
        # everything; gone records and non-articles are not indexed
        ("*", ALL),
        ("", ALL),
        ("   ", ALL),
        ("retracted", set()),
        ("title:page", set()),
    ],
)
def test_query_forms_find_exact_documents(search_index: Path, query: str, expected: set[int]):
    assert _found(search_index, query) == _ids(*expected)


def test_title_matches_rank_first(search_index: Path):
    hits = search(search_index, "valproate").hits
    assert [h.id for h in hits] == ["a001", "a002"]  # a001 has it in the title
    assert hits[0].score is not None
    assert hits[1].score is not None
    assert hits[0].score > hits[1].score


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"topic": "Mental Health"}, {9, 10}),
        ({"topic": "mental health", "site": "DAILYSCIENCE.example"}, {10}),
        ({"topic": "c++"}, set()),  # built as a query, never parsed as text
        ({"since": date(2025, 10, 1)}, {7, 11}),
        ({"until": date(2025, 1, 31)}, {13} | FILLERS),
        ({"since": date(2025, 3, 1), "until": date(2025, 3, 31)}, {1, 15}),
        ({"until": date(2025, 9, 9), "since": date(2025, 9, 9)}, set()),  # a009 is 09-10 UTC
        ({"min_comments": 30}, {2, 8, 11}),
        ({"first_seen_since": datetime(2025, 10, 1, tzinfo=UTC)}, {7, 11, 12}),
    ],
)
def test_filters(search_index: Path, options: dict[str, object], expected: set[int]):
    assert _found(search_index, "*", **options) == _ids(*expected)


def test_filters_combine_with_query(search_index: Path):
    assert _found(search_index, "valproate OR warfarin", site="healthwire.example") == _ids(1, 15)


def test_sort_by_date_newest_first_undated_last(search_index: Path):
    epilepsy = search(search_index, "*", topic="epilepsy", sort="date")
    assert [h.id for h in epilepsy.hits] == ["a002", "a001", "a013"]
    nutrition = search(search_index, "*", topic="nutrition", sort="date")
    assert [h.id for h in nutrition.hits] == ["a013", "a012"]
    assert all(h.score is None for h in nutrition.hits)


def test_sort_by_comments_most_first_unknown_last(search_index: Path):
    results = search(search_index, "*", topic="pharmacology", sort="comments")
    assert [h.id for h in results.hits] == ["a005", "a001", "a015", "a003"]


def test_pagination(search_index: Path):
    first = search(search_index, "*", sort="comments", limit=5)
    second = search(search_index, "*", sort="comments", limit=5, page=2)
    assert (first.total, first.pages, first.page) == (39, 8, 1)
    assert [h.id for h in first.hits] == ["a008", "a002", "a011", "a005", "a013"]
    assert [h.id for h in second.hits] == ["a009", "a001", "a016", "a015", "a004"]
    assert [h.rank for h in second.hits] == [6, 7, 8, 9, 10]
    last = search(search_index, "*", sort="comments", limit=5, page=8)
    assert len(last.hits) == 4
    beyond = search(search_index, "*", limit=5, page=9)
    assert (beyond.total, beyond.page, beyond.hits) == (39, 9, ())


def test_facets_count_all_matches_not_just_the_page(search_index: Path):
    results = search(search_index, "*", facets=True, limit=1)
    assert len(results.hits) == 1
    assert results.facets is not None
    assert results.facets["topic"] == [
        ("health policy", 24),
        ("pharmacology", 4),
        ("epilepsy", 3),
        ("mental health", 2),
        ("nutrition", 2),
        ("rheumatology", 2),
        ("vaccines", 2),
        ("microbiome", 1),
        ("oncology", 1),
    ]
    months_2025 = [("2025-11", 1), ("2025-10", 1), ("2025-09", 1), ("2025-08", 1)]
    months_2025 += [("2025-07", 1), ("2025-06", 2), ("2025-05", 2), ("2025-04", 1)]
    months_2025 += [("2025-03", 2), ("2025-02", 1), ("2025-01", 1)]
    months_2024 = [(f"2024-{m:02d}", 2) for m in range(12, 0, -1)]
    assert results.facets["month"] == months_2025 + months_2024  # a012 is undated


def test_facets_follow_query_and_filters(search_index: Path):
    results = search(search_index, "valproate OR warfarin", facets=True)
    assert results.facets == {
        "topic": [("pharmacology", 3), ("epilepsy", 2)],
        "month": [("2025-06", 1), ("2025-05", 1), ("2025-03", 2)],
    }
    filtered = search(search_index, "valproate OR warfarin", facets=True, site=HW_SITE)
    assert filtered.facets == {
        "topic": [("pharmacology", 2), ("epilepsy", 1)],
        "month": [("2025-03", 2)],
    }
    assert search(search_index, "valproate").facets is None


HW_SITE = "healthwire.example"


def test_hit_fields(search_index: Path):
    hit = search(search_index, "valproate").hits[0]
    assert isinstance(hit, Hit)
    assert (hit.id, hit.url, hit.site) == ("a001", "https://healthwire.example/articles/1", HW_SITE)
    assert hit.title == "Valproate dosing in adults with epilepsy"
    assert (hit.published_at, hit.comment_count, hit.rank) == ("2025-03-14", 12, 1)
    assert hit.topics == ("Epilepsy", "Pharmacology")
    assert (hit.author, hit.summary) == ("Ana Ruiz", "New guidance on valproate levels.")
    undated = search(search_index, "vitamin").hits[0]
    assert (undated.published_at, undated.author, undated.summary) == (None, None, None)
    assert search(search_index, "valproic").hits[0].comment_count is None
    datetime_hit = search(search_index, "registry").hits[0]
    assert datetime_hit.published_at == "2025-05-02T08:15:00+00:00"  # as the record gave it


def test_snippets_mark_stemmed_matches(search_index: Path):
    hit = search(search_index, '"drug interactions"').hits[0]
    assert f"{MARK_START}interactions{MARK_END}" in hit.snippet
    assert hit.snippet_plain.startswith("Common drug interactions involve warfarin")
    assert MARK_START not in hit.snippet_plain
    stemmed = search(search_index, "interactions").hits[0]
    assert "[[interaction]] takes time" in stemmed.snippet


def test_snippet_is_short_and_centred_on_the_match(search_index: Path):
    hit = search(search_index, "survival").hits[0]
    assert "[[survival]]" in hit.snippet
    assert len(hit.snippet_plain) <= 200
    # cut from the text's middle: it says so, and ends where the text ends, full stop included
    assert hit.snippet_plain.startswith("… ")
    assert hit.snippet_plain.endswith("treated with immunotherapy.")


def test_snippets_start_and_end_on_whole_words(tmp_path: Path):
    text = (
        "The committee met on Tuesday to review the draft, and everyone agreed on the outline. "
        "It's worth asking whether the registry's numbers hold once the winter data arrive, "
        "because the autumn figures were collected under an older protocol that nobody used."
    )
    record = {
        "id": "b001",
        "url": "https://example.test/b001",
        "title": "Registry review",
        "summary": None,
        "text": text,
        "topics": [],
        "site": "example.test",
        "author": None,
        "published_at": "2025-01-01",
        "comment_count": None,
        "updated_at": None,
        "language": "en",
        "word_count": len(text.split()),
        "first_seen_at": "2025-01-01T12:00:00+00:00",
        "last_seen_at": "2025-01-01T12:00:00+00:00",
        "fetched_at": "2025-01-01T12:00:00+00:00",
        "status": "active",
        "kind": "article",
        "schema_version": 1,
    }
    apply_changes(tmp_path / "ix", [record])
    for query in ("registry", "winter", "protocol", "committee"):
        plain = search(tmp_path / "ix", query).hits[0].snippet_plain
        body = plain.removeprefix("… ").removesuffix(" …")
        assert f" {body} " in f" {text} ", (query, plain)  # whole words of the text, in order
        assert plain.startswith("… ") == (not text.startswith(body)), plain
        assert plain.endswith(" …") == (not text.endswith(body)), plain


def test_snippet_falls_back_to_summary(search_index: Path):
    hit = search(search_index, "title:valproate").hits[0]
    assert hit.snippet == "New guidance on valproate levels."  # no text term matched
    results = search(search_index, "*", topic="mental health", sort="date")
    assert results.hits[1].snippet == "Teenagers who slept less reported more anxiety."


def test_prefix_matches_are_marked(search_index: Path):
    hit = search(search_index, "valpro*", sort="date").hits[0]
    assert hit.id == "a003"
    assert "[[valproic]]" in hit.snippet


@pytest.mark.parametrize(
    ("query", "position", "words"),
    [
        ('"drug interactions', 0, "unclosed quote"),
        ('valproate "drug', 10, "unclosed quote"),
        ("(valproate OR warfarin", 0, "unclosed parenthesis"),
        ("valproate)", 9, "unmatched ')'"),
        ("()", 0, "empty parentheses"),
        ("published:[2025-01-01 TO 2025-06-30", 10, "unclosed range"),
        ("valproate ]", 10, "unmatched ']'"),
        ("published:[2025-01-01 2025-06-30]", 10, "bad range"),
        ("published:[2025-13-01 TO 2025-06-30]", 10, "is not a date"),
        ("published:[2025-06-30 TO 2025-01-01]", 10, "empty range"),
        ("comments:[20 TO 5]", 9, "empty range"),
        ("comments:>many", 9, "not a whole number"),
        ("comments:>", 9, "bad value after '>'"),
        ("[1 TO 5]", 0, "needs a field"),
        ("title:>5", 6, "do not work on title"),
        ("comments:1*", 9, "does not work on comments"),
        ("autor:gonzalez", 0, "unknown field 'autor'"),
        ("valproate title:", 10, "missing value"),
        ("valproate AND", 10, "AND needs a term after it"),
        ("OR valproate", 0, "OR needs a term before it"),
        ("valproate NOT", 10, "NOT needs a term after it"),
        ("val*proate", 3, "'*' inside a word"),
        ("valproate~x", 9, "'~' must be followed by a number"),
        ("valproate~3", 0, "fuzzy distance ~3"),
    ],
)
def test_syntax_errors_say_what_and_where(
    search_index: Path, query: str, position: int, words: str
):
    with pytest.raises(QuerySyntaxError) as caught:
        search(search_index, query)
    error = caught.value
    assert error.position == position
    assert words in str(error)
    assert f"at character {position + 1}" in str(error)
    assert error.hint
    assert error.hint in str(error)


def test_unknown_field_hint_lists_known_fields(search_index: Path):
    with pytest.raises(QuerySyntaxError) as caught:
        search(search_index, "autor:gonzalez")
    assert "known fields: author, body, comments, date" in caught.value.hint


def test_syntax_error_is_raised_even_without_an_index(tmp_path: Path):
    with pytest.raises(QuerySyntaxError):
        search(tmp_path / "missing", '"open')


def test_missing_or_empty_index_gives_no_results(tmp_path: Path):
    missing = search(tmp_path / "missing", "valproate", facets=True)
    assert missing == SearchResults(
        total=0, page=1, pages=0, hits=(), facets={"topic": [], "month": []}
    )
    (tmp_path / "empty").mkdir()
    assert search(tmp_path / "empty", "*").total == 0


def test_schema_version_mismatch_is_an_error(search_index: Path, tmp_path: Path):
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(search_index, copy)
    generation = current_generation(copy)
    assert generation is not None
    (generation / VERSION_FILE).write_text('{"schema_version": 0}\n', encoding="utf-8")
    with pytest.raises(SearchIndexError, match="crawldex reindex"):
        search(copy, "valproate")


@pytest.mark.parametrize("options", [{"limit": 0}, {"page": 0}, {"sort": "title"}])
def test_bad_paging_or_sort_is_a_value_error(search_index: Path, options: dict[str, object]):
    with pytest.raises(ValueError, match="bad limit"):
        search(search_index, "*", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("query", ["valproate OR warfarin", "comments:>5", "interaction*", "*"])
@pytest.mark.parametrize(
    "options",
    [{"topic": "mental health"}, {"min_comments": 30}, {"since": date(2025, 6, 1)}],
)
def test_a_filtered_total_counts_only_filtered_matches(search_index: Path, query, options):
    """whoosh's own count ignores the filter when it stops at a page; ours counts query AND
    filter, whatever the page size."""
    matching = {h.id for h in search(search_index, query, limit=1000).hits}
    allowed = {h.id for h in search(search_index, "*", limit=1000, **options).hits}
    everything = search(search_index, query, limit=1000, **options)
    assert {h.id for h in everything.hits} == matching & allowed
    one_page = search(search_index, query, limit=2, **options)
    assert one_page.total == len(matching & allowed)
    assert one_page.pages == -(-len(matching & allowed) // 2)


@pytest.fixture(scope="module")
def segmented_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 bench records committed 60 at a time: an index of several segments."""
    path = tmp_path_factory.mktemp("segmented") / "index"
    apply_changes(path, make_records(600), batch_size=60)
    return path


@pytest.mark.parametrize(
    "query",
    [
        "mouth ciprofloxacin",
        "mouth AND (ciprofloxacin OR holness) NOT major",
        "clarithromycin AND (reported OR lormere) NOT cholesterol",
    ],
)
def test_the_first_page_is_the_start_of_the_whole_ranking(segmented_index: Path, query: str):
    # whoosh's own top-N collector swaps in pruned matchers as the N-th score rises; over
    # several segments that dropped documents from the top 10 and miscounted the total for
    # exactly these queries (the whole list, limit >= documents, was always right)
    whole = search(segmented_index, query, limit=600)
    first = search(segmented_index, query, limit=10)
    assert whole.total > 10
    assert [h.id for h in first.hits] == [h.id for h in whole.hits[:10]]
    assert [h.score for h in first.hits] == [h.score for h in whole.hits[:10]]
    assert (first.total, first.pages) == (whole.total, -(-whole.total // 10))
