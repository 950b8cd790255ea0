"""The agent's libraries and the collector's apart: the agent's package installs only the
project's dependencies, so the agent, ``vigil-backup`` and the wire must import without the
collector's; and ``vigil-collector`` where they are missing (``pip install vigil``) says in
one line what is and how to get it, exit 2."""

from __future__ import annotations

import subprocess
import sys

from collector.entry import NEEDED, missing


def _run(hidden: list[str]) -> subprocess.CompletedProcess[str]:
    # A module set to None in sys.modules cannot be found or imported: as if not installed.
    code = (
        "import sys\n"
        f"for name in {hidden!r}: sys.modules[name] = None\n"
        "from collector.entry import main\n"
        "sys.exit(main(['--help']))\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_missing_collector_libraries_are_named_in_one_line() -> None:
    result = _run(["boto3", "holidays"])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "boto3" in lines[0] and "holidays" in lines[0]
    assert "pip install 'vigil[collector]'" in lines[0]
    assert "Traceback" not in result.stderr and not result.stdout


def test_with_every_library_the_collector_runs() -> None:
    assert missing() == []
    result = _run([])
    assert result.returncode == 0, result.stderr
    assert "usage: vigil-collector" in result.stdout


def test_every_collector_extra_is_checked() -> None:
    """Each distribution of pyproject's ``collector`` extra has its module in ``NEEDED``."""
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    extra = project["project"]["optional-dependencies"]["collector"]
    names = {d.split(">")[0].split(";")[0].split("[")[0].strip() for d in extra}
    names.discard("uvloop")  # optional: the collector falls back to asyncio's loop
    assert names <= set(NEEDED.values()), names - set(NEEDED.values())


def test_the_agent_and_vigil_backup_import_none_of_the_collectors_libraries() -> None:
    """Every module of ``agent``, ``recovery`` and ``protocol`` imports with the collector's
    libraries hidden: the agent's package, which has none of them, runs them all."""
    hidden = [m for m in NEEDED if m != "aiohttp"] + ["botocore", "psycopg", "uvloop"]
    code = (
        "import importlib, pkgutil, sys\n"
        f"for name in {hidden!r}: sys.modules[name] = None\n"
        "failed = []\n"
        "for top in ('agent', 'recovery', 'protocol'):\n"
        "    package = importlib.import_module(top)\n"
        "    for info in pkgutil.walk_packages(package.__path__, top + '.'):\n"
        "        try:\n"
        "            importlib.import_module(info.name)\n"
        "        except ImportError as exc:\n"
        "            failed.append(f'{info.name}: {exc}')\n"
        "sys.exit('\\n'.join(failed) or None)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
