"""The writer's posting pool spills sorted runs a block at a time and gives every posting back."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from whoosh import index as whoosh_index
from whoosh.filedb.filestore import FileStorage

import index.pool
from index import apply_changes
from index.layout import current_generation
from index.pool import BlockPostingPool


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


def test_an_index_written_through_spilled_runs_is_the_same_index(
    tmp_path: Path, articles: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
):
    spills: list[int] = []
    save = BlockPostingPool.save

    def counted(self: BlockPostingPool) -> None:
        spills.append(len(self.current))
        save(self)

    monkeypatch.setattr(index.pool.BlockPostingPool, "save", counted)
    for n, article in enumerate(articles):  # 3,000 words each: a 1 MB pool fills many times
        article["text"] += " ".join(f"term{(n * 37 + j) % 5000}" for j in range(3000))
    apply_changes(tmp_path / "spilled", articles, batch_size=50, limit_mb=1)
    assert len([n for n in spills if n]) >= 10
    spilled = len(spills)
    apply_changes(tmp_path / "held", articles, batch_size=50)
    assert spills[spilled:] == []  # the default pool holds all 41 articles
    assert _all_postings(tmp_path / "spilled") == _all_postings(tmp_path / "held")
