"""Readers against generations: never a missing, partial or empty view of an index that exists."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

import index.layout
from index import apply_changes, doc_count, rebuild, search
from index.layout import POINTER_FILE, current_generation
from index.schema import VERSION_FILE
from index.writer import LOCK_FILE
from pipeline.errors import SearchIndexError


def _live(path: Path) -> Path:
    generation = current_generation(path)
    assert generation is not None
    return generation


def test_reader_resolves_again_when_its_generation_is_replaced(
    tmp_path: Path, articles: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "index"
    apply_changes(path, articles)
    resolved = _live(path)
    opened: list[Path] = []
    real_open = index.layout.open_generation

    def open_after_a_rebuild(generation: Path, *, mmap: bool = True) -> Any:
        opened.append(generation)
        if len(opened) == 1:  # the reader resolved the old generation; a rebuild wins the race
            rebuild(path, articles)
            assert not resolved.exists()
        return real_open(generation, mmap=mmap)

    monkeypatch.setattr(index.layout, "open_generation", open_after_a_rebuild)
    assert search(path, "*", limit=1).total == 39
    assert opened == [resolved, _live(path)]


def test_reader_gives_up_on_an_index_that_stays_unreadable(
    tmp_path: Path, articles: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "index"
    apply_changes(path, articles[:3])

    def vanished(_generation: Path, *, mmap: bool = True) -> Any:
        raise FileNotFoundError("segment file vanished")

    monkeypatch.setattr(index.layout, "open_generation", vanished)
    with pytest.raises(SearchIndexError, match=r"segment file vanished.*crawldex reindex"):
        search(path, "valproate")


def test_a_generation_the_pointer_names_but_that_is_gone_is_an_error(
    tmp_path: Path, articles: list[dict[str, Any]]
):
    path = tmp_path / "index"
    apply_changes(path, articles[:3])
    shutil.rmtree(_live(path))
    with pytest.raises(SearchIndexError, match="crawldex reindex"):
        doc_count(path)  # not 0: an index that exists is never read as empty


def test_an_index_from_before_generations_is_read_then_migrated(
    tmp_path: Path, articles: list[dict[str, Any]]
):
    built = tmp_path / "built"
    apply_changes(built, articles)
    legacy = tmp_path / "index"  # whoosh files directly in the index path, no CURRENT
    shutil.copytree(_live(built), legacy)
    assert _live(legacy) == legacy
    assert search(legacy, "valproate").total == 2
    rebuild(legacy, articles[:5])
    names = sorted(p.name for p in legacy.iterdir())
    assert names == sorted([POINTER_FILE, LOCK_FILE, _live(legacy).name])
    assert (_live(legacy) / VERSION_FILE).exists()
    assert doc_count(legacy) == 5


def test_searches_keep_working_while_rebuilding(tmp_path: Path, articles: list[dict[str, Any]]):
    """Readers in threads search and count throughout several rebuilds and incremental writes.

    Every search must see the full document set: no missing directory, no partial or empty
    index. The rebuilds alternate batch sizes so generations differ in their segment files.
    """
    path = tmp_path / "index"
    apply_changes(path, articles)
    either = search(path, "epilepsy OR policy").total  # before any reader or rebuild
    seen: list[tuple[str, int, int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def keep_searching() -> None:
        while not stop.is_set():
            try:
                generation = _live(path).name
                seen.append((generation, search(path, "*").total, doc_count(path)))
                seen.append((generation, search(path, "epilepsy OR policy").total, -1))
            except BaseException as exc:  # noqa: BLE001  # collected and asserted below
                errors.append(exc)

    readers = [threading.Thread(target=keep_searching) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for _ in range(3):
            rebuild(path, articles)
            apply_changes(path, articles[:10], batch_size=3)  # commits into the live generation
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert errors == []
    assert {(total, count) for _, total, count in seen} == {(39, 39), (either, -1)}
    assert len({generation for generation, _, _ in seen}) >= 2  # reads spanned rebuilds
    assert search(path, "*").total == 39


def test_a_generation_left_by_a_killed_rebuild_is_cleaned_up(
    tmp_path: Path, articles: list[dict[str, Any]]
):
    path = tmp_path / "index"
    apply_changes(path, articles[:3])
    (path / "gen-killed").mkdir()
    (path / "gen-killed" / "MAIN_abc.seg").write_bytes(b"half a segment")
    assert doc_count(path) == 3  # never published, never read
    apply_changes(path, articles[3:5])
    assert not (path / "gen-killed").exists()
    assert doc_count(path) == 5
