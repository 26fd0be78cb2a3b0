"""``pipeline.heap.settle``: run in a fresh interpreter each, as it changes the whole process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_PROBE = textwrap.dedent(
    """
    import gc, json, sys, weakref
    from pipeline import heap

    class Node:
        pass

    def cycle():
        a, b = Node(), Node()
        a.other, b.other = b, a
        return weakref.ref(a)

    default = gc.get_threshold()[0]
    loaded = cycle()  # garbage from start-up: collected, not frozen
    heap.settle(fewer_young_passes=sys.argv[1] == "yes")
    frozen = gc.get_freeze_count()
    later = cycle()  # garbage a run makes: still the collector's
    heap.settle()  # a daemon's next run: nothing more is frozen or changed
    gc.collect()
    print(json.dumps({
        "default": default,
        "threshold": gc.get_threshold()[0],
        "frozen": frozen,
        "frozen_again": gc.get_freeze_count(),
        "loaded_freed": loaded() is None,
        "later_freed": later() is None,
    }))
    """
)


def _probe(fewer_young_passes: bool) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, "yes" if fewer_young_passes else "no"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def test_settle_freezes_what_the_process_loaded_once_and_leaves_later_garbage_collectable():
    seen = _probe(fewer_young_passes=True)
    assert seen["frozen"] > 1000  # modules, classes, functions loaded at start
    assert seen["frozen_again"] == seen["frozen"]
    assert seen["loaded_freed"] and seen["later_freed"]
    assert seen["threshold"] == 10_000 != seen["default"]


def test_settle_without_fewer_young_passes_keeps_the_default_pass_rate():
    seen = _probe(fewer_young_passes=False)
    assert seen["frozen"] > 1000
    assert seen["threshold"] == seen["default"]
    assert seen["later_freed"]
