"""Firmware older than the newest seen for the same model (pure logic).

The collector sees every server's cameras and is where this check belongs for the fleet;
the agent can apply it to its own server's cameras (``firmware_check = true``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_NUMBERS = re.compile(r"\d+")


def version_key(firmware: str) -> tuple[int, ...]:
    """A sortable key: the numbers in the version string, in order
    (``V5.7.15 build 230412`` -> (5, 7, 15, 230412))."""
    return tuple(int(n) for n in _NUMBERS.findall(firmware))


def outdated(cameras: Iterable[tuple[str, str, str, str]]) -> dict[str, str]:
    """``{key: reason}`` for each camera whose firmware is older than the newest one seen
    for the same manufacturer and model. Input: ``(key, manufacturer, model, firmware)``."""
    rows = [row for row in cameras if row[3] and version_key(row[3])]
    newest: dict[tuple[str, str], str] = {}
    for _key, maker, model, firmware in rows:
        best = newest.get((maker, model))
        if best is None or version_key(firmware) > version_key(best):
            newest[(maker, model)] = firmware
    out: dict[str, str] = {}
    for key, maker, model, firmware in rows:
        best = newest[(maker, model)]
        if version_key(firmware) < version_key(best):
            out[key] = (
                f"firmware {firmware} is older than {best}, the newest seen on a {maker} {model}"
            )
    return out
