"""Durations on the command line and in configuration: ``90s``, ``15m``, ``24h``, ``7d``, ``2w``.

The collector's one duration parser, in two strengths: :func:`parse_duration` for a time
to wait (positive, fractions allowed: ``1.5h``) and :func:`parse_interval` for a backup
policy's interval (whole seconds, ``0`` meaning "off", a space allowed before the unit).
"""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_WHOLE_PART = re.compile(r"(\d+)\s*([smhdw])")
_PLAIN = re.compile(r"\d+(?:\.\d+)?")


def _sum_of_parts(t: str, part: re.Pattern[str]) -> float | None:
    """The sum of ``t``'s parts like ``1d12h``; ``None`` unless they make up all of ``t``."""
    pos = 0
    total = 0.0
    for m in part.finditer(t):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total if pos == len(t) else None


def parse_duration(text: str) -> float:
    """Seconds in ``text``: a plain number of seconds, or parts like ``1d12h``."""
    t = text.strip().lower()
    if not t:
        raise ValueError("empty duration")
    value = _sum_of_parts(t + "s", _PART) if _PLAIN.fullmatch(t) else _sum_of_parts(t, _PART)
    if value is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 24h, 7d)")
    if value <= 0:
        raise ValueError(f"duration must be positive: {text!r}")
    return value


def parse_interval(text: str) -> int:
    """``"24h"``, ``"1d12h"``, ``"90m"``, ``"3600"``, ``"0"`` -> whole seconds."""
    t = text.strip().lower()
    if t.isdigit():
        return int(t)
    total = _sum_of_parts(t, _WHOLE_PART) if t else None
    if total is None:
        raise ValueError(f"invalid duration {text!r} (examples: 24h, 1d12h, 90m, 0)")
    return int(total)
