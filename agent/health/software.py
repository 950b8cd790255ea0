"""The video software's product and version: from a configured value, file or command."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from agent.config import SoftwareConfig
from protocol.messages import Software

COMMAND_TIMEOUT_S = 10.0


def _extract(text: str, regex: str) -> str:
    if not regex:
        return text.strip().splitlines()[0].strip() if text.strip() else ""
    m = re.search(regex, text, re.MULTILINE)
    if not m:
        return ""
    return (m.group(1) if m.groups() else m.group(0)).strip()


def read_software(cfg: SoftwareConfig) -> Software:
    base: dict[str, Any] = {"product": cfg.product, "modules": list(cfg.modules)}
    if cfg.version:
        return Software(version=cfg.version, source="value", **base)
    if cfg.version_file:
        try:
            text = Path(cfg.version_file).read_text(errors="replace")
        except OSError as exc:
            return Software(
                source="file", error=f"cannot read {cfg.version_file}: {exc.strerror}", **base
            )
        version = _extract(text, cfg.version_regex)
        if not version:
            return Software(source="file", error=f"no version found in {cfg.version_file}", **base)
        return Software(version=version[:256], source="file", **base)
    if cfg.version_command:
        try:
            out = subprocess.run(
                list(cfg.version_command),
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Software(source="command", error=f"version command failed: {exc}", **base)
        version = _extract(out.stdout, cfg.version_regex)
        if out.returncode != 0 or not version:
            return Software(
                source="command",
                error=f"version command exited {out.returncode}: {out.stderr.strip()[:200]}",
                **base,
            )
        return Software(version=version[:256], source="command", **base)
    return Software(**base)
