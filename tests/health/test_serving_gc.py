"""A serving collector settles its garbage collector at start: what is alive then is
frozen out of every collection and the young generation is collected less often. Run in
a process of its own (the test process's collector is left as it is)."""

from __future__ import annotations

import json
import subprocess
import sys

from collector.gc_pause import YOUNG_THRESHOLD

PROBE = """
import gc, json
from collector.gc_pause import settle_for_serving
before = gc.get_threshold()
settle_for_serving()
print(json.dumps({"before": before, "after": gc.get_threshold(),
                  "frozen": gc.get_freeze_count(), "enabled": gc.isenabled()}))
"""


def test_settling_freezes_what_lives_and_raises_the_young_threshold() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], check=True, capture_output=True, text=True
    ).stdout
    got = json.loads(out)
    assert got["after"] == [YOUNG_THRESHOLD, *got["before"][1:]]
    assert got["frozen"] > 1000  # the modules, functions and classes imported so far
    assert got["enabled"] is True
