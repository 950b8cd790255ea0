"""Pausing the garbage collector around bulk read-model work.

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
