"""``pipeline.heap.settle``: run in a fresh interpreter, as it changes the whole process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_PROBE = textwrap.dedent(
    """
    import gc, json, weakref
    from pipeline import heap

    class Node:
        pass

    def cycle():
        a, b = Node(), Node()
        a.other, b.other = b, a
        return weakref.ref(a)

    threshold = gc.get_threshold()
    loaded = cycle()  # garbage from start-up: collected, not frozen
    heap.settle()
    frozen = gc.get_freeze_count()
    later = cycle()  # garbage a run makes: still the collector's
    heap.settle()  # a daemon's next run: nothing more is frozen
    gc.collect()
    print(json.dumps({
        "threshold_kept": gc.get_threshold() == threshold,
        "frozen": frozen,
        "frozen_again": gc.get_freeze_count(),
        "loaded_freed": loaded() is None,
        "later_freed": later() is None,
    }))
    """
)


def test_settle_freezes_what_the_process_loaded_once_and_leaves_later_garbage_collectable():
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout)
    assert seen["frozen"] > 1000  # modules, classes, functions loaded at start
    assert seen["frozen_again"] == seen["frozen"]
    assert seen["loaded_freed"]
    assert seen["later_freed"]
    assert seen["threshold_kept"]  # young passes as often as ever: see pipeline.heap
