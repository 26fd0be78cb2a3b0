"""Writing the index: upserts, deletes, batches, rebuild swaps, locks and schema versions."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from whoosh import index as whoosh_index
from whoosh import writing

from index import (
    SCHEMA_VERSION,
    IndexInfo,
    apply_changes,
    clear_stale_lock,
    doc_count,
    indexed_digests,
    indexed_hashes,
    indexed_ids,
    open_or_create,
    rebuild,
    search,
)
from index import writer as writer_module
from index.layout import POINTER_FILE, current_generation
from index.schema import VERSION_FILE
from index.writer import LOCK_FILE, write_lock
from pipeline.errors import SearchIndexError

ROOT = Path(__file__).resolve().parents[2]
INDEXED = {f"a{n:03d}" for n in [*range(1, 14), 15, 16, *range(17, 41)]}


def _live(path: Path) -> Path:
    generation = current_generation(path)
    assert generation is not None
    return generation


def _ids(path: Path, query: str) -> set[str]:
    return {hit.id for hit in search(path, query, limit=100).hits}


def test_open_or_create_creates_then_opens(tmp_path: Path):
    path = tmp_path / "data" / "index"
    assert open_or_create(path) == IndexInfo(path, SCHEMA_VERSION, 0, created=True)
    generation = _live(path)
    assert generation.parent == path
    assert (path / POINTER_FILE).read_text(encoding="utf-8") == generation.name + "\n"
    stamp = json.loads((generation / VERSION_FILE).read_text(encoding="utf-8"))
    assert stamp == {"schema_version": SCHEMA_VERSION}
    assert open_or_create(path).created is False
    assert _live(path) == generation


def test_apply_changes_indexes_articles_only(tmp_path: Path, articles: list[dict[str, Any]]):
    path = tmp_path / "index"
    stats = apply_changes(path, articles)
    assert (stats.added, stats.updated, stats.deleted) == (39, 0, 0)
    assert stats.seconds > 0
    assert doc_count(path) == 39
    assert indexed_ids(path) == INDEXED  # a014 is gone, a041 is a topic page


def test_reapplying_the_same_records_updates_in_place(
    tmp_path: Path, articles: list[dict[str, Any]]
):
    path = tmp_path / "index"
    apply_changes(path, articles)
    stats = apply_changes(path, articles)
    assert (stats.added, stats.updated, stats.deleted) == (0, 39, 0)
    assert doc_count(path) == 39


def test_records_with_the_indexed_content_hash_are_left_as_they_are(
    tmp_path: Path, articles: list[dict[str, Any]]
):
    path = tmp_path / "index"
    hashed = [{**a, "content_hash": f"hash-{a['id']}"} for a in articles]
    apply_changes(path, hashed[:20], batch_size=10)  # two segments: documents in both
    apply_changes(path, hashed[20:])
    again = apply_changes(path, hashed)
    assert (again.added, again.updated, again.deleted, again.unchanged) == (0, 0, 0, 39)
    edited = {**hashed[7], "title": "Rubella vaccination", "content_hash": "hash-edited"}
    same_hash = {**hashed[8], "title": "Not indexed: the hash says nothing changed"}
    gone = {**hashed[15], "status": "gone"}
    stats = apply_changes(path, [edited, same_hash, gone, hashed[30]])
    assert (stats.added, stats.updated, stats.deleted, stats.unchanged) == (0, 1, 1, 2)
    assert _ids(path, "title:rubella") == {"a008"}
    assert _ids(path, "title:indexed") == set()
    assert indexed_hashes(path) == {
        a["id"]: a["content_hash"] for a in [*hashed[:15], *hashed[16:]] if a["id"] in INDEXED
    } | {"a008": "hash-edited"}


@pytest.mark.parametrize("scan_ratio", [0, 10**9], ids=["lookup per id", "id columns"])
def test_a_batch_finds_its_documents_by_lookups_or_by_reading_the_id_columns(
    tmp_path: Path,
    articles: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    scan_ratio: int,
):
    monkeypatch.setattr(writer_module, "_SCAN_RATIO", scan_ratio)
    path = tmp_path / "index"
    hashed = [{**a, "content_hash": f"hash-{a['id']}"} for a in articles]
    apply_changes(path, hashed[:20], batch_size=10)  # segments of 10, 9 and then 20 documents
    apply_changes(path, hashed[20:])
    apply_changes(path, [], ["a004", "a025"])  # deleted documents in two segments
    back = {**hashed[3], "content_hash": "hash-back"}
    edited = {**hashed[26], "title": "Rubella vaccination", "content_hash": "hash-edited"}
    new = {**hashed[0], "id": "a999", "url": "https://x.example/new/"}
    stats = apply_changes(path, [back, edited, hashed[10], hashed[30], new])
    assert (stats.added, stats.updated, stats.deleted, stats.unchanged) == (2, 1, 0, 2)
    assert _ids(path, "title:rubella") == {"a027"}
    assert indexed_ids(path) == INDEXED - {"a025"} | {"a999"}
    searcher = whoosh_index.open_dir(str(_live(path))).searcher()
    everyone = [*sorted(INDEXED), "a999", "nope"]
    assert len(searcher.reader().leaf_readers()) > 1
    assert searcher.reader().has_deletions()
    assert writer_module._live_numbers(searcher, set(everyone)) == {
        record_id: searcher.document_number(id=record_id)
        for record_id in everyone
        if searcher.document_number(id=record_id) is not None
    }


def test_changed_title_replaces_old_words(tmp_path: Path, articles: list[dict[str, Any]]):
    path = tmp_path / "index"
    apply_changes(path, articles)
    assert _ids(path, "title:measles") == {"a008"}
    changed = {**articles[7], "title": "Rubella vaccination in schools"}
    stats = apply_changes(path, [changed])
    assert (stats.added, stats.updated) == (0, 1)
    assert _ids(path, "title:measles") == set()
    assert _ids(path, "title:rubella") == {"a008"}
    assert doc_count(path) == 39


def test_gone_records_and_deletes_leave_the_index(tmp_path: Path, articles: list[dict[str, Any]]):
    path = tmp_path / "index"
    apply_changes(path, articles)
    gone = {**articles[0], "status": "gone"}
    stats = apply_changes(path, [gone], ["a002", "a002", "nope"])
    assert (stats.added, stats.updated, stats.deleted) == (0, 0, 2)
    assert _ids(path, "valproate") == set()
    assert indexed_ids(path) == INDEXED - {"a001", "a002"}


def test_one_commit_per_batch(tmp_path: Path, articles: list[dict[str, Any]]):
    path = tmp_path / "index"
    open_or_create(path)
    before = whoosh_index.open_dir(str(_live(path))).latest_generation()
    apply_changes(path, articles, ["a001", "a002", "a003"], batch_size=10)
    after = whoosh_index.open_dir(str(_live(path))).latest_generation()
    assert after - before == 5 + 1  # 41 records in batches of 10, then one batch of deletes
    assert doc_count(path) == 36


def test_updates_bound_the_posting_pool_by_limit_mb_and_find_the_same_documents(
    tmp_path: Path, articles: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
):
    pools: list[float] = []
    pool_init = writing.PostingPool.__init__

    def spy(self: Any, tempstore: Any, segment: Any, limitmb: float = 128, **kw: Any) -> None:
        pools.append(limitmb)
        pool_init(self, tempstore, segment, limitmb=limitmb, **kw)

    monkeypatch.setattr(writing.PostingPool, "__init__", spy)
    small, default = tmp_path / "small", tmp_path / "default"
    apply_changes(small, articles, batch_size=20, limit_mb=1)
    assert set(pools) == {1}
    spilled = len(pools)
    apply_changes(default, articles, batch_size=20)
    assert set(pools[spilled:]) == {64}  # the default, DEFAULT_LIMIT_MB
    assert indexed_hashes(small) == indexed_hashes(default)
    assert _ids(small, "vaccine OR epilep*") == _ids(default, "vaccine OR epilep*") != set()


def test_indexed_digests_are_the_hashes_of_the_indexed_content_hashes(
    tmp_path: Path, articles: list[dict[str, Any]]
):
    path = tmp_path / "index"
    apply_changes(path, articles)
    hashes = indexed_hashes(path)
    assert set(hashes) == INDEXED
    assert indexed_digests(path) == {i: hash(h) for i, h in hashes.items()}
    assert indexed_digests(tmp_path / "none") == {}


def test_duplicate_ids_in_one_batch_last_wins(tmp_path: Path, articles: list[dict[str, Any]]):
    path = tmp_path / "index"
    first, second = articles[0], {**articles[0], "title": "Second version"}
    stats = apply_changes(path, [first, second])
    assert (stats.added, stats.updated, doc_count(path)) == (1, 0, 1)
    assert _ids(path, "title:second") == {"a001"}


def test_readers_see_a_missing_index_as_empty(tmp_path: Path):
    assert doc_count(tmp_path / "missing") == 0
    assert indexed_ids(tmp_path / "missing") == set()
    assert not (tmp_path / "missing").exists()


def test_other_schema_version_asks_for_reindex(tmp_path: Path, articles: list[dict[str, Any]]):
    path = tmp_path / "index"
    apply_changes(path, articles[:3])
    (_live(path) / VERSION_FILE).write_text('{"schema_version": 0}\n', encoding="utf-8")
    for call in (
        lambda: apply_changes(path, articles[:1]),
        lambda: doc_count(path),
        lambda: open_or_create(path),
    ):
        with pytest.raises(SearchIndexError, match=r"version 0.*run `crawldex reindex`"):
            call()
    rebuild(path, articles)  # the remedy
    assert doc_count(path) == 39


@pytest.fixture
def held_lock(tmp_path: Path, articles: list[dict[str, Any]]) -> Iterator[Path]:
    """An index whose writers' lock is held (by this process, through its own file handle)."""
    path = tmp_path / "index"
    apply_changes(path, articles[:3])
    with write_lock(path):
        yield path


def test_second_writer_gets_search_index_error(held_lock: Path, articles: list[dict[str, Any]]):
    with pytest.raises(SearchIndexError, match="another crawldex process is writing"):
        apply_changes(held_lock, articles[3:4])
    with pytest.raises(SearchIndexError, match="wait for it to finish"):
        rebuild(held_lock, articles)
    with pytest.raises(SearchIndexError, match="another crawldex process"):
        clear_stale_lock(held_lock)
    assert _ids(held_lock, "valproate") == {"a001", "a002"}  # readers are not blocked


def test_lock_of_a_killed_process_frees_itself(tmp_path: Path, articles: list[dict[str, Any]]):
    path = tmp_path / "index"
    apply_changes(path, articles[:3])
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from index.writer import write_lock\n"
        "with write_lock(Path(sys.argv[1])):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], check=False, timeout=60, cwd=ROOT
    )
    assert done.returncode == -signal.SIGKILL
    assert (path / LOCK_FILE).exists()  # the file is left behind ...
    assert clear_stale_lock(path) is True  # ... but not held
    assert (path / LOCK_FILE).exists()  # and deliberately not deleted
    assert apply_changes(path, articles[3:5]).added == 2


def test_clear_stale_lock_without_lock_file(tmp_path: Path):
    assert clear_stale_lock(tmp_path) is False


def test_rebuild_swaps_in_a_new_index(tmp_path: Path, articles: list[dict[str, Any]]):
    path = tmp_path / "index"
    apply_changes(path, articles)
    articles[7]["title"] = "Rubella vaccination in schools"
    articles[0]["status"] = "gone"
    stats = rebuild(path, articles)
    assert (stats.added, stats.updated, stats.deleted) == (38, 0, 0)
    assert indexed_ids(path) == INDEXED - {"a001"}
    assert _ids(path, "title:rubella") == {"a008"}
    assert _ids(path, "title:measles") == set()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]
    names = sorted(p.name for p in path.iterdir())  # one generation: old ones are deleted
    assert names == sorted([POINTER_FILE, LOCK_FILE, _live(path).name])


def test_rebuild_creates_a_missing_index(tmp_path: Path, articles: list[dict[str, Any]]):
    path = tmp_path / "new" / "index"
    assert rebuild(path, articles).added == 39
    assert _ids(path, "sjogren") == {"a004", "a016"}


def test_rebuild_in_several_processes_finds_what_one_process_finds(
    tmp_path: Path, articles: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("index.writer._JOB_SIZE", 4)  # 39 documents: jobs for both processes
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    assert rebuild(serial, articles).added == 39
    assert rebuild(parallel, articles, procs=2).added == 39
    segments = [p for p in _live(parallel).iterdir() if p.suffix == ".seg"]
    assert len(segments) == 2  # each process wrote its own segment
    assert indexed_hashes(parallel) == indexed_hashes(serial)
    for query in ["vaccine", '"mental health"', "epilep*", "sjogren OR policy", "*"]:
        one = {h.id: round(h.score, 6) for h in search(serial, query, limit=100).hits}
        two = {h.id: round(h.score, 6) for h in search(parallel, query, limit=100).hits}
        assert one, query
        assert one == two, query


def test_failed_rebuild_leaves_the_live_index(tmp_path: Path, articles: list[dict[str, Any]]):
    path = tmp_path / "index"
    apply_changes(path, articles)
    live = _live(path).name

    def broken() -> Iterator[dict[str, Any]]:
        yield from articles[:5]
        raise RuntimeError("store went away")

    with pytest.raises(RuntimeError, match="store went away"):
        rebuild(path, broken())
    assert doc_count(path) == 39
    assert sorted(p.name for p in path.iterdir()) == sorted([POINTER_FILE, LOCK_FILE, live])
    assert apply_changes(path, articles[:1]).updated == 1  # the lock was released
