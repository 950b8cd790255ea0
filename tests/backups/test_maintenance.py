"""Pruning (kill -9 safe ordering) and the integrity pass (bit rot found before a restore)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from collector.backups import catalog, maintenance, promise
from collector.backups.objectstore import ObjectStore, open_object_store
from collector.backups.policy import BackupPolicy

from .conftest import Fleet
from .test_uploads import run, service, upload

DAY = 86400.0


def _fill(fleet: Fleet, store: ObjectStore, server: str, days: int) -> list[str]:
    """One full backup a day for ``days`` days, ending today."""
    a = fleet.agents[server]
    svc = service(fleet, store)
    ids = []
    now = time.time()
    for i in range(days):
        data = os.urandom(2000)
        env = a.envelope(data, created_at=now - (days - 1 - i) * DAY)
        ids.append(run(upload(svc, a.server_id, env, data, a.public_key))["backup_id"])
    return ids


def _keys(store: ObjectStore) -> set[str]:
    return {o.key for o in run(store.list())}


def test_prune_applies_policy_and_deletes_objects(
    fleet: Fleet, store_config: dict, tmp_path: Path
) -> None:
    store = open_object_store(store_config, tmp_path)
    ids = _fill(fleet, store, "srv-a", 6)
    other = _fill(fleet, store, "srv-c", 2)
    fleet.db.write_sync(
        lambda c: promise.store_policy(
            c,
            "server",
            "srv-a",
            BackupPolicy(keep_last=2, keep_daily=0, keep_weekly=0, keep_monthly=0),
            0,
        )
    )
    dry = run(maintenance.prune(fleet.db, store, dry_run=True))
    assert {e["backup_id"] for e in dry.removed} == set(ids[:4])
    assert len(_keys(store)) == 16  # dry run touched nothing
    report = run(maintenance.prune(fleet.db, store))
    assert {e["backup_id"] for e in report.removed} == set(ids[:4])
    assert [b.id for b in fleet.db.read_sync(lambda c: catalog.list_backups(c, "srv-a"))] == ids[4:]
    keys = _keys(store)
    assert keys == {f"srv-a/{i}.age" for i in ids[4:]} | {
        f"srv-a/{i}.envelope.json" for i in ids[4:]
    } | {f"srv-c/{i}.age" for i in other} | {f"srv-c/{i}.envelope.json" for i in other}
    run(store.close())


def test_prune_finishes_after_a_crash_between_mark_and_delete(fleet: Fleet, tmp_path: Path) -> None:
    store = open_object_store({"path": str(tmp_path / "objects")}, tmp_path)
    ids = _fill(fleet, store, "srv-a", 3)
    # as if a prune was killed right after marking: rows marked, objects still there
    fleet.db.write_sync(lambda c: catalog.set_status(c, ids[0], "pruning", "retention policy"))
    listed = fleet.db.read_sync(lambda c: catalog.list_backups(c, "srv-a"))
    assert ids[0] not in {b.id for b in listed}  # no longer listed
    # and an object already deleted for another marked row (killed mid-way)
    fleet.db.write_sync(lambda c: catalog.set_status(c, ids[1], "pruning", "retention policy"))
    run(store.delete(f"srv-a/{ids[1]}.age"))
    report = run(maintenance.prune(fleet.db, store))
    assert {e["backup_id"] for e in report.removed} == {ids[0], ids[1]}
    assert _keys(store) == {f"srv-a/{ids[2]}.age", f"srv-a/{ids[2]}.envelope.json"}


def _flip_bit(store_config: dict, store: ObjectStore, key: str, tmp_path: Path) -> None:
    data = bytearray(run(store.get_bytes(key)))
    data[len(data) // 2] ^= 0x10
    if store_config["kind"] == "local":
        path = Path(store_config["path"]).joinpath(*key.split("/"))
        path.write_bytes(bytes(data))  # in place, as the disk would
    else:
        run(store.put_bytes(key, bytes(data)))


def test_integrity_pass_finds_a_flipped_bit(
    fleet: Fleet, store_config: dict, tmp_path: Path
) -> None:
    store = open_object_store(store_config, tmp_path)
    ids = _fill(fleet, store, "srv-a", 3)
    report = run(maintenance.check_integrity(fleet.db, store))
    assert (report.checked, report.ok, report.corrupt) == (3, 3, [])
    _flip_bit(store_config, store, f"srv-a/{ids[1]}.age", tmp_path)
    run(store.delete(f"srv-a/{ids[2]}.envelope.json"))
    report = run(maintenance.check_integrity(fleet.db, store))
    damaged = {e["backup_id"]: e["reason"] for e in report.corrupt}
    assert damaged == {
        ids[1]: "object SHA-256 differs from the signed header",
        ids[2]: "envelope missing",
    }
    rows = {b.id: b for b in fleet.db.read_sync(lambda c: catalog.list_backups(c, "srv-a"))}
    assert rows[ids[1]].status == "corrupt" and rows[ids[0]].status == "verified"
    # each damaged backup is a notification event, written with its status, and only once
    run(maintenance.check_integrity(fleet.db, store))
    events = fleet.db.read_sync(
        lambda c: c.execute("SELECT kind, dedup_key FROM notify_events ORDER BY id").fetchall()
    )
    assert [tuple(e) for e in events] == [
        ("backup.integrity", f"backup-integrity:{ids[1]}"),
        ("backup.integrity", f"backup-integrity:{ids[2]}"),
    ]
    # a corrupt backup is no longer "latest verified": retention keeps ids[0] as well
    fleet.db.write_sync(
        lambda c: promise.store_policy(
            c,
            "server",
            "srv-a",
            BackupPolicy(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0),
            0,
        )
    )
    run(maintenance.prune(fleet.db, store))
    left = [b.id for b in fleet.db.read_sync(lambda c: catalog.list_backups(c, "srv-a"))]
    assert left == [ids[0]]
    run(store.close())


def test_integrity_pass_finds_truncation_and_loss(fleet: Fleet, tmp_path: Path) -> None:
    cfg = {"kind": "local", "path": str(tmp_path / "objects")}
    store = open_object_store(cfg, tmp_path)
    ids = _fill(fleet, store, "srv-a", 2)
    path = tmp_path / "objects" / "srv-a" / f"{ids[0]}.age"
    path.write_bytes(path.read_bytes()[:-1])
    (tmp_path / "objects" / "srv-a" / f"{ids[1]}.age").unlink()
    report = run(maintenance.check_integrity(fleet.db, store))
    reasons = {e["backup_id"]: e["reason"] for e in report.corrupt}
    assert reasons[ids[0]].startswith("object size 1999")
    assert reasons[ids[1]] == "object missing"


def test_rolling_integrity_checks_only_due_objects(fleet: Fleet, tmp_path: Path) -> None:
    store = open_object_store({"path": str(tmp_path / "o")}, tmp_path)
    _fill(fleet, store, "srv-a", 2)
    now = time.time()
    assert run(maintenance.check_integrity(fleet.db, store, older_than_s=7 * DAY)).checked == 0
    later = now + 8 * DAY
    assert (
        run(maintenance.check_integrity(fleet.db, store, older_than_s=7 * DAY, now=later)).checked
        == 2
    )


def test_no_key_able_to_decrypt_in_data_dir_or_database(fleet: Fleet, tmp_path: Path) -> None:
    """After recipients are registered and backups stored, nothing the collector keeps is
    an age identity: only ``age1…`` recipients."""
    from pyrage import x25519

    from collector.backups.recipients import RecipientInvalid, check_recipient

    identity = x25519.Identity.generate()
    secret = str(identity)
    assert secret.startswith("AGE-SECRET-KEY-")
    a = fleet.agents["srv-a"]
    try:
        check_recipient(secret)
        raise AssertionError("a private identity was accepted")
    except RecipientInvalid as exc:
        assert "private" in str(exc)
    recipient = check_recipient(str(identity.to_public()))
    fleet.db.write_sync(
        lambda c: catalog.add_recipient(c, a.partner_id, recipient, "recovery", "", time.time())
    )
    store = open_object_store({}, fleet.data_dir)
    _fill(fleet, store, "srv-a", 2)
    found = []
    for path in fleet.data_dir.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            if b"AGE-SECRET-KEY-" in blob.upper():
                found.append(path)
    assert found == []
    dump = "\n".join(
        str(tuple(r))
        for table in ("backup_recipients", "backups", "backup_uploads")
        for r in fleet.db.read_sync(lambda c, t=table: c.execute(f"SELECT * FROM {t}").fetchall())
    )
    assert recipient in dump and "AGE-SECRET-KEY" not in dump.upper()


def test_age1_recipients_validated() -> None:
    from collector.backups.recipients import RecipientInvalid, check_recipient

    good = "age1qkuv8nrypqd5wxylfdfn60hnm2v0wdfvwklj83mf95xz5h75qcnqe5e8dq"
    assert check_recipient(f"  {good}\n") == good
    for bad in (good[:-1] + "x", "age1", "ssh-ed25519 AAAA", "", good.upper()[:10]):
        try:
            check_recipient(bad)
        except RecipientInvalid:
            continue
        raise AssertionError(f"accepted {bad!r}")


def test_periodic_round_expires_prunes_and_checks(
    fleet: Fleet, store_config: dict, tmp_path: Path
) -> None:
    from aiohttp import web

    from collector.backups import handlers
    from collector.backups.service import BackupLimits
    from collector.http.appkeys import DB

    store = open_object_store(store_config, tmp_path)
    ids = _fill(fleet, store, "srv-a", 3)
    a = fleet.agents["srv-a"]
    svc = service(fleet, store)
    _, opened = run(svc.begin(a.server_id, a.public_key, a.envelope(b"y" * 50)))
    fleet.db.write_sync(
        lambda c: promise.store_policy(
            c,
            "partner",
            str(a.partner_id),
            BackupPolicy(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0),
            0,
        )
    )
    app = web.Application()
    app[DB] = fleet.db
    app[handlers.STORE] = store
    app[handlers.BACKUPS] = svc
    app[handlers._CONFIG] = handlers.BackupConfig(storage=store_config, limits=BackupLimits())
    _flip_bit(store_config, store, f"srv-a/{ids[2]}.age", tmp_path)
    run(handlers.run_maintenance(app, now=time.time() + 8 * DAY))
    rows = fleet.db.read_sync(lambda c: catalog.list_backups(c, "srv-a"))
    assert [(b.id, b.status) for b in rows] == [(ids[2], "corrupt")]  # pruned, then checked
    assert fleet.db.read_sync(catalog.upload_ids) == set()  # the idle upload expired
    assert opened["upload_id"] not in {k.split("/")[-1].split(".")[0] for k in _keys(store)}
    run(store.close())


def test_backup_config_table() -> None:
    import pytest

    from collector.backups.config import backup_config
    from collector.config import ConfigError

    cfg = backup_config({})
    assert cfg.limits.max_size == 4 * 2**30 and cfg.limits.chunk_size == 8 * 2**20
    assert cfg.limits.upload_ttl_s == 6 * 3600 and cfg.storage == {}
    cfg = backup_config(
        {
            "backup": {
                "max_size": "1GiB",
                "upload_ttl": "2d",
                "integrity_every": "0",
                "storage": {"kind": "s3", "bucket": "b"},
            }
        }
    )
    assert cfg.limits.max_size == 2**30 and cfg.limits.upload_ttl_s == 2 * DAY
    assert cfg.integrity_every_s == 0 and cfg.storage["bucket"] == "b"
    for bad in (
        {"chunk_size": "16MiB"},
        {"upload_ttl": "soon"},
        {"maintenance_interval": "0"},
        {"max_size": "lots"},
        {"storage": "s3"},
    ):
        with pytest.raises(ConfigError):
            backup_config({"backup": bad})
