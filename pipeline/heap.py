"""The cyclic garbage collector of a crawl's processes: what it scans, and how often.

A first crawl of the 20k bench site spent 2.9 s of its crawl process (of ~48 s) in the cyclic
collector: 1.8 s in 49 full passes over every object the process holds, most of them the
modules, classes and functions loaded at start, and 0.8 s in ~6,000 young passes, one per 700
new containers (a page's links, cards and records make thousands). ``settle`` leaves what is
loaded at start out of the full passes (``gc.freeze``) and, where asked, lets young objects
pile up to 10,000 before a pass, so that most are freed by their reference counts first: 0.7 s
in the same crawl, with no full pass.

Garbage that only the collector can free (reference cycles) still is, later; what ``freeze``
leaves out is what the process had loaded before its work began, which lives as long as it.
"""

from __future__ import annotations

import gc

__all__ = ["settle"]

#: New containers between young passes (CPython's default is 700).
YOUNG_PASS_EVERY = 10_000

_settled = False


def settle(*, fewer_young_passes: bool = True) -> None:
    """Once per process, before its work: leave what it holds now out of the collector's
    passes, and (``fewer_young_passes``) make a young pass every ``YOUNG_PASS_EVERY`` new
    containers rather than 700. Later calls (a daemon's next run) do nothing, so nothing a run
    made is ever frozen."""
    global _settled
    if _settled:
        return
    _settled = True
    gc.collect()  # what start-up left as garbage goes now, not frozen with the rest
    gc.freeze()
    if fewer_young_passes:
        _young, older, oldest = gc.get_threshold()
        gc.set_threshold(YOUNG_PASS_EVERY, older, oldest)
