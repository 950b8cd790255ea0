"""Signed agent requests built by hand, to test what the collector refuses."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

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
