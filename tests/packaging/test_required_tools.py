"""A machine without Debian's packaging tools: the package tests skip, saying so, except
under ``make test`` (``VIGIL_REQUIRE_TOOLS=1``), where they fail. Run as a separate pytest
with an empty ``PATH``, so that no tool is found, on a test that needs the built packages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.machine import REQUIRE_TOOLS

ROOT = Path(__file__).resolve().parents[2]
NEEDS_DEBS = "tests/packaging/test_debs.py::test_file_names_follow_version_and_arch"


def _without_tools(require: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", REQUIRE_TOOLS))}
    env["PATH"] = str(ROOT / "no-such-directory")
    if require is not None:
        env[REQUIRE_TOOLS] = require
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rsf", "-p", "no:cacheprovider", NEEDS_DEBS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("require", [None, "0"])
def test_a_missing_tool_skips_on_a_developers_machine(require: str | None) -> None:
    out = _without_tools(require)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 skipped" in out.stdout and "Debian packaging tools missing" in out.stdout


def test_a_missing_tool_fails_under_make_test() -> None:
    out = _without_tools("1")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "1 error" in out.stdout, out.stdout
    assert "Debian packaging tools missing" in out.stdout and REQUIRE_TOOLS in out.stdout
