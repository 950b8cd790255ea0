"""An agent identity enrolled with the real enrolment call (``agent.client.enroll``) against a
real collector, and the real ``agent.client.CollectorClient`` speaking for it: for tests and
benchmarks that drive the agent's code (or hand-built agent requests) in this process."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agent.agent_key import AgentKey
from agent.client import CollectorClient, enroll
from harness.net import http
from harness.signed import batch, post_signed, report
from protocol import request_auth as ra
from protocol.messages import EnrollRequest, SessionRequest, encode
from protocol.version import HEADER, PROTOCOL_VERSION


@dataclass
class EnrolledAgent:
    """A server enrolled on the collector at ``url``: its id and signing key."""

    server_id: str
    key: Ed25519PrivateKey
    url: str
    seq: int = 0
    session: tuple[str, bytes] | None = None

    @property
    def public_key(self) -> bytes:
        return self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def client(self, url: str | None = None, **kw: Any) -> CollectorClient:
        """The agent's own client, to ``url`` (a proxy in front of the collector) or the
        collector it enrolled with."""
        key = AgentKey(self.key.private_bytes_raw())
        return CollectorClient(url or self.url, self.server_id, key, **kw)

    def session_request(self, clock_offset_s: float = 0.0) -> tuple[int, dict[str, Any]]:
        """POST /api/v1/agent/session signed by this agent, its clock ``clock_offset_s`` off."""
        eph = X25519PrivateKey.generate()
        req = SessionRequest(
            protocol=PROTOCOL_VERSION,
            server_id=self.server_id,
            timestamp=time.time() + clock_offset_s,
            nonce=ra.new_nonce(),
            ephemeral_key=ra.b64(eph.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)),
        )
        body = encode(req)
        headers = {
            "Content-Type": "application/json",
            HEADER: str(PROTOCOL_VERSION),
            ra.H_SIGNATURE: ra.b64(self.key.sign(ra.session_signing_bytes(body))),
        }
        status, _, out = http("POST", self.url + "/api/v1/agent/session", body, headers)
        return status, json.loads(out) if out else {}

    def open_session(self) -> tuple[str, bytes]:
        async def go() -> tuple[str, bytes]:
            client = self.client()
            try:
                await client.open_session()
                assert client._session is not None
                return client._session.id, client._session.key
            finally:
                await client.close()

        self.session = asyncio.run(go())
        return self.session

    def send_report(self) -> tuple[int, dict[str, Any]]:
        """One report on the agent's session (opened once); (status, JSON body)."""
        self.seq += 1
        if self.session is None:
            self.open_session()
        assert self.session is not None
        body = batch(report(self.seq))
        status, doc = post_signed(self.url, self.session, "/api/v1/agent/reports", body)
        if status == 401 and doc.get("error") == "session_unknown":
            # Sessions live as long as the collector process, as a real agent's do.
            self.open_session()
            status, doc = post_signed(self.url, self.session, "/api/v1/agent/reports", body)
        return status, doc


def enroll_agent(
    url: str, token: str, hostname: str = "rec-01", machine_id: str | None = None
) -> EnrolledAgent:
    """Enroll a fresh key with ``token`` on the collector at ``url``."""
    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    req = EnrollRequest(
        protocol=PROTOCOL_VERSION,
        token=token,
        public_key=base64.b64encode(pub).decode(),
        hostname=hostname,
        machine_id=machine_id or f"machine-{hostname}-{time.time_ns()}",
    )
    resp = asyncio.run(enroll(url, req))
    return EnrolledAgent(resp.server_id, key, url)
