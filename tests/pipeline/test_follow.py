"""Indexing beside the crawl: a child process applies whole batches, and never loses one."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

import index as search_index
from index.writer import write_lock
from pipeline.config import Settings
from pipeline.demo import DemoServer
from pipeline.errors import SearchIndexError
from pipeline.follow import Backlog, IndexedRecords, IndexFollower, _apply_batch
from pipeline.run import run_once
from pipeline.store import Store
from pipeline.sync import WATERMARK_KEY, index_dir, sync_index
from tests.conftest import crawl_settings
from tests.faults import killed_parent, process_gone, wait_for

ROOT = Path(__file__).resolve().parents[2]
NOWHERE = "http://127.0.0.1:9"  # settings for indexing only: nothing is fetched


def _with_index(settings: Settings, **index: object) -> Settings:
    return settings.model_copy(update={"index": settings.index.model_copy(update=index)})


@pytest.fixture(scope="module")
def crawled_dir(small_site, tmp_path_factory) -> Path:
    """The small demo site (40 articles) crawled once, then its index thrown away."""
    data_dir = tmp_path_factory.mktemp("follow")
    with DemoServer(small_site) as server:
        run_once(crawl_settings(data_dir, server.base_url))
    shutil.rmtree(data_dir / "index")
    with Store(data_dir) as store:
        store.set_meta(WATERMARK_KEY, "0")
    return data_dir


@pytest.fixture
def settings(crawled_dir: Path, tmp_path: Path) -> Settings:
    shutil.copytree(crawled_dir, tmp_path / "data")
    return crawl_settings(tmp_path / "data", NOWHERE)


def test_the_child_indexes_what_waits_and_the_sync_writes_only_what_it_left(settings: Settings):
    settings = _with_index(settings, batch_size=20)
    path = index_dir(settings)
    with Store(settings.storage.dir) as store:
        articles = list(store.records.iter_articles())
        assert len(articles) == 40
        follower = IndexFollower(settings, store)
        follower.start()
        try:
            assert follower.running
            # two commits of a batch each
            wait_for(lambda: search_index.doc_count(path) == 40, "the 40 articles")
        finally:
            written = follower.stop()
        assert written == 40
        assert not follower.running
        assert store.get_meta(WATERMARK_KEY) == "0"  # the sync's to move
        with store.transaction():  # one article changes after the child stopped
            store.records.mark_gone(articles[0]["url"], datetime.now(UTC), None)
        report = sync_index(store, settings)
        # it reads all 41 changes and writes only the one the child never saw
        assert (report.mode, report.written, report.deleted, report.documents) == (
            "incremental",
            0,
            1,
            39,
        )
        assert store.get_meta(WATERMARK_KEY) == str(store.max_seq())
        assert search_index.indexed_hashes(path) == store.records.active_article_hashes()


def test_a_batch_the_index_already_holds_is_not_written_again(settings: Settings):
    # What a crash before the watermark moved brings back to a new process (which knows
    # nothing of what the last one wrote): the index compares content hashes.
    settings = _with_index(settings, batch_size=40)
    with Store(settings.storage.dir) as store:
        last = store.max_seq()
        for written in (40, 0):
            backlog = Backlog(scanned=0)
            assert _apply_batch(store, settings, backlog, IndexedRecords()) == (True, written)
            assert (backlog.scanned, backlog.pending) == (last, {})
        assert _apply_batch(store, settings, backlog, IndexedRecords()) == (False, 0)
        assert search_index.indexed_hashes(index_dir(settings)) == (
            store.records.active_article_hashes()
        )


def _index_files(settings: Settings) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in index_dir(settings).rglob("*") if p.is_file()}


def test_changes_this_process_indexed_as_they_are_are_passed_without_reading_them(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    # A relisting changes a record (new seq) but not its content: the process that indexed it
    # passes it by, neither reading it from the store nor asking the index.
    indexed = IndexedRecords()
    with Store(settings.storage.dir) as store:
        articles = list(store.records.iter_articles())
        last = store.max_seq()
        backlog = Backlog(scanned=0)
        forty = _with_index(settings, batch_size=40)
        assert _apply_batch(store, forty, backlog, indexed) == (True, 40)
        assert len(indexed) == 40
        before = _index_files(settings)
        read: list[str] = []
        by_id = store.records.articles_by_id
        monkeypatch.setattr(
            store.records, "articles_by_id", lambda ids: read.extend(ids) or by_id(ids)
        )
        # the same changes again (a crash of the crawl's sync, relistings): all passed
        again = Backlog(scanned=0)
        assert _apply_batch(store, forty, again, indexed) == (False, 0)
        assert (again.scanned, again.pending, read) == (last, {}, [])
        assert _index_files(settings) == before
        # two change (gone), fewer than a batch of three: they wait, and are not looked at
        # again (nor read) at the next look
        three = _with_index(settings, batch_size=3)
        with store.transaction():
            for article in articles[:2]:
                store.records.mark_gone(article["url"], datetime.now(UTC), None)
        assert _apply_batch(store, three, again, indexed) == (False, 0)
        assert list(again.pending) == [a["id"] for a in articles[:2]]
        scanned = again.scanned
        assert _apply_batch(store, three, again, indexed) == (False, 0)
        assert (again.scanned, read) == (scanned, [])
        with store.transaction():
            store.records.mark_gone(articles[2]["url"], datetime.now(UTC), None)
        assert _apply_batch(store, three, again, indexed) == (True, 0)
        assert (again.scanned, again.pending) == (store.max_seq(), {})
        assert sorted(read) == sorted(a["id"] for a in articles[:3])
        assert len(indexed) == 37
        assert search_index.indexed_hashes(index_dir(settings)) == (
            store.records.active_article_hashes()
        )


def test_indexed_records_hold_what_was_noted_until_it_changes():
    indexed = IndexedRecords()
    a, b, c = "0123456789abcdef", "00000000000000ff", "fedcba9876543210"
    ha, hb = "aa" * 32, "bb" * 32
    indexed.note([{"id": b, "content_hash": hb, "status": "active"}])
    indexed.note(
        [
            {"id": a, "content_hash": ha, "status": "active"},
            {"id": c, "content_hash": "", "status": "active"},  # no hash: nothing to compare
            {"id": "not-hex", "content_hash": ha, "status": "active"},
        ]
    )
    assert len(indexed) == 2
    assert indexed.holds(a, ha, "active")
    assert indexed.holds(b, hb, "active")
    assert not indexed.holds(a, hb, "active")  # another content
    assert not indexed.holds(a, ha, "gone")  # the index drops a gone record
    assert not indexed.holds(c, "", "active")
    assert not indexed.holds("not-hex", ha, "active")
    indexed.note([{"id": b, "content_hash": hb, "status": "gone"}])  # deleted by that commit
    assert not indexed.holds(b, hb, "active")
    assert indexed.holds(a, ha, "active")
    assert len(indexed) == 1
    indexed.note([{"id": a, "content_hash": hb, "status": "active"}])  # updated
    assert indexed.holds(a, hb, "active")
    assert not indexed.holds(a, ha, "active")


def test_the_final_sync_passes_what_the_child_holds_and_the_check_repairs_the_rest(
    settings: Settings,
):
    settings = _with_index(settings, batch_size=40)
    path = index_dir(settings)
    indexed = IndexedRecords()
    with Store(settings.storage.dir) as store:
        articles = list(store.records.iter_articles())
        _apply_batch(store, settings, Backlog(scanned=0), indexed)
        # behind the process's back, one of its documents leaves the index
        search_index.apply_changes(path, [], [articles[5]["id"]])
        report = sync_index(store, settings, skip=indexed.holds)
        # nothing applied from the changes (all held), and the check puts the lost one back
        assert (report.mode, report.written, report.documents) == ("repair", 1, 40)
        assert search_index.indexed_hashes(path) == store.records.active_article_hashes()


@pytest.mark.parametrize("ahead", [False, True], ids=["finish", "begin_finish"])
def test_finish_has_the_child_run_the_final_sync_and_send_back_its_report(
    settings: Settings, ahead: bool
):
    settings = _with_index(settings, batch_size=20)
    path = index_dir(settings)
    with Store(settings.storage.dir) as store:
        articles = list(store.records.iter_articles())
        follower = IndexFollower(settings, store)
        follower.start()
        wait_for(lambda: search_index.doc_count(path) == 40, "the 40 articles")
        with store.transaction():  # less than a batch: left for the final sync
            store.records.mark_gone(articles[0]["url"], datetime.now(UTC), None)
        if ahead:  # the child syncs at once, while the caller does something else
            follower.begin_finish()
            wait_for(
                lambda: store.get_meta(WATERMARK_KEY) == str(store.max_seq()), "the child's sync"
            )
        written, report = follower.finish()
        assert not follower.running
        assert written == 40
        assert report is not None
        assert (report.mode, report.written, report.deleted, report.documents) == (
            "incremental",
            0,
            1,
            39,
        )
        assert store.get_meta(WATERMARK_KEY) == str(store.max_seq())  # moved by the child
        assert search_index.indexed_hashes(path) == store.records.active_article_hashes()


def test_a_child_that_cannot_sync_leaves_the_final_sync_to_the_crawl(settings: Settings):
    settings = _with_index(settings, batch_size=20)
    path = index_dir(settings)
    with Store(settings.storage.dir) as store:
        follower = IndexFollower(settings, store)
        follower.start()
        wait_for(lambda: search_index.doc_count(path) == 40, "the 40 articles")
        with ExitStack() as held:  # another writer holds the index, once the child let it go
            wait_for(lambda: _took(held, path), "the child to release the index lock")
            written, report = follower.finish()
        assert (written, report) == (40, None)
        assert store.get_meta(WATERMARK_KEY) == "0"  # nothing claimed
        report = sync_index(store, settings)  # what run_once does then
        assert (report.written, report.documents) == (0, 40)
        assert store.get_meta(WATERMARK_KEY) == str(store.max_seq())


def test_a_child_dead_before_begin_finish_leaves_the_final_sync_to_the_crawl(
    settings: Settings,
):
    settings = _with_index(settings, batch_size=15)
    with Store(settings.storage.dir) as store:
        follower = IndexFollower(settings, store)
        follower.start()
        assert follower.pid is not None
        os.kill(follower.pid, signal.SIGKILL)
        wait_for(lambda: not follower.running, "the child to die")
        follower.begin_finish()  # no error: finish() reports that nothing was synced
        assert follower.finish() == (0, None)
        assert store.get_meta(WATERMARK_KEY) == "0"


def _took(held: ExitStack, path: Path) -> bool:
    try:
        held.enter_context(write_lock(path))
    except SearchIndexError:
        return False
    return True


def test_it_starts_only_when_enabled_and_a_batch_is_waiting(settings: Settings):
    with Store(settings.storage.dir) as store:
        for batch_size, during_crawl in ((500, True), (15, False)):
            follower = IndexFollower(
                _with_index(settings, batch_size=batch_size, during_crawl=during_crawl), store
            )
            for _ in range(200):
                follower.poke()
            assert not follower.running
            assert follower.stop() == 0
            assert follower.finish() == (0, None)


def test_a_crawl_indexing_beside_itself_ends_with_the_index_equal_to_the_store(
    small_server, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    settings = _with_index(crawl_settings(tmp_path, small_server.base_url), batch_size=5)
    with caplog.at_level(logging.INFO, logger="pipeline.follow"):
        report = run_once(settings)
    assert any("indexing beside the crawl" in r.getMessage() for r in caplog.records)
    assert report.status == "finished"
    assert report.index["documents"] == 40
    with Store(tmp_path) as store:
        want = store.records.active_article_hashes()
        assert store.get_meta(WATERMARK_KEY) == str(store.max_seq())
    assert search_index.indexed_hashes(index_dir(settings)) == want


def test_ctrl_c_stops_the_crawl_and_its_index_process_quietly_and_nothing_is_lost(
    small_server, tmp_path: Path
):
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "storage": {"dir": str(tmp_path / "data")},
                "crawl": {"delay": 0.1, "concurrency": 2, "per_host_concurrency": 2},
                "index": {"batch_size": 5},
                "sites": [{"name": "demo", "start_urls": [f"{small_server.base_url}/"]}],
            }
        )
    )
    crawl = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "-v", "--config", str(config), "crawl"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    assert crawl.stderr is not None
    seen = []
    for line in crawl.stderr:  # until the index process has started
        seen.append(line)
        if "indexing beside the crawl in process" in line:
            break
    os.killpg(crawl.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group gets it
    _, rest = crawl.communicate(timeout=120)
    err = "".join(seen) + rest
    assert "indexing beside the crawl in process" in err
    assert "Stopping: finishing pages in flight" in err
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err
    assert "index process ended" not in err  # it finished the run's sync itself
    with Store(tmp_path / "data") as store:
        runs = [r["status"] for r in store.last_runs()]
        assert store.get_meta(WATERMARK_KEY) == str(store.max_seq())
        want = store.records.active_article_hashes()
    assert runs == ["interrupted"]
    assert 0 < len(want) < 40  # stopped part way
    assert search_index.indexed_hashes(tmp_path / "data" / "index") == want


_KILL_THE_PARENT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from pipeline.follow import IndexFollower
    from pipeline.store import Store
    from tests.conftest import crawl_settings

    settings = crawl_settings(Path(sys.argv[1]), "http://127.0.0.1:9")
    settings = settings.model_copy(
        update={"index": settings.index.model_copy(update={"batch_size": 1000})}
    )
    follower = IndexFollower(settings, Store(settings.storage.dir))
    follower.start()
    print(follower.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_the_child_exits_when_the_crawl_is_killed(settings: Settings):
    pid = killed_parent(_KILL_THE_PARENT, str(settings.storage.dir))
    assert pid != os.getpid()
    wait_for(lambda: process_gone(pid), f"the orphaned index process {pid} to exit")


def test_a_child_that_cannot_start_leaves_the_indexing_to_the_end_of_the_run(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(sys, "executable", str(settings.storage.dir / "no-such-python"))
    with Store(settings.storage.dir) as store:
        follower = IndexFollower(_with_index(settings, batch_size=15), store)
        follower.start()
        assert not follower.running
        assert not follower.enabled
        assert follower.stop() == 0
        report = sync_index(store, settings)
    assert (report.written, report.documents) == (40, 40)


def test_a_commit_takes_one_batch_however_much_waits(settings: Settings):
    # a commit's memory grows with its size: 8,000 records peaked at 218 MB against 134
    settings = _with_index(settings, batch_size=15)
    with Store(settings.storage.dir) as store:
        backlog, indexed = Backlog(scanned=0), IndexedRecords()
        looks = [_apply_batch(store, settings, backlog, indexed) for _ in range(3)]
        assert looks == [(True, 15), (True, 15), (False, 0)]
        assert len(backlog.pending) == 10
        assert search_index.doc_count(index_dir(settings)) == 30


def test_the_index_process_imports_no_crawl_and_the_api_is_whole():
    """The index process (``pipeline.follow``) loads neither the crawl nor its HTTP client, and
    every name ``pipeline`` offers still reads as the module that defines it."""
    code = (
        "import sys, pipeline.follow; "
        "print(sorted(m for m in ('pipeline.run', 'pipeline.crawler', 'aiohttp', 'httpx2') "
        "if m in sys.modules)); "
        "import pipeline, pipeline.run, pipeline.config, pipeline.export; "
        "print(all(getattr(pipeline, n) is getattr(sys.modules[pipeline._LAZY[n]], n) "
        "for n in pipeline.__all__ if n in pipeline._LAZY))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split("\n")
    assert out[:2] == ["[]", "True"]
