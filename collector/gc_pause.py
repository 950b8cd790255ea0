"""The garbage collector of a serving process: settled at start, paused around bulk
read-model work.

Building 10,000 fleet views or evaluating 100,000 contracts allocates many short-lived
objects and creates no reference cycles (reference counting frees them); the cyclic
collector would still walk the whole heap several times on the way. Pausing it there
saved 50-100 ms of a 250 ms fleet list and ~5 s of an 11 s contract evaluation.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = True


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a fleet is evaluated.

    An evaluation allocates a few objects per server and creates no reference cycles
    (reference counting frees everything), but with millions of backup timestamps alive
    each full collection walks all of them: measured 3 full collections costing ~5 s of
    an ~11 s run for 100,000 servers. Nested and concurrent pauses are counted; the
    collector is switched back on by the last one out, only if it was on before.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


YOUNG_THRESHOLD = 20_000
"""Allocations of tracked objects between two young collections (Python's default: 700).
A decoded 64-camera report allocates some 260 (lists of profiles and reasons): at the
default every third report paid a young collection and every 27th an older one, about a
tenth of a changing report's CPU (docs/benchmarks.md). The memory a young generation of
this size holds before it is collected is a few MiB at most."""


def settle_for_serving() -> None:
    """Once serving starts: collect, move every object alive now (modules, the app, the
    configuration) out of the collector's reach (``gc.freeze``), so a full collection
    walks only what requests made, and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
