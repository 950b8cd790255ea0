"""Reading what a partner sends to the contract API: bodies with their limits, JSON objects,
ISO 8601 times, paging and string fields. Every refusal is an ``ApiError`` (4xx) naming
the parameter or field at fault.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import aiohttp
import aiohttp.http_exceptions
from aiohttp import web

from collector import instants
from collector.contracts.importer import MAX_YEAR, MIN_YEAR, clean_text
from collector.http.errors import ApiError

MAX_IMPORT_BODY = 8 * 1024 * 1024
MAX_JSON_BODY = 64 * 1024


async def whole_body(request: web.Request, limit: int, what: str = "body") -> bytes:
    """The complete body, or a 4xx: nothing is planned from part of a file.

    ``StreamReader.read(n)`` returns as soon as *some* bytes are there, so a body arriving
    in several pieces would be cut at the first; this reads to the end. A body shorter than
    its ``Content-Length`` (the client closed the connection) is refused."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise ApiError(413, "too_large", f"{what} larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            chunk = await request.content.read(256 * 1024)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "too_large", f"{what} larger than {limit} bytes")
            chunks.append(chunk)
    except (
        ConnectionError,
        aiohttp.ClientPayloadError,
        aiohttp.http_exceptions.HttpProcessingError,
    ):
        raise ApiError(
            400, "incomplete_body", f"the {what} ended before its Content-Length; nothing changed"
        ) from None
    if declared is not None and size != declared:
        raise ApiError(
            400,
            "incomplete_body",
            f"the {what} has {size} of {declared} bytes; nothing changed",
        )
    return b"".join(chunks)


async def json_body(request: web.Request) -> dict[str, Any]:
    raw = await whole_body(request, MAX_JSON_BODY)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(
            400, "invalid_json", "the body has a string that is not valid Unicode"
        ) from None
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def time_field(value: Any, field: str) -> dt.datetime:
    """An ISO 8601 time with its UTC offset, in the years 1970-9999 (now when absent)."""
    if value is None:
        return dt.datetime.now(dt.UTC)
    if not isinstance(value, str) or len(value) > 64:
        raise ApiError(400, "invalid_field", f"{field} must be an ISO 8601 time", field)
    try:
        return instants.within_years(instants.parse_instant(value))
    except instants.NoOffset:
        raise ApiError(400, "invalid_field", f"{field} needs its UTC offset", field) from None
    except instants.OutOfRange:
        raise ApiError(
            400, "invalid_field", f"{field} must lie in the years {MIN_YEAR}-{MAX_YEAR}", field
        ) from None
    except ValueError:
        raise ApiError(400, "invalid_field", f"{field} is not an ISO 8601 time", field) from None


def not_future(t: dt.datetime, field: str) -> dt.datetime:
    if t.timestamp() > time.time() + 300:
        raise ApiError(400, "invalid_field", f"{field} is in the future", field)
    return t


def page(request: web.Request, rows: list[Any]) -> list[Any]:
    """``?limit=N`` (1..10000) and ``?offset=N`` (0..1e9) of a listing; anything else (inf,
    -1, 1.5, empty) is a 400 that names the parameter."""
    values = {}
    for name, lo, hi in (("limit", 1, 10_000), ("offset", 0, 1_000_000_000)):
        text = request.query.get(name)
        if text is None:
            continue
        if not text.isascii() or not text.isdigit() or len(text) > 10 or not lo <= int(text) <= hi:
            raise ApiError(
                400, "invalid_parameter", f"{name} must be a whole number {lo}..{hi}", name
            )
        values[name] = int(text)
    start = values.get("offset", 0)
    limit = values.get("limit")
    return rows[start:] if limit is None else rows[start : start + limit]


def str_field(
    data: dict[str, Any], key: str, *, required: bool = False, limit: int = 256
) -> str | None:
    v = data.get(key)
    if v is None:
        if required:
            raise ApiError(400, "missing_field", f"{key} is required", key)
        return None
    if not isinstance(v, str) or len(v) > limit:
        raise ApiError(400, "invalid_field", f"{key} must be a string of at most {limit}", key)
    bad = clean_text(v)
    if bad:
        raise ApiError(400, "invalid_field", f"{key} {bad}", key)
    return v
