"""Loaded by a process started with this directory on ``PYTHONPATH``: when it exits, the
names in ``sys.modules`` go to the file named by ``VIGIL_MODULES_OUT`` (one a line)."""

import atexit
import os
import sys

_OUT = os.environ.get("VIGIL_MODULES_OUT")


def _dump() -> None:
    with open(_OUT, "w") as f:  # type: ignore[arg-type]
        f.write("\n".join(sorted(sys.modules)))


if _OUT:
    atexit.register(_dump)
