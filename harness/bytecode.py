"""The product's bytecode, written once before the tests start its processes.

The editable install runs the sources of this checkout. Where ``PYTHONDONTWRITEBYTECODE``
is set (CI images and sandboxes often set it), no process writes ``__pycache__``, so every
``vigil-collector``/``vigil-agent`` a test starts compiled the whole product again: most of
the CPU of a short admin command. Reading bytecode is allowed either way, so compiling it
here once lets every later process load it. Up-to-date files are skipped, as by Python.
"""

from __future__ import annotations

import compileall
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agent", "collector", "protocol", "recovery", "sim", "harness")


def compile_product() -> None:
    for package in PACKAGES:
        compileall.compile_dir(ROOT / package, quiet=1)
