"""A digest of a server's camera inventory and verdicts, the same on both sides.

The agent sends it with each report; the collector compares it with the one it stored
and touches camera rows only when it differs. Fields that change on every probe
(latency, clock offset, timings) are left out, so an unchanged fleet has an unchanged
digest. A wrong digest from an agent can only hide that agent's own changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import msgspec

from protocol.messages import Camera

_encode = msgspec.json.Encoder(order="sorted").encode


def stable(cam: Camera) -> Camera:
    """The camera without the fields that change on every probe."""
    return msgspec.structs.replace(
        cam, latency_ms=None, clock_offset_s=None, probed_at=0.0, duration_ms=0.0
    )


def stable_json(cam: Camera) -> str:
    return _encode(stable(cam)).decode()


def cameras_digest(cameras: Iterable[Camera]) -> str:
    """SHA-256 over the stable part of every camera, in key order."""
    return hashlib.sha256(
        _encode(sorted((stable(c) for c in cameras), key=lambda c: c.key))
    ).hexdigest()
