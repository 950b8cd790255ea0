"""``status.json`` in the state directory: what the running agent last did, for
``vigil-agent status`` and ``doctor`` (separate processes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.identity import write_atomic

STATUS_FILE = "status.json"


def write_status(state_dir: Path, status: dict[str, Any]) -> None:
    write_atomic(state_dir / STATUS_FILE, json.dumps(status, indent=2, sort_keys=True).encode())


def read_status(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((state_dir / STATUS_FILE).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}
