"""What a test needs of the machine it runs on (root, Debian's packaging tools, systemd's
units) and what happens when the machine lacks it.

On a developer's machine such a test is skipped, saying what is missing. Under ``make test``
(which sets ``VIGIL_REQUIRE_TOOLS=1``) the machine is the one the suite is meant to run on, so
a missing tool is a failure: a skip there would let the tests it stands for go unrun unseen.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE_TOOLS = "VIGIL_REQUIRE_TOOLS"


def tools_required() -> bool:
    """True under ``make test``: the environment variable is set to anything but 0 or empty."""
    return os.environ.get(REQUIRE_TOOLS, "") not in ("", "0")


def lacking(reason: str) -> NoReturn:
    """Skip the test for ``reason``, or fail it where the tools are required."""
    if tools_required():
        pytest.fail(f"{reason} ({REQUIRE_TOOLS} is set: this machine must have it)", pytrace=False)
    pytest.skip(reason)
