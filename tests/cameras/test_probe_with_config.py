"""`vigil-agent probe onvif://HOST:PORT --config FILE` takes the camera's credentials from
the agent's configuration, as an installer on site expects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cameras import simulated_cameras

BIN = Path(sys.executable).parent


@pytest.fixture
def camera() -> Iterator[dict]:
    with simulated_cameras(1) as fleet:
        yield fleet.cameras[0]


def _config(tmp_path: Path, cam: dict, device: bool) -> Path:
    creds = tmp_path / "camera-credentials.toml"
    creds.write_text(f'[default]\nusername = "{cam["username"]}"\npassword = "{cam["password"]}"\n')
    os.chmod(creds, 0o600)
    text = (
        f'[agent]\nstate_dir = "{tmp_path / "state"}"\n\n[cameras]\ncredentials_file = "{creds}"\n'
    )
    if device:
        text += f'\n[[cameras.device]]\naddress = "{cam["host"]}"\nport = {cam["port"]}\n'
        text += 'name = "Gate"\n'
    cfg = tmp_path / "agent.toml"
    cfg.write_text(text)
    return cfg


def _probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "vigil-agent"), "probe", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("device", [True, False], ids=["configured-device", "default-creds"])
def test_probe_takes_credentials_from_config(tmp_path: Path, camera: dict, device: bool) -> None:
    cfg = _config(tmp_path, camera, device)
    url = f"onvif://{camera['host']}:{camera['port']}"
    out = _probe(url, "--config", str(cfg), "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["verdict"] == "ok"
    assert all(step["status"] == "ok" for step in doc["steps"])
    assert camera["password"] not in out.stdout


def test_probe_without_user_or_config_says_what_is_missing(camera: dict) -> None:
    out = _probe(f"onvif://{camera['host']}:{camera['port']}")
    assert out.returncode == 64
    assert "no user in the URL" in out.stderr and "--config FILE" in out.stderr
    assert "Traceback" not in out.stderr
