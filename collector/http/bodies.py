"""Decoding request bodies into protocol messages, with the 4xx that says what is wrong."""

from __future__ import annotations

from typing import TypeVar

import msgspec

from collector.http.errors import ApiError
from protocol.messages import decode, error_field
from protocol.version import SUPPORTED_VERSIONS

T = TypeVar("T")


def parse(body: bytes, type_: type[T], max_bytes: int) -> T:
    """Decode a request body into ``type_``, or raise the 4xx that says what is wrong."""
    if len(body) > max_bytes:
        raise ApiError(
            413, "too_large", f"body of {len(body)} bytes exceeds the limit of {max_bytes}"
        )
    try:
        msg = decode(body, type_)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "invalid_field", str(exc), field=error_field(exc)) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "malformed_json", f"body is not valid JSON: {exc}") from None
    version = getattr(msg, "protocol", None)
    if version is not None and version not in SUPPORTED_VERSIONS:
        raise ApiError(
            400,
            "unsupported_protocol",
            f"protocol version {version} is not supported by this collector "
            f"(supported: {sorted(SUPPORTED_VERSIONS)}); "
            "upgrade the collector or downgrade the agent",
            field="$.protocol",
        )
    return msg
