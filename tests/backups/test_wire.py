"""The upload protocol over the wire: a real collector process, signed agent requests,
partner downloads; resume after a dropped connection and after SIGKILL of the collector."""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from pyrage import x25519

from agent.client import CollectorClient
from collector.backups.cli import register
from collector.backups.objectstore import open_object_store
from collector.backups.staging_objects import PREFIX
from harness.database import database_text
from harness.enrolled import EnrolledAgent, enroll_agent
from harness.processes import Collector, Partner
from protocol import backup_envelope as be
from protocol import request_auth as ra
from protocol.messages import AgentSettings
from protocol.version import HEADER, PROTOCOL_VERSION

from .conftest import new_bucket, s3_config

CHUNK = 64 * 1024
JSON = "application/json"


@dataclass
class Env:
    collector: Collector
    data: Path
    config: Path
    acme: Partner
    other: Partner
    storage: dict

    def cli(self, *argv: str) -> int:
        parser = argparse.ArgumentParser()
        register(parser.add_subparsers(dest="cmd", required=True))
        args = parser.parse_args([*argv, "--data", str(self.data), "--config", str(self.config)])
        return int(args.func(args))


def _env(tmp_path: Path, storage: dict | None = None) -> Iterator[Env]:
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "collector.toml"
    text = '[backup]\nchunk_size = "64KiB"\nmax_size = "64MiB"\n'
    if storage:
        text += "[backup.storage]\n" + "".join(
            f"{k} = {json.dumps(v)}\n" for k, v in storage.items()
        )
    config.write_text(text)
    proc = Collector(data, config=config)
    acme, other = proc.add_partner("acme"), proc.add_partner("other")
    proc.start()
    try:
        yield Env(proc, data, config, acme, other, storage or {"kind": "local"})
    finally:
        proc.stop()
    assert proc.log_path is not None
    log = proc.log_path.read_text(errors="replace")
    assert "unhandled error" not in log, log[-4000:]  # the error middleware's 500 path


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from _env(tmp_path)


@pytest.fixture(params=["local", "s3"])
def env_any(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    """The collector with each kind of store (S3: moto on 127.0.0.1)."""
    storage = None
    if request.param == "s3":
        endpoint = request.getfixturevalue("moto_endpoint")
        storage = s3_config(endpoint, new_bucket(endpoint))
    yield from _env(tmp_path, storage)


def header(agent: EnrolledAgent, data: bytes, seq: int, **kw: object) -> be.BackupHeader:
    fields: dict = {
        "server_id": agent.server_id,
        "seq": seq,
        "created_at": 1_700_000_000.0 + seq,
        "ciphertext_sha256": hashlib.sha256(data).hexdigest(),
        "ciphertext_size": len(data),
        **kw,
    }
    return be.BackupHeader(**fields)


def envelope(agent: EnrolledAgent, data: bytes, seq: int, **kw: object) -> bytes:
    return be.encode(be.sign(header(agent, data, seq, **kw), agent.key))


async def send(client: CollectorClient, upload_id: str, data: bytes, offset: int) -> int:
    while offset < len(data):
        r = await client.request(
            "PUT",
            f"/api/v1/agent/backups/uploads/{upload_id}",
            data[offset : offset + CHUNK],
            "application/octet-stream",
            params={"offset": offset},
        )
        assert r.status == 200, r.body
        offset = r.json()["offset"]
    return offset


async def full_upload(client: CollectorClient, env_bytes: bytes, data: bytes) -> tuple[int, dict]:
    r = await client.request("POST", "/api/v1/agent/backups", env_bytes)
    if r.status not in (200, 201):
        return r.status, r.json()
    opened = r.json()
    await send(client, opened["upload_id"], data, opened["offset"])
    r = await client.request(
        "POST", f"/api/v1/agent/backups/uploads/{opened['upload_id']}/complete"
    )
    return r.status, r.json()


async def partner_get(
    url: str, key: str, path: str, headers: dict | None = None
) -> tuple[int, bytes, dict]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(url + path, headers={"Authorization": f"Bearer {key}", **(headers or {})}) as r,
    ):
        return r.status, await r.read(), dict(r.headers)


def listed(env: Env, agent: EnrolledAgent, key: str | None = None) -> list[dict]:
    status, body, _ = asyncio.run(
        partner_get(
            env.collector.url, key or env.acme.api_key, f"/api/v1/servers/{agent.server_id}/backups"
        )
    )
    assert status == 200, body
    return json.loads(body)["backups"]


def test_upload_resumes_after_collector_sigkill(env_any: Env) -> None:
    env = env_any
    agent = enroll_agent(env.collector.url, env.acme.token, "rec-01")
    data = os.urandom(20 * CHUNK + 17)
    env_bytes = envelope(agent, data, 1)

    async def first_part() -> str:
        client = agent.client(env.collector.url)
        r = await client.request("POST", "/api/v1/agent/backups", env_bytes)
        assert r.status == 201, r.body
        opened = r.json()
        assert opened["offset"] == 0 and opened["chunk_size"] == CHUNK
        await send(client, opened["upload_id"], data[: 8 * CHUNK], 0)
        # chunk 9 in flight while the collector is killed
        inflight = asyncio.create_task(
            client.request(
                "PUT",
                f"/api/v1/agent/backups/uploads/{opened['upload_id']}",
                data[8 * CHUNK : 9 * CHUNK],
                "application/octet-stream",
                params={"offset": 8 * CHUNK},
            )
        )
        await asyncio.sleep(0)
        env.collector.kill()
        try:
            await inflight
        except Exception:  # the connection dies with the process (or the answer got out)
            pass
        await client.close()
        return opened["upload_id"]

    upload_id = asyncio.run(first_part())
    store = open_object_store(env.storage, env.data)
    visible = [o.key for o in asyncio.run(store.list()) if not o.key.startswith(PREFIX)]
    assert visible == []  # no backup object in the store (S3 holds the staged chunks)
    asyncio.run(store.close())
    env.collector.start()
    assert listed(env, agent) == []  # a partial upload is never listed

    async def resume() -> tuple[int, dict]:
        client = agent.client(env.collector.url)
        r = await client.request("POST", "/api/v1/agent/backups", env_bytes)
        assert r.status == 200, r.body
        again = r.json()
        assert again["upload_id"] == upload_id
        assert again["offset"] in (8 * CHUNK, 9 * CHUNK)
        r = await client.request("GET", f"/api/v1/agent/backups/uploads/{upload_id}")
        assert r.json() == {"offset": again["offset"], "size": len(data)}
        await send(client, upload_id, data, again["offset"])
        r = await client.request("POST", f"/api/v1/agent/backups/uploads/{upload_id}/complete")
        await client.close()
        return r.status, r.json()

    status, body = asyncio.run(resume())
    assert status == 201 and body["seq"] == 1
    [row] = listed(env, agent)
    assert row["id"] == body["backup_id"] and row["status"] == "verified"
    assert row["size"] == len(data) and row["ciphertext_sha256"] == hashlib.sha256(data).hexdigest()

    url, key, sid = env.collector.url, env.acme.api_key, agent.server_id
    status, got, headers = asyncio.run(
        partner_get(url, key, f"/api/v1/servers/{sid}/backups/{row['id']}/object")
    )
    assert status == 200 and got == data and headers["Accept-Ranges"] == "bytes"
    status, part, headers = asyncio.run(
        partner_get(
            url,
            key,
            f"/api/v1/servers/{sid}/backups/{row['id']}/object",
            {"Range": "bytes=100-199"},
        )
    )
    assert status == 206 and part == data[100:200]
    assert headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    status, part, _ = asyncio.run(
        partner_get(url, key, f"/api/v1/servers/{sid}/backups/latest/object", {"Range": "bytes=-5"})
    )
    assert status == 206 and part == data[-5:]
    status, _, _ = asyncio.run(
        partner_get(
            url,
            key,
            f"/api/v1/servers/{sid}/backups/{row['id']}/object",
            {"Range": f"bytes={len(data) + 10}-"},
        )
    )
    assert status == 416
    # the envelope as signed, checked with the key the collector says the agent enrolled
    status, env_got, _ = asyncio.run(
        partner_get(url, key, f"/api/v1/servers/{sid}/backups/{row['id']}/envelope")
    )
    assert status == 200 and env_got == env_bytes
    status, pk, _ = asyncio.run(partner_get(url, key, f"/api/v1/servers/{sid}/public-key"))
    public = base64.b64decode(json.loads(pk)["public_key"])
    assert public == agent.public_key
    assert be.verify(be.decode(env_got), public).seq == 1


def test_resume_after_dropped_connection(env: Env) -> None:
    """A PUT cut off mid-body acknowledges nothing; the agent asks for the offset and
    resumes from there."""
    agent = enroll_agent(env.collector.url, env.acme.token, "rec-02")
    data = os.urandom(4 * CHUNK)

    async def go() -> tuple[int, dict]:
        client = agent.client(env.collector.url)
        r = await client.request("POST", "/api/v1/agent/backups", envelope(agent, data, 1))
        upload_id = r.json()["upload_id"]
        await send(client, upload_id, data[:CHUNK], 0)
        session = client._session
        assert session is not None
        chunk = data[CHUNK : 2 * CHUNK]
        path_qs = f"/api/v1/agent/backups/uploads/{upload_id}?offset={CHUNK}"
        ts, nonce = f"{__import__('time').time():.3f}", ra.new_nonce()
        sig = ra.sign_request(session.key, "PUT", path_qs, ts, nonce, chunk)
        u = urlsplit(env.collector.url)
        head = (
            f"PUT {path_qs} HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Length: {len(chunk)}\r\n"
            f"Content-Type: application/octet-stream\r\n{HEADER}: {PROTOCOL_VERSION}\r\n"
            f"{ra.H_SESSION}: {session.id}\r\n{ra.H_TIMESTAMP}: {ts}\r\n{ra.H_NONCE}: {nonce}\r\n"
            f"{ra.H_SIGNATURE}: {sig}\r\n\r\n"
        ).encode()
        with socket.create_connection((u.hostname, u.port)) as s:
            s.sendall(head + chunk[: len(chunk) // 2])
        await asyncio.sleep(0.2)
        r = await client.request("GET", f"/api/v1/agent/backups/uploads/{upload_id}")
        assert r.json()["offset"] == CHUNK
        await send(client, upload_id, data, CHUNK)
        r = await client.request("POST", f"/api/v1/agent/backups/uploads/{upload_id}/complete")
        await client.close()
        return r.status, r.json()

    status, body = asyncio.run(go())
    assert status == 201
    assert [b["id"] for b in listed(env, agent)] == [body["backup_id"]]


def test_refusals_over_the_wire(env: Env) -> None:
    a = enroll_agent(env.collector.url, env.acme.token, "rec-a")
    b = enroll_agent(env.collector.url, env.acme.token, "rec-b")
    good = os.urandom(3 * CHUNK)

    async def go() -> None:
        ca, cb = a.client(env.collector.url), b.client(env.collector.url)
        # a flipped bit between signing and upload
        bad = bytearray(good)
        bad[5] ^= 1
        status, body = await full_upload(ca, envelope(a, good, 1), bytes(bad))
        assert (status, body["error"]) == (422, "hash_mismatch")
        # the good one goes in
        status, body = await full_upload(ca, envelope(a, good, 2), good)
        assert status == 201
        # replayed upload (same signed envelope) and rollback to an older seq
        status, body = await full_upload(ca, envelope(a, good, 2), good)
        assert (status, body["error"]) == (409, "sequence_replay")
        status, body = await full_upload(ca, envelope(a, good, 1), good)
        assert (status, body["error"]) == (409, "sequence_replay")
        # signed by another agent's key
        forged = be.encode(be.sign(header(a, good, 3), b.key))
        status, body = await full_upload(ca, forged, good)
        assert (status, body["error"]) == (400, "envelope_invalid")
        # a valid envelope of server b, uploaded by a (header swapped between servers)
        status, body = await full_upload(ca, envelope(b, good, 3), good)
        assert (status, body["error"], body["field"]) == (
            400,
            "envelope_invalid",
            "header.server_id",
        )
        # above the configured size limit (64 MiB in this collector's config)
        big = be.encode(
            be.sign(
                header(a, b"", 3, ciphertext_size=65 * 2**20, ciphertext_sha256="0" * 64), a.key
            )
        )
        r = await ca.request("POST", "/api/v1/agent/backups", big)
        assert (r.status, r.json()["error"]) == (413, "too_large")
        # wrong offset
        r = await ca.request("POST", "/api/v1/agent/backups", envelope(a, good, 3))
        upload_id = r.json()["upload_id"]
        r = await ca.request(
            "PUT",
            f"/api/v1/agent/backups/uploads/{upload_id}",
            b"x" * 10,
            "application/octet-stream",
            params={"offset": 5},
        )
        assert (r.status, r.json()["error"], r.json()["offset"]) == (409, "offset_mismatch", 0)
        # b cannot touch a's upload
        r = await cb.request("GET", f"/api/v1/agent/backups/uploads/{upload_id}")
        assert r.status == 404
        # nonsense bodies: 4xx, never 500
        for body_bytes in (b"", b"[]", b'{"header": 1}'):
            r = await ca.request("POST", "/api/v1/agent/backups", body_bytes)
            assert r.status == 400
        r = await ca.request(
            "PUT",
            f"/api/v1/agent/backups/uploads/{upload_id}",
            b"x",
            "application/octet-stream",
            params={"offset": "abc"},
        )
        assert r.status == 400
        await ca.close()
        await cb.close()

    asyncio.run(go())
    assert [x["seq"] for x in listed(env, a)] == [2]
    assert listed(env, b) == []


def test_not_entitled_and_settings(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    ident = x25519.Identity.generate()
    recipient = str(ident.to_public())
    assert env.cli("recovery-key", "add", "--partner", "acme", recipient) == 0
    assert env.cli("recovery-key", "add", "--partner", "acme", str(ident)) == 1
    assert "private" in capsys.readouterr().err
    assert env.cli("recovery-key", "list", "--partner", "acme", "--json") == 0
    assert json.loads(capsys.readouterr().out)[0]["recipient"] == recipient
    agent = enroll_agent(env.collector.url, env.acme.token, "rec-s")
    seen: list[AgentSettings] = []

    async def first() -> None:
        client = agent.client(env.collector.url, on_settings=seen.append)
        status, _ = await full_upload(client, envelope(agent, b"abc", 1), b"abc")
        assert status == 201
        await client.close()

    asyncio.run(first())
    assert seen[-1].backup_recipients == [recipient]
    assert seen[-1].backup_interval_s == 86400 and seen[-1].backup_entitled

    assert env.cli("backup", "policy", "set", "--server", agent.server_id, "--interval", "0") == 0
    capsys.readouterr()

    async def refused() -> None:
        client = agent.client(env.collector.url)
        r = await client.request("POST", "/api/v1/agent/backups", envelope(agent, b"abcd", 2))
        assert r.status == 403 and r.json()["error"] == "backup_not_entitled"
        assert "interval 0" in r.json()["message"]
        # outcomes reach the collector, failures with their reason
        r = await client.request(
            "POST",
            "/api/v1/agent/backup-runs",
            json.dumps(
                {
                    "outcome": "failed",
                    "reason": r.json()["message"],
                    "started_at": 1.0,
                    "finished_at": 2.0,
                    "seq": None,
                    "backup_id": None,
                    "files": None,
                    "bytes": None,
                }
            ).encode(),
        )
        assert r.status == 201
        await client.close()

    asyncio.run(refused())
    status, body, _ = asyncio.run(
        partner_get(
            env.collector.url, env.acme.api_key, f"/api/v1/servers/{agent.server_id}/backup-status"
        )
    )
    st = json.loads(body)
    assert status == 200 and st["interval_s"] == 0 and st["next_due"] is None
    assert st["last_failure"] == 2.0 and "interval 0" in st["last_failure_reason"]
    assert st["last_success"] is not None
    # nothing the collector keeps can decrypt: only the public recipient is anywhere
    env.collector.stop()
    blobs = [p.read_bytes() for p in env.data.rglob("*") if p.is_file()]
    blobs.append(database_text(env.data))
    assert not [b for b in blobs if b"AGE-SECRET-KEY-" in b.upper()]
    assert any(recipient.encode() in b for b in blobs)


def test_partner_sees_only_own_servers(env: Env) -> None:
    agent = enroll_agent(env.collector.url, env.acme.token, "rec-p")

    async def up() -> dict:
        client = agent.client(env.collector.url)
        _, body = await full_upload(client, envelope(agent, b"hello", 1), b"hello")
        await client.close()
        return body

    backup_id = up_id = asyncio.run(up())["backup_id"]
    assert up_id
    url, sid = env.collector.url, agent.server_id
    for path in (
        f"/api/v1/servers/{sid}/backups",
        f"/api/v1/servers/{sid}/backups/{backup_id}/envelope",
        f"/api/v1/servers/{sid}/backups/{backup_id}/object",
        f"/api/v1/servers/{sid}/backup-status",
        f"/api/v1/servers/{sid}/public-key",
    ):
        assert asyncio.run(partner_get(url, env.other.api_key, path))[0] == 404
        assert asyncio.run(partner_get(url, env.acme.api_key, path))[0] == 200
    assert (
        asyncio.run(
            partner_get(url, env.acme.api_key, f"/api/v1/servers/{sid}/backups/nope/object")
        )[0]
        == 404
    )


def test_cli_prune_and_check(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    agent = enroll_agent(env.collector.url, env.acme.token, "rec-c")
    blobs = [os.urandom(1000 + i) for i in range(4)]

    async def up() -> None:
        client = agent.client(env.collector.url)
        for i, blob in enumerate(blobs, 1):
            assert (await full_upload(client, envelope(agent, blob, i), blob))[0] == 201
        await client.close()

    asyncio.run(up())
    assert env.cli("backup", "check", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["checked"], report["ok"]) == (4, 4)
    ids = [b["id"] for b in sorted(listed(env, agent), key=lambda b: b["seq"])]
    obj = env.data / "backups" / agent.server_id / f"{ids[1]}.age"
    raw = bytearray(obj.read_bytes())
    raw[100] ^= 0x04
    obj.write_bytes(bytes(raw))
    assert env.cli("backup", "check", "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert [e["backup_id"] for e in report["corrupt"]] == [ids[1]]
    assert {b["id"]: b["status"] for b in listed(env, agent)}[ids[1]] == "corrupt"
    assert (
        env.cli(
            "backup",
            "policy",
            "set",
            "--server",
            agent.server_id,
            "--keep-last",
            "1",
            "--keep-daily",
            "0",
            "--keep-weekly",
            "0",
            "--keep-monthly",
            "0",
        )
        == 0
    )
    capsys.readouterr()
    assert env.cli("backup", "prune", "--dry-run", "--json") == 0
    dry = json.loads(capsys.readouterr().out)
    assert {e["backup_id"] for e in dry["removed"]} == set(ids[:3])
    assert env.cli("backup", "prune", "--json") == 0
    capsys.readouterr()
    assert [b["id"] for b in listed(env, agent)] == [ids[3]]
    assert env.cli("backup", "list", "--server", agent.server_id, "--json") == 0
    assert [b["id"] for b in json.loads(capsys.readouterr().out)] == [ids[3]]
    assert env.cli("backup", "status", "--partner", "acme", "--json") == 0
    st = json.loads(capsys.readouterr().out)[agent.server_id]
    assert st["last_success"] is not None and not st["overdue"]
    assert env.cli("backup", "status", "--server", agent.server_id) == 0
    assert capsys.readouterr().out.startswith(f"{agent.server_id}\tok\t")


def test_openapi_lists_backup_endpoints(env: Env) -> None:
    async def get() -> dict:
        async with (
            aiohttp.ClientSession() as http,
            http.get(env.collector.url + "/api/v1/openapi.json") as r,
        ):
            return await r.json()

    paths = asyncio.run(get())["paths"]
    assert "put" in paths["/api/v1/agent/backups/uploads/{upload_id}"]
    assert "get" in paths["/api/v1/servers/{server_id}/backups/{backup_id}/object"]


def test_signed_recipient_list_is_stored_and_forwarded(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from protocol import recipient_list

    partner = Ed25519PrivateKey.generate()
    r1 = str(x25519.Identity.generate().to_public())
    extra = str(x25519.Identity.generate().to_public())
    assert env.cli("recovery-key", "add", "--partner", "acme", "--extra", extra) == 0
    signed = recipient_list.sign([r1], partner, 2000.0)
    capsys.readouterr()
    assert env.cli("recovery-key", "add", "--partner", "acme", signed) == 0
    out = capsys.readouterr()
    assert recipient_list.key_fingerprint(partner) in out.out
    assert extra in out.err and "not in the signed list" in out.err  # pinned agents refuse
    # damaged, or older than the stored one: refused in one line
    assert env.cli("recovery-key", "add", "--partner", "acme", signed[:-4] + "AAAA") == 1
    older = recipient_list.sign([r1, extra], partner, 1000.0)
    capsys.readouterr()
    assert env.cli("recovery-key", "add", "--partner", "acme", older) == 1
    assert "newer signed recipient list" in capsys.readouterr().err
    assert env.cli("recovery-key", "list", "--partner", "acme", "--json") == 0
    assert {r["recipient"] for r in json.loads(capsys.readouterr().out)} == {r1, extra}

    agent = enroll_agent(env.collector.url, env.acme.token, "rec-signed")
    seen: list[AgentSettings] = []

    async def first() -> None:
        client = agent.client(env.collector.url, on_settings=seen.append)
        status, _ = await full_upload(client, envelope(agent, b"abc", 1), b"abc")
        assert status == 201
        await client.close()

    asyncio.run(first())
    assert seen[-1].backup_recipient_list == signed
    assert sorted(seen[-1].backup_recipients) == sorted([r1, extra])


def test_chunks_signed_without_their_body_hash(env: Env) -> None:
    """The collector offers ``chunk_body_bound``: chunks signed with ``BODY_IN_ENVELOPE``
    are taken (the archive's signed SHA-256 binds their bytes: altered ones are refused at
    ``complete``); the marker is refused on any other request, and chunks signed over
    their body's hash (older agents) are still taken."""
    agent = enroll_agent(env.collector.url, env.acme.token, "rec-bound")
    data = os.urandom(3 * CHUNK)

    async def put(client: CollectorClient, upload_id: str, offset: int, body: bytes, **kw):
        return await client.request(
            "PUT",
            f"/api/v1/agent/backups/uploads/{upload_id}",
            body,
            "application/octet-stream",
            params={"offset": offset},
            **kw,
        )

    async def go() -> None:
        client = agent.client(env.collector.url)
        bound = {"body_digest": ra.BODY_IN_ENVELOPE}
        # not an upload chunk: the marker does not stand for a body
        r = await client.request("POST", "/api/v1/agent/backups", envelope(agent, data, 1), **bound)
        assert (r.status, r.json()["error"]) == (401, "bad_signature")
        r = await client.request("POST", "/api/v1/agent/backups", envelope(agent, data, 1))
        opened = r.json()
        assert r.status == 201 and opened["chunk_body_bound"] is True
        uid = opened["upload_id"]
        r = await put(client, uid, 0, data[:CHUNK], **bound)
        assert (r.status, r.json()["offset"]) == (200, CHUNK)
        r = await put(client, uid, CHUNK, data[CHUNK : 2 * CHUNK])  # signed over its hash
        assert (r.status, r.json()["offset"]) == (200, 2 * CHUNK)
        altered = bytearray(data[2 * CHUNK :])
        altered[7] ^= 1  # as if changed on the way: the HMAC does not see it
        r = await put(client, uid, 2 * CHUNK, bytes(altered), **bound)
        assert r.status == 200
        r = await client.request("POST", f"/api/v1/agent/backups/uploads/{uid}/complete")
        assert (r.status, r.json()["error"]) == (422, "hash_mismatch")
        # the same bytes unaltered, bound: stored
        status, body = await full_upload_bound(client, envelope(agent, data, 2), data)
        assert status == 201, body
        await client.close()

    async def full_upload_bound(client: CollectorClient, env_bytes: bytes, body: bytes):
        r = await client.request("POST", "/api/v1/agent/backups", env_bytes)
        uid, offset = r.json()["upload_id"], r.json()["offset"]
        while offset < len(body):
            r = await put(
                client, uid, offset, body[offset : offset + CHUNK], body_digest=ra.BODY_IN_ENVELOPE
            )
            assert r.status == 200, r.body
            offset = r.json()["offset"]
        r = await client.request("POST", f"/api/v1/agent/backups/uploads/{uid}/complete")
        return r.status, r.json()

    asyncio.run(go())
    assert len(listed(env, agent)) == 1
