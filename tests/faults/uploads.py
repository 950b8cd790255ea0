"""Backup uploads built by hand (an envelope, chunk by chunk), to drive a collector through
its storage faults."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from agent.client import CollectorClient, Response
from harness.enrolled import EnrolledAgent
from protocol import backup_envelope as be


def envelope(agent: EnrolledAgent, data: bytes, seq: int) -> bytes:
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
