"""The writer's posting pool groups postings by term, spills sorted runs a block at a time and
gives every posting back in whoosh's order."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from whoosh import index as whoosh_index
from whoosh.filedb.filestore import FileStorage

import index.pool
from index import apply_changes
from index.layout import current_generation
from index.pool import BlockPostingPool, GroupedPostingPool, merge_terms


def _postings(count: int) -> list[tuple[str, bytes, int, float, bytes | None]]:
    rng = random.Random(7)
    found = [
        (rng.choice(("text", "title")), f"w{rng.randrange(900):03d}".encode(), doc, 1.0,
         None if doc % 5 == 0 else bytes(rng.randrange(9)))
        for doc in range(count)
    ]  # fmt: skip
    rng.shuffle(found)
    return found


@pytest.mark.parametrize("maxfiles", [128, 3])  # 3: runs are merged into fewer runs first
def test_a_spilled_pool_gives_back_every_posting_in_order(tmp_path: Path, maxfiles: int):
    storage = FileStorage(str(tmp_path)).create()
    pool = BlockPostingPool(storage, None, limitmb=1)
    pool.limit = 100_000  # bytes of whoosh's estimate: a run every ~500 postings
    postings = _postings(12_000)
    for posting in postings:
        pool.add(posting)
    assert len(pool.runs) >= 10
    assert list(pool.items(maxfiles=maxfiles)) == sorted(postings)
    assert not list(tmp_path.glob("*.run"))  # each run is deleted once read


def _all_postings(path: Path) -> dict[tuple[str, bytes], list[tuple[int, Any]]]:
    generation = current_generation(path)
    assert generation is not None
    with whoosh_index.open_dir(str(generation)).searcher() as searcher:
        reader = searcher.reader()
        found = {}
        for fieldname, term in reader.all_terms():  # (document number, raw posting value)
            found[fieldname, term] = list(reader.postings(fieldname, term).all_items())
        return found


def _writer_like(draw: st.DrawFn) -> list[tuple[str, bytes, int, Any, bytes | None]]:
    """Postings as a writer adds them: document by document with growing numbers, then a
    merged segment's term by term, with some of other shapes and some out of order."""
    terms = st.tuples(st.sampled_from(("text", "title", "topics")), st.binary(max_size=3))
    found: list[tuple[str, bytes, int, Any, bytes | None]] = []
    docs = draw(st.integers(0, 30))
    for doc in range(docs):
        for field, term in draw(st.lists(terms, max_size=8, unique=True)):
            weight = draw(st.sampled_from((1.0, 2.5, 1)))  # an int weight: whoosh's spelling
            value = None if field == "topics" else draw(st.binary(max_size=4))  # per format
            found.append((field, term, doc, weight, value))
    for field, term in draw(st.lists(terms, max_size=6, unique=True)):  # a merged segment
        for doc in sorted(draw(st.sets(st.integers(docs, docs + 20), max_size=5))):
            found.append((field, term, doc, 1.0, None if field == "topics" else b"m"))
    found += draw(st.lists(st.tuples(terms, st.integers(0, 3)), max_size=6).map(
        lambda extra: [(f, t, d, 1.0, None if f == "topics" else b"x") for (f, t), d in extra]
    ))  # fmt: skip  # out of order, repeated
    return found


@settings(max_examples=150, deadline=None)
@given(
    postings=st.composite(_writer_like)(),
    limit=st.sampled_from((None, 600, 3_000)),
    maxfiles=st.sampled_from((128, 2)),
)
def test_a_grouped_pool_gives_back_what_whoosh_sorting_gives(
    tmp_path_factory: pytest.TempPathFactory, postings: list[Any], limit: int | None, maxfiles: int
):
    folder = tmp_path_factory.mktemp("pool")
    pool = GroupedPostingPool(FileStorage(str(folder)).create(), None, limitmb=1)
    if limit is not None:
        pool.limit = limit  # estimated bytes: a run every few postings
    for posting in postings:
        pool.add(posting)
    assert list(pool.items(maxfiles=maxfiles)) == sorted(postings)
    assert not list(folder.glob("*.run"))
    assert list(pool.items()) == []  # given back once, then empty


def _flat(terms: Any) -> list[tuple[str, bytes, int, float, bytes]]:
    """A term stream's postings as whoosh's tuples."""
    return [
        (field, term, docnum, weight, value)
        for field, term, docnums, weights, values in terms
        for docnum, weight, value in zip(docnums, weights, values, strict=True)
    ]


@settings(max_examples=150, deadline=None)
@given(postings=st.composite(_writer_like)(), limit=st.sampled_from((None, 600)))
def test_a_pool_gives_its_terms_in_whoosh_order_unless_it_spilled(
    tmp_path_factory: pytest.TempPathFactory, postings: list[Any], limit: int | None
):
    folder = tmp_path_factory.mktemp("pool")
    pool = GroupedPostingPool(FileStorage(str(folder)).create(), None, limitmb=1)
    if limit is not None:
        pool.limit = limit
    for posting in postings:
        pool.add(posting)
    terms = pool.take_terms()
    if pool.runs or pool.current:  # spilled, or postings of another shape (an int weight)
        assert terms is None
        assert list(pool.items()) == sorted(postings)  # nothing was taken
        return
    assert terms is not None
    assert _flat(terms) == sorted(postings)
    assert list(pool.items()) == []  # taken once, then empty


@settings(max_examples=150, deadline=None)
@given(
    postings=st.composite(_writer_like)(),
    streams=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    ordered=st.booleans(),
)
def test_merged_term_streams_give_what_one_pool_of_them_all_gives(
    tmp_path_factory: pytest.TempPathFactory,
    postings: list[Any],
    streams: int,
    seed: int,
    ordered: bool,
):
    # what a flush merges: a pool's terms and merged segments', each stream in term order
    postings = [p for p in postings if type(p[3]) is float and type(p[4]) is bytes]
    rng = random.Random(seed)
    if ordered:  # a segment each, numbered after the one before, as merges number them
        postings = sorted(postings, key=lambda p: p[2])
        cuts = sorted(rng.randrange(len(postings) + 1) for _ in range(streams - 1))
        parts = [postings[a:b] for a, b in zip([0, *cuts], [*cuts, len(postings)], strict=True)]
    else:  # numbers interleaved between streams: joined terms are sorted as whoosh sorts
        parts = [[] for _ in range(streams)]
        for posting in postings:
            parts[rng.randrange(streams)].append(posting)
    sources = []
    for part in parts:
        pool = GroupedPostingPool(FileStorage(str(tmp_path_factory.mktemp("p"))).create(), None)
        for posting in part:
            pool.add(posting)
        terms = pool.take_terms()
        assert terms is not None
        sources.append(terms)
    assert _flat(merge_terms(sources)) == sorted(postings)


def test_a_grouped_pool_of_a_commit_spills_nothing_under_its_limit(tmp_path: Path):
    pool = GroupedPostingPool(FileStorage(str(tmp_path)).create(), None, limitmb=1)
    postings = [
        (field, f"w{(doc * 7 + j) % 300}".encode(), doc, 1.0, b"\x01\x02")
        for doc in range(40) for field in ("text", "title") for j in range(60)
    ]  # fmt: skip
    for posting in postings:
        pool.add(posting)
    assert pool.runs == []  # 4,800 postings in 1 MB: whoosh's own pool spilled at ~6,000
    assert list(pool.items()) == sorted(postings)


def test_an_index_written_through_spilled_runs_is_the_same_index(
    tmp_path: Path, articles: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
):
    spills: list[str] = []
    add_run = GroupedPostingPool._add_run

    def counted(self: GroupedPostingPool, path: str) -> None:
        spills.append(path)
        add_run(self, path)

    monkeypatch.setattr(index.pool.GroupedPostingPool, "_add_run", counted)
    for n, article in enumerate(articles):  # 3,000 words each: a 1 MB pool fills many times
        article["text"] += " ".join(f"term{(n * 37 + j) % 5000}" for j in range(3000))
    apply_changes(tmp_path / "spilled", articles, batch_size=50, limit_mb=1)
    assert len(spills) >= 10
    spilled = len(spills)
    apply_changes(tmp_path / "held", articles, batch_size=50)
    assert spills[spilled:] == []  # the default pool holds all 41 articles
    assert _all_postings(tmp_path / "spilled") == _all_postings(tmp_path / "held")
