"""Enrollment and session requests built by hand, to see what the collector refuses."""

from __future__ import annotations

import json
import time
import uuid

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from harness.net import http
from protocol import request_auth as ra


def enroll_raw(
    url: str, token: str, machine_id: str | None = None
) -> tuple[int, dict[str, str], dict]:
    """``POST /api/v1/agent/enroll`` with a fresh key: (status, headers, JSON body)."""
    key = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    body = json.dumps(
        {
            "protocol": 1,
            "token": token,
            "public_key": ra.b64(key),
            "hostname": "rec",
            "machine_id": machine_id or uuid.uuid4().hex,
            "agent_version": "t",
            "os": "linux",
        }
    ).encode()
    status, headers, out = http(
        "POST", url + "/api/v1/agent/enroll", body, {"Content-Type": "application/json"}
    )
    return status, headers, json.loads(out)


def session_raw(url: str, server_id: str) -> tuple[int, dict[str, str], dict]:
    """A session request for ``server_id`` signed by a key that is not its own."""
    eph = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    body = json.dumps(
        {
            "protocol": 1,
            "server_id": server_id,
            "timestamp": time.time(),
            "nonce": ra.new_nonce(),
            "ephemeral_key": ra.b64(eph),
        }
    ).encode()
    sig = Ed25519PrivateKey.generate().sign(ra.session_signing_bytes(body))
    status, headers, out = http(
        "POST",
        url + "/api/v1/agent/session",
        body,
        {"Content-Type": "application/json", ra.H_SIGNATURE: ra.b64(sig)},
    )
    return status, headers, json.loads(out)
