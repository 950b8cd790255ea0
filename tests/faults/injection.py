"""The fault tests' switches for faults injected into real processes."""

from __future__ import annotations

from pathlib import Path

INJECTED = str(Path(__file__).parent / "injected")


def injected(**faults: str) -> dict[str, str]:
    """Environment for a process with these faults (see ``injected/sitecustomize.py``)."""
    return {"PYTHONPATH": INJECTED, **{f"VIGIL_FAULT_{k.upper()}": v for k, v in faults.items()}}
