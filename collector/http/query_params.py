"""Reading numbers from a query string: a 400 that names the parameter, never a 500.

``float("inf")``, ``float("nan")`` and ``int("99999999999999999999")`` all parse; the
first two overflow or poison every comparison after them, the last overflows the
database's 64-bit integers. So every number a client puts in a query is checked here
for form and range before anything uses it.
"""

from __future__ import annotations

import math
import re

from aiohttp import web

from collector.http.errors import ApiError
from protocol import limits

MAX_PAGE = 100_000
"""The most rows one ``?limit=`` asks for."""

_DIGITS = re.compile(r"[0-9]{1,19}")


def int_param(
    request: web.Request, name: str, default: int, low: int = 0, high: int = limits.MAX_INT
) -> int:
    """``?name=`` as a whole number from ``low`` to ``high``; ``default`` when absent."""
    raw = request.query.get(name)
    if raw is None:
        return default
    value = int(raw) if _DIGITS.fullmatch(raw) else None
    if value is None or not low <= value <= high:
        raise ApiError(
            400,
            "invalid_parameter",
            f"{name} must be a whole number from {low} to {high}",
            field=name,
        )
    return value


def time_param(request: web.Request, name: str, default: float) -> float:
    """``?name=`` as epoch seconds in years 1970 to 9999; ``default`` when absent."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value <= limits.MAX_TIMESTAMP):
        raise ApiError(
            400,
            "invalid_parameter",
            f"{name} must be a time in epoch seconds, from 0 (1970) to "
            f"{limits.MAX_TIMESTAMP:.0f} (year 9999)",
            field=name,
        )
    return value
