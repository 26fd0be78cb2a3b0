"""The index is repaired from the store after whatever a crash or a hand left behind."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import index as search_index
from index.layout import POINTER_FILE, current_generation
from index.schema import VERSION_FILE
from pipeline.config import Settings
from pipeline.demo import DemoServer
from pipeline.run import reindex, run_once
from pipeline.store import Store
from pipeline.sync import index_dir, sync_index
from tests.conftest import crawl_settings

ROOT = Path(__file__).resolve().parents[2]
NOWHERE = "http://127.0.0.1:9"  # settings for syncing only: nothing is fetched


@pytest.fixture(scope="module")
def crawled_dir(small_site, tmp_path_factory) -> Path:
    """A data directory with the small demo site crawled and indexed once."""
    data_dir = tmp_path_factory.mktemp("sync")
    with DemoServer(small_site) as server:
        run_once(crawl_settings(data_dir, server.base_url))
    return data_dir


@pytest.fixture
def settings(crawled_dir: Path, tmp_path: Path) -> Settings:
    """Settings for a private copy of the crawled data directory."""
    shutil.copytree(crawled_dir, tmp_path / "data")
    return crawl_settings(tmp_path / "data", NOWHERE)


def _store_hashes(settings: Settings) -> dict[str, str]:
    with Store(settings.storage.dir) as store:
        return store.records.active_article_hashes()


def _assert_index_matches_store(settings: Settings) -> None:
    want = _store_hashes(settings)
    assert len(want) == 40
    assert search_index.indexed_hashes(index_dir(settings)) == want


def test_a_consistent_index_is_left_alone(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    _assert_index_matches_store(settings)
    # the checksums agree: no map of every document is read to compare them
    monkeypatch.setattr(search_index, "indexed_digests", lambda path: pytest.fail("map read"))
    report = reindex(settings)
    assert (report.mode, report.written, report.deleted, report.documents) == ("none", 0, 0, 40)


def test_an_index_unchanged_since_its_last_check_is_not_read_again(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    path = index_dir(settings)
    checks: list[Path] = []
    real_checksum = search_index.indexed_checksum

    def counted(path: Path) -> tuple[int, int]:
        checks.append(path)
        return real_checksum(path)

    monkeypatch.setattr(search_index, "indexed_checksum", counted)
    assert reindex(settings).mode == "none"
    assert reindex(settings).mode == "none"
    assert len(checks) <= 1  # the crawl's own sync may have checked it last already
    before = len(checks)
    # a document deleted behind the store's back: the index's files changed, so it is checked
    search_index.apply_changes(path, [], sorted(_store_hashes(settings))[:1])
    report = reindex(settings)
    assert (report.mode, report.written, len(checks)) == ("repair", 1, before + 1)
    # after a repair the next sync checks again, and then leaves it alone
    assert (reindex(settings).mode, len(checks)) == ("none", before + 2)
    assert (reindex(settings).mode, len(checks)) == ("none", before + 2)
    _assert_index_matches_store(settings)


def test_a_file_of_the_index_rewritten_in_place_is_noticed(settings: Settings):
    path = index_dir(settings)
    reindex(settings)
    before = search_index.fingerprint(path)
    generation = current_generation(path)
    assert generation is not None
    assert before is not None
    toc = next(generation.glob("*.toc"))
    toc.write_bytes(toc.read_bytes())  # same bytes, a new modification time
    assert search_index.fingerprint(path) != before
    (generation / "stray.tmp").write_bytes(b"")  # what a killed writer leaves
    assert search_index.fingerprint(path) not in (before, None)
    shutil.rmtree(path)
    assert search_index.fingerprint(path) is None


def test_checksums_agree_for_the_same_pairs_in_any_order_and_only_for_them():
    pairs = [(f"{n:016x}", f"{n * 7:064x}") for n in range(50)]
    count, total = search_index.checksum(pairs)
    assert count == 50
    assert search_index.checksum(reversed(pairs)) == (count, total)
    assert search_index.checksum(pairs[1:]) != (count, total)  # one missing
    assert search_index.checksum([*pairs, pairs[0]]) != (count, total)  # one twice
    swapped = [(pairs[0][0], pairs[1][1]), (pairs[1][0], pairs[0][1]), *pairs[2:]]
    assert search_index.checksum(swapped) != (count, total)  # the same hashes, other ids
    assert search_index.checksum([]) == (0, 0)


def test_documents_deleted_behind_the_stores_back_are_restored(settings: Settings):
    path = index_dir(settings)
    lost = sorted(_store_hashes(settings))[:7]
    search_index.apply_changes(path, [], lost)
    assert search_index.doc_count(path) == 33
    report = reindex(settings)
    assert (report.mode, report.written, report.deleted) == ("repair", 7, 0)
    _assert_index_matches_store(settings)


def test_a_stale_document_and_an_unknown_one_are_repaired(settings: Settings):
    path = index_dir(settings)
    with Store(settings.storage.dir) as store:
        record = next(store.records.iter_articles())
    stale = {**record, "title": "Zanzibar quokka", "content_hash": "0" * 64}
    stranger = {**record, "id": "f" * 16, "url": "https://elsewhere.example/x/"}
    search_index.apply_changes(path, [stale, stranger])
    assert search_index.search(path, "title:quokka").total == 1
    report = reindex(settings)
    assert (report.mode, report.written, report.deleted) == ("repair", 1, 1)
    assert search_index.search(path, "title:quokka").total == 0
    _assert_index_matches_store(settings)


def test_an_unreadable_index_is_rebuilt(settings: Settings):
    path = index_dir(settings)
    generation = current_generation(path)
    assert generation is not None
    (generation / VERSION_FILE).write_text('{"schema_version": 1}\n', encoding="utf-8")
    assert reindex(settings).mode == "rebuild"
    _assert_index_matches_store(settings)
    (path / POINTER_FILE).write_text("gen-vanished\n", encoding="utf-8")
    assert reindex(settings).mode == "rebuild"
    _assert_index_matches_store(settings)


_KILL_MID_COMMIT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from whoosh.filedb.filestore import FileStorage
    from pipeline.run import reindex
    from tests.conftest import crawl_settings

    real_rename = FileStorage.rename_file
    tocs = []

    def rename_or_die(self, old, new, safe=False):
        # whoosh publishes a commit by renaming its new table of contents into place: die on
        # the third, after the segment files of that commit are written but before they count.
        if new.endswith(".toc"):
            tocs.append(new)
            if len(tocs) == 3:
                os.kill(os.getpid(), signal.SIGKILL)
        return real_rename(self, old, new, safe)

    FileStorage.rename_file = rename_or_die
    settings = crawl_settings(Path(sys.argv[1]), "http://127.0.0.1:9")
    index = settings.index.model_copy(update={"batch_size": 5})
    reindex(settings.model_copy(update={"index": index}))
    """
)


def test_a_writer_killed_mid_commit_is_repaired_by_the_next_sync(settings: Settings):
    path = index_dir(settings)
    shutil.rmtree(path)  # the store says everything is indexed: the next sync must notice
    done = subprocess.run(
        [sys.executable, "-c", _KILL_MID_COMMIT, str(settings.storage.dir)],
        cwd=ROOT,
        check=False,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL
    assert search_index.doc_count(path) == 5  # one batch committed, the next one torn
    report = reindex(settings)
    assert (report.mode, report.written, report.documents) == ("repair", 35, 40)
    _assert_index_matches_store(settings)


def test_changes_the_index_already_holds_are_not_written_again(settings: Settings):
    with Store(settings.storage.dir) as store:
        store.set_meta("index_seq", "0")  # as after a crash between the commit and the watermark
        report = sync_index(store, settings)
        assert (report.mode, report.written, report.deleted, report.documents) == (
            "incremental",
            0,
            0,
            40,
        )
        assert store.get_meta("index_seq") == str(store.max_seq())
    _assert_index_matches_store(settings)
