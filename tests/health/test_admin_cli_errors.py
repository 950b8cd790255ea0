"""Operator mistakes with the admin commands get one clear line and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def _vc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "vigil-collector"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


@pytest.mark.sqlite_only
def test_admin_command_without_a_database_says_where_it_looked(tmp_path: Path) -> None:
    typo = tmp_path / "vigil-colector"
    out = _vc("servers", "--data", str(typo))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert f"no collector database at {typo / 'vigil.db'} (from --data)" in out.stderr
    assert "--data DIR, --config FILE or VIGIL_DATA" in out.stderr
    assert not typo.exists(), "a listing must not create an empty database"


@pytest.mark.sqlite_only
def test_vigil_data_points_admin_commands_at_the_collector(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _vc("partner", "add", "acme", "--data", str(data)).returncode == 0
    out = _vc("partner", "list", "--json", env={"VIGIL_DATA": str(data)})
    assert out.returncode == 0, out.stderr
    assert '"acme"' in out.stdout
    missing = _vc("servers", env={"VIGIL_DATA": str(tmp_path / "nowhere")})
    assert missing.returncode == 2
    assert "(from VIGIL_DATA)" in missing.stderr


def test_doctor_reports_a_missing_default_configuration(tmp_path: Path) -> None:
    if Path("/etc/vigil/agent.toml").exists():
        # A machine with a real agent installed: the case cannot be staged here.
        pytest.skip("/etc/vigil/agent.toml exists on this machine")
    out = subprocess.run(
        [str(BIN / "vigil-agent"), "doctor"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 1
    assert "[FAIL] configuration" in out.stdout
    assert "/etc/vigil/agent.toml does not exist" in out.stdout
    assert "is valid" not in out.stdout
