"""Durations on the command line and in configuration: ``90s``, ``15m``, ``24h``, ``7d``, ``2w``."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> float:
    """Seconds in ``text``: a plain number of seconds, or parts like ``1d12h``."""
    t = text.strip().lower()
    if not t:
        raise ValueError("empty duration")
    try:
        value = float(t)
    except ValueError:
        pos = 0
        value = 0.0
        for m in _PART.finditer(t):
            if m.start() != pos:
                break
            value += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if pos != len(t):
            raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 24h, 7d)") from None
    if value <= 0:
        raise ValueError(f"duration must be positive: {text!r}")
    return value
