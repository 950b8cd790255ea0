"""Sizes in configuration: ``16777216``, ``"16MiB"``, ``"64M"``, ``"2GiB"`` (binary units)."""

from __future__ import annotations

import re

MIB = 1024 * 1024
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1024, "M": MIB, "G": 1024 * MIB, "T": 1024 * 1024 * MIB}


def parse_bytes(value: object) -> int:
    """Bytes in ``value`` (an integer, or a string with an optional binary unit);
    ``ValueError`` for anything else, a negative number or a boolean."""
    if isinstance(value, bool):
        raise ValueError("a size, not a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    m = _SIZE.match(str(value)) if isinstance(value, str) else None
    if not m:
        raise ValueError(f"not a size: {value!r}")
    unit = (m.group(2) or "").upper()[:1]
    return int(m.group(1)) * _UNITS[unit]
