"""The cyclic garbage collector of a crawl's processes: what its full passes scan.

A first crawl of the 20k bench site spent 2.9 s of its crawl process (of ~48 s) in the cyclic
collector, 1.8 s of it in 49 full passes over every object the process holds, most of them the
modules, classes and functions loaded at start. ``settle`` leaves those out of the passes
(``gc.freeze``): 0.36 s of full passes in the same crawl.

Tried and not kept: a young pass every 10,000 new containers rather than 700 (0.9 -> 0.7 s of
young passes) raised the crawl's and its worker's peak RSS from ~116 MB to ~420 MB each in that
crawl: pages leave reference cycles behind, and they were freed that much later.

Garbage that only the collector can free still is; what ``freeze`` leaves out is what the
process had loaded before its work began, which lives as long as the process.
"""

from __future__ import annotations

import gc

__all__ = ["settle"]

_settled = False


def settle() -> None:
    """Once per process, before its work: leave what it holds now out of the collector's
    passes. Later calls (a daemon's next run) do nothing, so nothing a run made is frozen."""
    global _settled
    if _settled:
        return
    _settled = True
    gc.collect()  # what start-up left as garbage goes now, not frozen with the rest
    gc.freeze()
