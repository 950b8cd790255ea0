"""Shared helpers of the camera tests: simulated cameras on 127.0.0.1, settings that point at
them, and a credentials file with the right mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.cameras import CameraSettings, parse_camera_config
from sim.fleet import DEFAULT_PASSWORD, DEFAULT_USERNAME, SimulatedCamera

TIMEOUT_S = 1.5
"""Per-camera timeout in these tests (the default is 10 s)."""


def write_credentials(folder: Path, mode: int = 0o600, extra: str = "") -> Path:
    path = folder / "camera-credentials.toml"
    path.write_text(
        f'[default]\nusername = "{DEFAULT_USERNAME}"\npassword = "{DEFAULT_PASSWORD}"\n' + extra
    )
    path.chmod(mode)
    return path


def settings_for(cameras: list[SimulatedCamera], folder: Path, **overrides: Any) -> CameraSettings:
    """Settings that probe ``cameras`` (key ``camN``) with short timeouts, no damping
    unless ``flap_threshold`` is given."""
    cred = write_credentials(folder)
    table: dict[str, Any] = {
        "credentials_file": cred.name,
        "timeout_s": TIMEOUT_S,
        "flap_threshold": 1,
        "device": [
            {"address": c.host, "port": c.port, "id": f"cam{c.index}", "name": f"Camera {c.index}"}
            for c in cameras
        ],
    }
    table.update(overrides)
    return parse_camera_config(table, str(folder / "agent.toml"))


def by_key(cameras: list) -> dict:
    return {c.key: c for c in cameras}
