"""The upload protocol's collector side, in process: checks, resume, verified storage."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path

import msgspec
import pytest

from collector.backups import catalog, promise
from collector.backups.errors import BackupRefused
from collector.backups.handlers import api_error
from collector.backups.objectstore import LocalObjectStore, ObjectStore
from collector.backups.service import BackupLimits, BackupService
from collector.entitlements import Entitlement
from collector.http.errors import ApiError
from protocol import backup_envelope as be

from .conftest import Fleet

CHUNK = 64 * 1024


def service(fleet: Fleet, store: ObjectStore | None = None, **kw: object) -> BackupService:
    store = store or LocalObjectStore(fleet.data_dir / "backups")
    return BackupService(
        fleet.db, store, fleet.data_dir, BackupLimits(chunk_size=CHUNK, max_size=1 << 30), **kw
    )


def run(coro):
    return asyncio.run(coro)


async def upload(svc: BackupService, server_id: str, env: bytes, data: bytes, pub: bytes) -> dict:
    _, opened = await svc.begin(server_id, pub, env)
    offset = opened["offset"]
    while offset < len(data):
        offset = await svc.put_chunk(
            server_id, opened["upload_id"], offset, data[offset : offset + CHUNK]
        )
    return await svc.complete(server_id, opened["upload_id"])


def refused(coro) -> ApiError:
    """The HTTP answer the collector gives to the service's refusal."""
    with pytest.raises(BackupRefused) as info:
        run(coro)
    return api_error(info.value)


def listed(fleet: Fleet, server_id: str) -> list[catalog.Backup]:
    return fleet.db.read_sync(lambda c: catalog.list_backups(c, server_id))


def test_full_upload_is_stored_verified(fleet: Fleet) -> None:
    a = fleet.agents["srv-a"]
    data = os.urandom(5 * CHUNK + 123)
    svc = service(fleet)
    body = run(upload(svc, a.server_id, a.envelope(data), data, a.public_key))
    assert body["seq"] == 1
    rows = listed(fleet, a.server_id)
    assert [(r.id, r.status, r.size, r.kind) for r in rows] == [
        (body["backup_id"], "verified", len(data), "full")
    ]
    obj = fleet.data_dir / "backups" / a.server_id / f"{body['backup_id']}.age"
    assert obj.read_bytes() == data
    env = be.decode((obj.parent / f"{body['backup_id']}.envelope.json").read_bytes())
    assert be.verify(env, a.public_key).ciphertext_sha256 == hashlib.sha256(data).hexdigest()
    assert list((fleet.data_dir / "uploads").iterdir()) == []  # staging cleaned


def test_resume_after_dropped_connection_and_restart(fleet: Fleet) -> None:
    """Three chunks in, the connection drops and the collector restarts (a new service,
    no hash state in memory): the agent asks for the offset, resumes, completes."""
    a = fleet.agents["srv-a"]
    data = os.urandom(6 * CHUNK)
    env = a.envelope(data)
    svc = service(fleet)

    async def first() -> str:
        _, opened = await svc.begin(a.server_id, a.public_key, env)
        off = 0
        for _ in range(3):
            off = await svc.put_chunk(
                a.server_id, opened["upload_id"], off, data[off : off + CHUNK]
            )
        return opened["upload_id"]

    upload_id = run(first())
    assert listed(fleet, a.server_id) == []  # a partial upload is never listed
    svc2 = service(fleet)

    async def resume() -> dict:
        created, again = await svc2.begin(a.server_id, a.public_key, env)
        assert not created and again["upload_id"] == upload_id and again["offset"] == 3 * CHUNK
        assert await svc2.upload_state(a.server_id, upload_id) == {
            "offset": 3 * CHUNK,
            "size": len(data),
        }
        with pytest.raises(BackupRefused) as mismatch:
            await svc2.put_chunk(a.server_id, upload_id, 0, data[:CHUNK])
        assert mismatch.value.code == "offset_mismatch"
        assert mismatch.value.extra == {"offset": 3 * CHUNK}
        off = 3 * CHUNK
        while off < len(data):
            off = await svc2.put_chunk(a.server_id, upload_id, off, data[off : off + CHUNK])
        return await svc2.complete(a.server_id, upload_id)

    body = run(resume())
    [row] = listed(fleet, a.server_id)
    assert row.sha256 == hashlib.sha256(data).hexdigest()
    # a retried complete whose answer was lost gets the same answer
    assert run(svc2.complete(a.server_id, upload_id)) == body


def test_unacknowledged_bytes_past_offset_are_cut(fleet: Fleet) -> None:
    """A chunk written to disk but never acknowledged (killed before the DB write) is
    rewritten from the acknowledged offset, not appended after."""
    a = fleet.agents["srv-a"]
    data = os.urandom(2 * CHUNK)
    svc = service(fleet)
    _, opened = run(svc.begin(a.server_id, a.public_key, a.envelope(data)))
    run(svc.put_chunk(a.server_id, opened["upload_id"], 0, data[:CHUNK]))
    part = fleet.data_dir / "uploads" / f"{opened['upload_id']}.part"
    with open(part, "ab") as fh:
        fh.write(b"garbage never acknowledged")
    svc2 = service(fleet)
    run(svc2.put_chunk(a.server_id, opened["upload_id"], CHUNK, data[CHUNK:]))
    stored = run(svc2.complete(a.server_id, opened["upload_id"]))
    assert [r.id for r in listed(fleet, a.server_id)] == [stored["backup_id"]]


def test_hash_mismatch_refused_and_discarded(fleet: Fleet) -> None:
    a = fleet.agents["srv-a"]
    data = os.urandom(2 * CHUNK)
    env = a.envelope(data)
    tampered = bytearray(data)
    tampered[CHUNK + 7] ^= 0x01  # one flipped bit in transit
    err = refused(upload(service(fleet), a.server_id, env, bytes(tampered), a.public_key))
    assert (err.status, err.code) == (422, "hash_mismatch")
    assert listed(fleet, a.server_id) == []
    assert fleet.db.read_sync(catalog.upload_ids) == set()
    assert list((fleet.data_dir / "uploads").iterdir()) == []


def test_truncated_upload_refused(fleet: Fleet) -> None:
    a = fleet.agents["srv-a"]
    data = os.urandom(3 * CHUNK)
    svc = service(fleet)

    async def go() -> tuple[int, dict]:
        _, opened = await svc.begin(a.server_id, a.public_key, a.envelope(data))
        await svc.put_chunk(a.server_id, opened["upload_id"], 0, data[:CHUNK])
        return await svc.complete(a.server_id, opened["upload_id"])

    err = refused(go())
    assert (err.status, err.code) == (422, "size_mismatch")
    assert listed(fleet, a.server_id) == []


def test_chunk_past_signed_size_refused(fleet: Fleet) -> None:
    a = fleet.agents["srv-a"]
    data = os.urandom(100)
    svc = service(fleet)
    _, opened = run(svc.begin(a.server_id, a.public_key, a.envelope(data)))
    err = refused(svc.put_chunk(a.server_id, opened["upload_id"], 0, data + b"extra"))
    assert (err.status, err.code) == (413, "too_large")
    err = refused(svc.put_chunk(a.server_id, opened["upload_id"], 0, os.urandom(CHUNK + 1)))
    assert err.status == 413


def test_replay_and_rollback_refused(fleet: Fleet) -> None:
    a = fleet.agents["srv-a"]
    svc = service(fleet)
    d1, d2 = os.urandom(1000), os.urandom(1000)
    env1 = a.envelope(d1, seq=5)
    run(upload(svc, a.server_id, env1, d1, a.public_key))
    # the same signed upload again (replay)
    err = refused(upload(svc, a.server_id, env1, d1, a.public_key))
    assert (err.status, err.code) == (409, "sequence_replay")
    # an older sequence number, validly signed (rollback)
    err = refused(upload(svc, a.server_id, a.envelope(d2, seq=4), d2, a.public_key))
    assert err.code == "sequence_replay"
    # an unchanged record takes a new seq too
    err = refused(
        svc.begin(a.server_id, a.public_key, a.envelope(kind="unchanged", seq=5, base_seq=5))
    )
    assert err.code == "sequence_replay"
    assert [r.seq for r in listed(fleet, a.server_id)] == [5]


def test_rollback_after_pruning_still_refused(fleet: Fleet) -> None:
    """The last accepted seq survives the rows: an old upload cannot come back."""
    a = fleet.agents["srv-a"]
    svc = service(fleet)
    d = os.urandom(100)
    run(upload(svc, a.server_id, a.envelope(d, seq=9), d, a.public_key))
    fleet.db.write_sync(lambda c: c.execute("DELETE FROM backups"))
    err = refused(svc.begin(a.server_id, a.public_key, a.envelope(d, seq=9)))
    assert err.code == "sequence_replay"


def test_newer_upload_replaces_unfinished_one(fleet: Fleet) -> None:
    """One open upload per server: opening seq 2 drops unfinished seq 1 (its staged
    bytes too), which can then no longer complete."""
    a = fleet.agents["srv-a"]
    svc = service(fleet)
    d1, d2 = os.urandom(500), os.urandom(500)

    async def go() -> None:
        _, o1 = await svc.begin(a.server_id, a.public_key, a.envelope(d1, seq=1))
        await svc.put_chunk(a.server_id, o1["upload_id"], 0, d1)
        await upload(svc, a.server_id, a.envelope(d2, seq=2), d2, a.public_key)
        with pytest.raises(BackupRefused) as info:
            await svc.complete(a.server_id, o1["upload_id"])
        assert info.value.code == "upload_not_found"

    run(go())
    assert [r.seq for r in listed(fleet, a.server_id)] == [2]
    assert not list((fleet.data_dir / "backups" / a.server_id).glob(".tmp-*"))
    stored = {p.name for p in (fleet.data_dir / "backups" / a.server_id).iterdir()}
    assert len(stored) == 2  # only seq 2's object and envelope
    assert list((fleet.data_dir / "uploads").iterdir()) == []


def test_signature_of_another_agent_refused(fleet: Fleet) -> None:
    a, b = fleet.agents["srv-a"], fleet.agents["srv-b"]
    d = os.urandom(100)
    env = a.envelope(d, signer=b.key)  # names srv-a, signed with srv-b's key
    err = refused(service(fleet).begin(a.server_id, a.public_key, env))
    assert (err.status, err.code) == (400, "envelope_invalid")


def test_header_swapped_between_servers_refused(fleet: Fleet) -> None:
    """srv-b's validly signed envelope, uploaded by srv-a (or edited to name srv-a)."""
    a, b = fleet.agents["srv-a"], fleet.agents["srv-b"]
    d = os.urandom(100)
    env_b = b.envelope(d)
    err = refused(service(fleet).begin(a.server_id, a.public_key, env_b))
    assert (err.status, err.code) == (400, "envelope_invalid")
    # the header edited to name srv-a: the signature no longer verifies
    decoded = be.decode(env_b)
    edited = be.Envelope(
        header=msgspec.structs.replace(decoded.header, server_id=a.server_id),
        signature=decoded.signature,
    )
    err = refused(service(fleet).begin(a.server_id, a.public_key, be.encode(edited)))
    assert err.code == "envelope_invalid"


def test_malformed_envelope_refused(fleet: Fleet) -> None:
    a = fleet.agents["srv-a"]
    for body in (b"", b"{", b'{"header": {}, "signature": "x"}', b"\xff" * 10):
        err = refused(service(fleet).begin(a.server_id, a.public_key, body))
        assert (err.status, err.code) == (400, "envelope_invalid")


def test_too_large_refused(fleet: Fleet) -> None:
    a = fleet.agents["srv-a"]
    env = a.envelope(b"", size=(1 << 30) + 1, sha256="0" * 64)
    err = refused(service(fleet).begin(a.server_id, a.public_key, env))
    assert (err.status, err.code) == (413, "too_large")


def test_not_entitled_refused_with_reason(fleet: Fleet) -> None:
    a = fleet.agents["srv-a"]
    from collector.backups.policy import BackupPolicy

    fleet.db.write_sync(
        lambda c: promise.store_policy(
            c, "partner", str(a.partner_id), BackupPolicy(interval_s=0), 0
        )
    )
    err = refused(service(fleet).begin(a.server_id, a.public_key, a.envelope(b"x")))
    assert (err.status, err.code) == (403, "backup_not_entitled")
    assert "interval 0" in err.message
    # a server override turns it back on for that server only
    fleet.db.write_sync(
        lambda c: promise.store_policy(c, "server", a.server_id, BackupPolicy(interval_s=3600), 0)
    )
    assert run(service(fleet).begin(a.server_id, a.public_key, a.envelope(b"x")))[0] is True
    b = fleet.agents["srv-b"]
    assert refused(service(fleet).begin(b.server_id, b.public_key, b.envelope(b"x"))).status == 403


def test_entitlement_hook_is_used(fleet: Fleet) -> None:
    a = fleet.agents["srv-a"]

    async def contract(db: object, server_id: str) -> Entitlement:
        return Entitlement(False, "no Maintenance & Support contract: online backup not included")

    err = refused(
        service(fleet, entitlement=contract).begin(a.server_id, a.public_key, a.envelope(b"x"))
    )
    assert err.status == 403 and "Maintenance" in err.message


def test_unchanged_record_counts_and_needs_a_stored_base(fleet: Fleet) -> None:
    a = fleet.agents["srv-a"]
    svc = service(fleet)
    d = os.urandom(1000)
    err = refused(
        svc.begin(a.server_id, a.public_key, a.envelope(kind="unchanged", seq=2, base_seq=1))
    )
    assert (err.status, err.code) == (409, "base_missing")
    run(upload(svc, a.server_id, a.envelope(d, seq=3), d, a.public_key))
    created, body = run(
        svc.begin(a.server_id, a.public_key, a.envelope(kind="unchanged", seq=4, base_seq=3))
    )
    assert created is True and body["status"] == "unchanged"
    rows = listed(fleet, a.server_id)
    assert [(r.seq, r.kind, r.base_seq) for r in rows] == [(3, "full", None), (4, "unchanged", 3)]
    # the base must be a full backup itself (what `vigil-backup restore` follows: one hop)
    err = refused(
        svc.begin(a.server_id, a.public_key, a.envelope(kind="unchanged", seq=5, base_seq=4))
    )
    assert err.code == "base_missing"
    # and an "unchanged" claim with another content digest than its base is refused
    other = a.envelope(kind="unchanged", seq=6, base_seq=3)
    doc = be.decode(other)
    forged = be.sign(msgspec.structs.replace(doc.header, content_digest="cd" * 32), a.key)
    err = refused(svc.begin(a.server_id, a.public_key, be.encode(forged)))
    assert (err.status, err.field) == (400, "header.content_digest")
    st = run(svc.status(a.server_id))
    assert st["last_success"] is not None and st["next_due"] == pytest.approx(
        st["last_success"] + 86400
    )


def test_runs_and_status(fleet: Fleet) -> None:
    a = fleet.agents["srv-a"]
    svc = service(fleet)
    now = time.time()
    run(
        svc.record_run(
            a.server_id,
            b'{"outcome": "ok", "started_at": %f, "finished_at": %f}' % (now - 100, now - 90),
        )
    )
    tail = "x" * 20000 + "pg_dump: connection refused"
    import json

    run(
        svc.record_run(
            a.server_id,
            json.dumps(
                {
                    "outcome": "failed",
                    "reason": tail,
                    "started_at": now - 10,
                    "finished_at": now - 5,
                }
            ).encode(),
        )
    )
    st = run(svc.status(a.server_id))
    # A run the agent reports as ok is not a backup the collector stored: it shows apart.
    assert st["last_success"] is None and st["last_reported_ok"] == pytest.approx(now - 90)
    assert st["last_failure"] == pytest.approx(now - 5)
    assert st["last_failure_reason"].endswith("pg_dump: connection refused")
    assert len(st["last_failure_reason"]) == 8192
    assert st["next_due"] == pytest.approx(now - 3600 + 86400)  # from enrollment
    assert st["state"] == "new" and st["interval_s"] == 86400 and st["window"] == ""
    for bad in (b"{}", b'{"outcome": "maybe", "started_at": 1, "finished_at": 2}', b"nope"):
        assert refused(svc.record_run(a.server_id, bad)).status == 400


def test_stale_uploads_expire(fleet: Fleet) -> None:
    a = fleet.agents["srv-a"]
    svc = service(fleet)
    data = os.urandom(1000)
    _, opened = run(svc.begin(a.server_id, a.public_key, a.envelope(data)))
    run(svc.put_chunk(a.server_id, opened["upload_id"], 0, data[:10]))
    assert run(svc.expire_uploads(time.time() + 3600)) == 0
    assert run(svc.expire_uploads(time.time() + 49 * 3600)) == 1
    assert fleet.db.read_sync(catalog.upload_ids) == set()
    assert list((fleet.data_dir / "uploads").iterdir()) == []
    err = refused(svc.upload_state(a.server_id, opened["upload_id"]))
    assert err.status == 404


def test_upload_of_another_server_is_not_found(fleet: Fleet) -> None:
    a, b = fleet.agents["srv-a"], fleet.agents["srv-b"]
    svc = service(fleet)
    _, opened = run(svc.begin(a.server_id, a.public_key, a.envelope(b"abc")))
    for coro in (
        svc.upload_state(b.server_id, opened["upload_id"]),
        svc.put_chunk(b.server_id, opened["upload_id"], 0, b"abc"),
        svc.complete(b.server_id, opened["upload_id"]),
    ):
        assert refused(coro).status == 404


def test_s3_store_end_to_end(fleet: Fleet, store_config: dict, tmp_path: Path) -> None:
    from collector.backups.objectstore import open_object_store

    a = fleet.agents["srv-a"]
    store = open_object_store(store_config, tmp_path)
    svc = service(fleet, store)
    data = os.urandom(3 * CHUNK)
    body = run(upload(svc, a.server_id, a.envelope(data), data, a.public_key))
    got = run(store.get_bytes(f"{a.server_id}/{body['backup_id']}.age"))
    assert got == data


def test_offset_moves_only_from_where_it_was(fleet: Fleet) -> None:
    """Two collector processes writing the same upload: the second offset move loses."""
    a = fleet.agents["srv-a"]
    svc = service(fleet)
    _, opened = run(svc.begin(a.server_id, a.public_key, a.envelope(b"x" * 100)))
    uid = opened["upload_id"]
    part = fleet.data_dir / "uploads" / f"{uid}.part"
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(b"x" * 10)  # the bytes the first process staged
    assert fleet.db.write_sync(lambda c: catalog.set_received(c, uid, 0, 10, 1.0))
    assert not fleet.db.write_sync(lambda c: catalog.set_received(c, uid, 0, 10, 1.0))
    assert run(svc.upload_state(a.server_id, uid))["offset"] == 10


def test_complete_racing_a_newer_backup_is_refused(fleet: Fleet) -> None:
    """seq 3 was stored while seq 2's bytes were being verified: 2 cannot land after it."""
    a = fleet.agents["srv-a"]
    svc = service(fleet)
    d2 = os.urandom(300)
    _, o2 = run(svc.begin(a.server_id, a.public_key, a.envelope(d2, seq=2)))
    run(svc.put_chunk(a.server_id, o2["upload_id"], 0, d2))
    now = time.time()
    fleet.db.write_sync(lambda c: catalog.accept_seq(c, a.server_id, 3, now))
    err = refused(svc.complete(a.server_id, o2["upload_id"]))
    assert err.code == "sequence_replay"
    assert listed(fleet, a.server_id) == []
    assert not [p for p in (fleet.data_dir / "backups").rglob("*") if p.is_file()]


def test_complete_of_a_dropped_upload_stores_nothing(fleet: Fleet) -> None:
    """The upload row vanished (a newer backup replaced it) between the hash check and
    the catalog write: its objects are removed, nothing is listed."""
    a = fleet.agents["srv-a"]
    svc = service(fleet)
    d = os.urandom(300)
    _, o = run(svc.begin(a.server_id, a.public_key, a.envelope(d, seq=2)))
    run(svc.put_chunk(a.server_id, o["upload_id"], 0, d))
    real_put = svc.store.put_bytes

    async def put_then_drop(key: str, data: bytes):
        info = await real_put(key, data)
        await fleet.db.write(lambda c: catalog.delete_upload(c, o["upload_id"]))
        return info

    svc.store.put_bytes = put_then_drop  # type: ignore[method-assign]
    err = refused(svc.complete(a.server_id, o["upload_id"]))
    assert err.code == "upload_superseded"
    assert listed(fleet, a.server_id) == []
    assert not [p for p in (fleet.data_dir / "backups").rglob("*") if p.is_file()]


def test_resume_where_the_staged_file_really_ends_after_a_power_loss(fleet: Fleet) -> None:
    """Chunks are not fsynced one by one: after a power loss the staged file can hold less
    than was acknowledged. The collector then offers the offset the file really has, the
    agent resends from there, and the object stored is whole and verified."""
    a = fleet.agents["srv-a"]
    data = os.urandom(4 * CHUNK)
    env = a.envelope(data)
    svc = service(fleet)

    async def go() -> tuple[int, dict, int]:
        _, opened = await svc.begin(a.server_id, a.public_key, env)
        uid = opened["upload_id"]
        offset = 0
        for _ in range(3):
            offset = await svc.put_chunk(a.server_id, uid, offset, data[offset : offset + CHUNK])
        part = fleet.data_dir / "uploads" / f"{uid}.part"
        os.truncate(part, CHUNK + 100)  # what a power loss could leave of 3 chunks
        again = service(fleet)  # the collector after its restart
        state = await again.upload_state(a.server_id, uid)
        with pytest.raises(BackupRefused) as stale:
            await again.put_chunk(a.server_id, uid, 3 * CHUNK, data[3 * CHUNK :])
        assert stale.value.code == "offset_mismatch"
        offset = state["offset"]
        while offset < len(data):
            offset = await again.put_chunk(a.server_id, uid, offset, data[offset : offset + CHUNK])
        body = await again.complete(a.server_id, uid)
        return body, state["offset"]

    body, resumed_at = run(go())
    assert resumed_at == CHUNK + 100
    assert [r.id for r in listed(fleet, a.server_id)] == [body["backup_id"]]
    obj = fleet.data_dir / "backups" / a.server_id / f"{body['backup_id']}.age"
    assert obj.read_bytes() == data


def test_streamed_upload_is_completed_by_its_final_envelope(fleet: Fleet) -> None:
    """Opened with a header without hash and size (the archive is still being written),
    completed with the same header signed again with them."""
    a = fleet.agents["srv-a"]
    data = os.urandom(3 * CHUNK + 7)
    t = time.time()
    head = be.BackupHeader(
        server_id=a.server_id, seq=1, created_at=t, recipients=["age1examplerecipient"]
    )
    provisional = be.encode(be.sign(head, a.key))
    svc = service(fleet)

    async def go(final: bytes) -> dict:
        _, opened = await svc.begin(a.server_id, a.public_key, provisional)
        offset = opened["offset"]
        while offset < len(data):
            offset = await svc.put_chunk(
                a.server_id, opened["upload_id"], offset, data[offset : offset + CHUNK]
            )
        return await svc.complete(a.server_id, opened["upload_id"], final, a.public_key)

    wrong_seq = a.envelope(data, seq=2, created_at=t)
    assert refused(go(wrong_seq)).code == "envelope_invalid"
    assert refused(go(b"")).code == "envelope_invalid"
    assert listed(fleet, a.server_id) == []
    body = run(go(a.envelope(data, seq=1, created_at=t)))
    assert body["seq"] == 1
    (row,) = listed(fleet, a.server_id)
    assert (row.status, row.size) == ("verified", len(data))
    obj = fleet.data_dir / "backups" / a.server_id / f"{body['backup_id']}.age"
    assert obj.read_bytes() == data
    env = be.decode((obj.parent / f"{body['backup_id']}.envelope.json").read_bytes())
    assert be.verify(env, a.public_key).ciphertext_size == len(data)
