"""Uploads staged in the object store, in process: two services with their own data
directories stand for two collector processes sharing the database and the store (S3 on
moto's server on 127.0.0.1, and a local store directory both can reach)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from collector.backups import catalog
from collector.backups.errors import BackupRefused
from collector.backups.handlers import api_error
from collector.backups.objectstore import ObjectStore, open_object_store
from collector.backups.service import BackupLimits, BackupService
from collector.backups.staging import open_staging
from collector.backups.staging_objects import PREFIX, SWEEP_GRACE_S
from harness.s3 import new_bucket, s3_config

from .conftest import Fleet

CHUNK = 64 * 1024


@pytest.fixture(params=["s3", "local"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> dict:
    """The ``[backup.storage]`` every "process" of a test opens."""
    if request.param == "local":
        return {"kind": "local", "path": str(tmp_path / "shared-objects")}
    endpoint = request.getfixturevalue("moto_endpoint")
    return s3_config(endpoint, new_bucket(endpoint))


def process(fleet: Fleet, config: dict, name: str, **limits: int) -> BackupService:
    """A collector process's backup service: its own data directory and store client."""
    data_dir = fleet.data_dir.parent / name
    store = open_object_store(config, data_dir)
    return BackupService(
        fleet.db,
        store,
        data_dir,
        BackupLimits(chunk_size=CHUNK, max_size=1 << 30, **limits),
        staging=open_staging("store", store, data_dir),
    )


def run(coro):
    return asyncio.run(coro)


async def staged_keys(store: ObjectStore) -> list[str]:
    return [o.key for o in await store.list(PREFIX)]


async def send(svc: BackupService, server_id: str, uid: str, data: bytes, start: int) -> int:
    offset = start
    while offset < len(data):
        offset = await svc.put_chunk(server_id, uid, offset, data[offset : offset + CHUNK])
    return offset


def refusal(exc_info: pytest.ExceptionInfo[BackupRefused]) -> tuple[int, str]:
    err = api_error(exc_info.value)
    return err.status, err.code


def test_another_process_resumes_and_completes(fleet: Fleet, shared_store: dict) -> None:
    """Process A acknowledges two chunks and is gone; process B, with another data
    directory, offers the same offset, takes the rest and stores the backup whole."""
    a = fleet.agents["srv-a"]
    data = os.urandom(5 * CHUNK + 77)
    first, second = process(fleet, shared_store, "a"), process(fleet, shared_store, "b")

    async def go() -> tuple[dict, int, list[str]]:
        _, opened = await first.begin(a.server_id, a.public_key, a.envelope(data))
        uid = opened["upload_id"]
        await first.put_chunk(a.server_id, uid, 0, data[:CHUNK])
        await first.put_chunk(a.server_id, uid, CHUNK, data[CHUNK : 2 * CHUNK])
        during = await staged_keys(second.store)
        state = await second.upload_state(a.server_id, uid)
        await send(second, a.server_id, uid, data, state["offset"])
        return await second.complete(a.server_id, uid), state["offset"], during

    body, resumed_at, during = run(go())
    assert resumed_at == 2 * CHUNK
    assert len(during) == 2  # one object per acknowledged chunk, in the shared store
    assert not list(first.uploads_dir.iterdir())  # nothing of it on A's own disk
    got = run(second.store.get_bytes(f"{a.server_id}/{body['backup_id']}.age"))
    assert got == data
    rows = fleet.db.read_sync(lambda c: catalog.list_backups(c, a.server_id))
    assert [(r.id, r.status) for r in rows] == [(body["backup_id"], "verified")]
    assert run(staged_keys(second.store)) == []
    assert not list(second.uploads_dir.iterdir())
    if shared_store["kind"] == "local":  # no directory left behind per upload either
        assert not list((Path(shared_store["path"]) / PREFIX).iterdir())
    assert fleet.db.read_sync(catalog.staged_chunk_keys) == set()


def _staged_upload(svc: BackupService, agent, data: bytes) -> tuple[str, list[str]]:
    async def go() -> tuple[str, list[str]]:
        _, opened = await svc.begin(agent.server_id, agent.public_key, agent.envelope(data))
        await send(svc, agent.server_id, opened["upload_id"], data, 0)
        return opened["upload_id"], await staged_keys(svc.store)

    return run(go())


def _nothing_catalogued(fleet: Fleet, svc: BackupService, server_id: str) -> None:
    assert fleet.db.read_sync(lambda c: catalog.list_backups(c, server_id)) == []
    assert fleet.db.read_sync(catalog.upload_ids) == set()
    assert run(svc.store.list(f"{server_id}/")) == []
    assert run(staged_keys(svc.store)) == []


def test_corrupted_staged_chunk_is_refused_before_the_object_is_catalogued(
    fleet: Fleet, shared_store: dict
) -> None:
    """A staged chunk changed in the store (one bit) after it was acknowledged: the bytes
    read back on complete do not hash to the signed SHA-256, nothing is stored."""
    a = fleet.agents["srv-a"]
    data = os.urandom(3 * CHUNK)
    svc = process(fleet, shared_store, "a")
    uid, keys = _staged_upload(svc, a, data)
    damaged = bytearray(run(svc.store.get_bytes(keys[1])))
    damaged[100] ^= 0x01
    run(svc.store.put_bytes(keys[1], bytes(damaged)))
    with pytest.raises(BackupRefused) as info:
        run(process(fleet, shared_store, "b").complete(a.server_id, uid))
    assert refusal(info) == (422, "hash_mismatch")
    _nothing_catalogued(fleet, svc, a.server_id)


def test_lost_staged_chunk_is_refused(fleet: Fleet, shared_store: dict) -> None:
    a = fleet.agents["srv-a"]
    data = os.urandom(3 * CHUNK)
    svc = process(fleet, shared_store, "a")
    uid, keys = _staged_upload(svc, a, data)
    run(svc.store.delete(keys[2]))
    with pytest.raises(BackupRefused) as info:
        run(svc.complete(a.server_id, uid))
    assert refusal(info) == (422, "size_mismatch")
    _nothing_catalogued(fleet, svc, a.server_id)


def test_unacknowledged_chunks_never_replace_acknowledged_ones(
    fleet: Fleet, shared_store: dict
) -> None:
    """A process whose offset move lost (or that was killed before it) staged other bytes
    at an acknowledged offset and at the next one: the upload completes with the bytes
    that were acknowledged, and the sweep removes the strays once they are old."""
    a = fleet.agents["srv-a"]
    data = os.urandom(3 * CHUNK)
    first, second = process(fleet, shared_store, "a"), process(fleet, shared_store, "b")

    async def go() -> tuple[dict, int, list[str]]:
        _, opened = await first.begin(a.server_id, a.public_key, a.envelope(data))
        uid = opened["upload_id"]
        await first.put_chunk(a.server_id, uid, 0, data[:CHUNK])
        await second.staging.write(uid, 0, os.urandom(CHUNK))  # the racer that lost
        await second.staging.write(uid, CHUNK, os.urandom(CHUNK))  # killed before its ack
        await send(first, a.server_id, uid, data, CHUNK)
        swept = await second.expire_uploads(time.time() + SWEEP_GRACE_S + 60)
        left = await staged_keys(first.store)
        return await second.complete(a.server_id, uid), swept, left

    body, expired, left = run(go())
    assert expired == 0
    acknowledged = fleet.db.read_sync(catalog.staged_chunk_keys)
    assert acknowledged == set()  # completed: rows gone with the upload
    assert len(left) == 3  # the strays were swept; the three acknowledged chunks stayed
    got = run(first.store.get_bytes(f"{a.server_id}/{body['backup_id']}.age"))
    assert got == data


def test_abandoned_uploads_and_orphan_chunks_are_swept(fleet: Fleet, shared_store: dict) -> None:
    """An upload idle past the TTL goes with its staged chunks; chunk objects of an upload
    whose row is gone (a process killed right after the catalog write) go after the grace
    period; the chunks of a live upload stay."""
    a, b = fleet.agents["srv-a"], fleet.agents["srv-b"]
    svc = process(fleet, shared_store, "a")
    old = os.urandom(2 * CHUNK)
    idle_uid, _ = _staged_upload(svc, a, old)
    fleet.db.write_sync(
        lambda c: c.execute(
            "UPDATE backup_uploads SET updated_at = ? WHERE id = ?",
            (time.time() - 7 * 3600, idle_uid),
        )
    )
    live = os.urandom(2 * CHUNK)

    async def go() -> tuple[int, list[str], list[str]]:
        _, opened = await svc.begin(b.server_id, b.public_key, b.envelope(live))
        await svc.put_chunk(b.server_id, opened["upload_id"], 0, live[:CHUNK])
        await svc.store.put_bytes(f"{PREFIX}{'f' * 24}/000000000000000-0000.chunk", b"orphan")
        expired = await svc.expire_uploads()
        after_expiry = await staged_keys(svc.store)
        await svc.expire_uploads(time.time() + SWEEP_GRACE_S + 60)
        return expired, after_expiry, await staged_keys(svc.store)

    expired, after_expiry, after_grace = run(go())
    assert expired == 1
    assert not [k for k in after_expiry if idle_uid in k]  # went with the expired row
    assert len(after_expiry) == 2  # the live chunk, and the orphan still in its grace
    live_keys = fleet.db.read_sync(catalog.staged_chunk_keys)
    assert set(after_grace) == live_keys and len(live_keys) == 1


def test_staging_quota_holds_across_processes(fleet: Fleet, shared_store: dict) -> None:
    """The quota counts what the database says is staged, whichever process staged it;
    a refused chunk puts no object."""
    a, b = fleet.agents["srv-a"], fleet.agents["srv-b"]
    first = process(fleet, shared_store, "a", staging_quota=3 * CHUNK)
    second = process(fleet, shared_store, "b", staging_quota=3 * CHUNK)
    da, db_ = os.urandom(2 * CHUNK), os.urandom(2 * CHUNK)

    async def go() -> tuple[int, list[str]]:
        _, oa = await first.begin(a.server_id, a.public_key, a.envelope(da))
        await send(first, a.server_id, oa["upload_id"], da, 0)
        _, ob = await second.begin(b.server_id, b.public_key, b.envelope(db_))
        at = await second.put_chunk(b.server_id, ob["upload_id"], 0, db_[:CHUNK])
        with pytest.raises(BackupRefused) as info:
            await second.put_chunk(b.server_id, ob["upload_id"], at, db_[at:])
        assert refusal(info) == (507, "staging_quota_exceeded")
        return at, await staged_keys(second.store)

    at, keys = run(go())
    assert at == CHUNK
    assert len(keys) == 3


def test_complete_finished_by_another_process_meanwhile(fleet: Fleet, shared_store: dict) -> None:
    """The agent's retried complete reached process A while B was still storing the same
    upload: both answer with the one backup, whose objects stay."""
    a = fleet.agents["srv-a"]
    data = os.urandom(2 * CHUNK)
    first, second = process(fleet, shared_store, "a"), process(fleet, shared_store, "b")
    uid, _ = _staged_upload(first, a, data)
    real_put = second.store.put_bytes
    answers: list[dict] = []

    async def put_then_other_completes(key: str, payload: bytes):
        info = await real_put(key, payload)
        answers.append(await first.complete(a.server_id, uid))
        return info

    second.store.put_bytes = put_then_other_completes  # type: ignore[method-assign]
    answers.append(run(second.complete(a.server_id, uid)))
    assert answers[0] == answers[1]
    rows = fleet.db.read_sync(lambda c: catalog.list_backups(c, a.server_id))
    assert [r.id for r in rows] == [answers[0]["backup_id"]]
    got = run(first.store.get_bytes(f"{a.server_id}/{answers[0]['backup_id']}.age"))
    assert got == data
