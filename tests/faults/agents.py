"""Agent requests built by hand (enrolment, sessions with a chosen clock, reports,
backup uploads), to drive a collector through its faults."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agent.client import CollectorClient, Response, enroll
from protocol import backup_envelope as be
from protocol import request_auth as ra
from protocol.messages import EnrollRequest, SessionRequest, encode
from protocol.version import HEADER, PROTOCOL_VERSION
from tests.core.signed import batch, post_signed, report
from tests.processes import http


@dataclass
class FakeAgent:
    server_id: str
    key: Ed25519PrivateKey
    url: str
    seq: int = 0
    session: tuple[str, bytes] | None = None

    def client(self) -> CollectorClient:
        return CollectorClient(self.url, self.server_id, self.key)

    def session_request(self, clock_offset_s: float = 0.0) -> tuple[int, dict]:
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

    def send_report(self) -> tuple[int, dict]:
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


def enroll_fake(url: str, token: str, hostname: str = "rec-01") -> FakeAgent:
    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    req = EnrollRequest(
        protocol=PROTOCOL_VERSION,
        token=token,
        public_key=base64.b64encode(pub).decode(),
        hostname=hostname,
        machine_id=f"machine-{hostname}-{time.time_ns()}",
    )
    resp = asyncio.run(enroll(url, req))
    return FakeAgent(resp.server_id, key, url)


def envelope(agent: FakeAgent, data: bytes, seq: int) -> bytes:
    header = be.BackupHeader(
        server_id=agent.server_id,
        seq=seq,
        created_at=time.time(),
        ciphertext_sha256=hashlib.sha256(data).hexdigest(),
        ciphertext_size=len(data),
    )
    return be.encode(be.sign(header, agent.key))


@dataclass
class Answer:
    status: int
    body: dict
    headers: dict


async def upload(
    client: CollectorClient, env_bytes: bytes, data: bytes, chunk: int, complete: bool = True
) -> list[Answer]:
    """Open an upload, send ``data`` chunk by chunk, complete it; stops at the first
    refusal. Every answer, in order."""
    answers: list[Answer] = []

    def note(r: Response) -> Answer:
        a = Answer(r.status, r.json() if r.body else {}, dict(r.headers))
        answers.append(a)
        return a

    opened = note(await client.request("POST", "/api/v1/agent/backups", env_bytes))
    if opened.status not in (200, 201):
        return answers
    upload_id, offset = opened.body["upload_id"], opened.body["offset"]
    while offset < len(data):
        a = note(
            await client.request(
                "PUT",
                f"/api/v1/agent/backups/uploads/{upload_id}",
                data[offset : offset + chunk],
                "application/octet-stream",
                params={"offset": offset},
            )
        )
        if a.status != 200:
            return answers
        offset = a.body["offset"]
    if complete:
        note(await client.request("POST", f"/api/v1/agent/backups/uploads/{upload_id}/complete"))
    return answers
