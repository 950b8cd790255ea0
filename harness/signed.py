"""Agent requests built by hand (signed with a session, or with a key that is not the
server's), to test what the collector accepts and refuses."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agent.client import CollectorClient
from agent.identity import load_identity
from harness.net import http
from protocol import request_auth as ra


def session_for(state_dir: Path, url: str) -> tuple[str, bytes]:
    """Open a session as the enrolled agent in ``state_dir``; return (session id, key)."""
    loaded = load_identity(state_dir)
    assert loaded is not None
    ident, key = loaded

    async def go() -> tuple[str, bytes]:
        client = CollectorClient(url, ident.server_id, key)
        try:
            await client.open_session()
            assert client._session is not None
            return client._session.id, client._session.key
        finally:
            await client.close()

    return asyncio.run(go())


def signed_headers(
    session: tuple[str, bytes], method: str, path: str, body: bytes, ts: float | None = None
) -> dict[str, str]:
    sid, key = session
    stamp = f"{time.time() if ts is None else ts:.3f}"
    nonce = ra.new_nonce()
    return {
        "Content-Type": "application/json",
        ra.H_SESSION: sid,
        ra.H_TIMESTAMP: stamp,
        ra.H_NONCE: nonce,
        ra.H_SIGNATURE: ra.sign_request(key, method, path, stamp, nonce, body),
    }


def post_signed(url: str, session: tuple[str, bytes], path: str, body: bytes) -> tuple[int, dict]:
    status, _, out = http("POST", url + path, body, signed_headers(session, "POST", path, body))
    return status, json.loads(out) if out else {}


def report(seq: int, report_id: str | None = None, **extra: object) -> dict[str, object]:
    rep: dict[str, object] = {
        "report_id": report_id or f"test-{seq}-{time.time_ns()}",
        "seq": seq,
        "collected_at": time.time(),
        "host": {"hostname": "rec-01", "cpu_percent": 3.5},
        "volumes": [
            {"mountpoint": "/video", "total": 1000, "used": 400, "free": 600, "recording": True}
        ],
    }
    rep.update(extra)
    return rep


def batch(*reports: dict[str, object], protocol: int = 1) -> bytes:
    return json.dumps({"protocol": protocol, "reports": list(reports)}).encode()


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
