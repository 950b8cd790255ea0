"""Policy parsing and inheritance (server override > partner default > built-in)."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.backups import catalog, promise
from collector.backups.policy import (
    DEFAULTS,
    BackupPolicy,
    effective,
    format_duration,
)
from collector.backups.settings import agent_backup_settings
from collector.durations import parse_interval
from collector.health import servers
from protocol import recipient_list
from protocol.backup_window import check_window

from .conftest import Fleet
from .test_uploads import run


def test_durations() -> None:
    assert parse_interval("24h") == 86400
    assert parse_interval("1d12h") == 129600
    assert parse_interval("90m") == 5400
    assert parse_interval("0") == 0
    assert parse_interval(" 2w ") == 14 * 86400
    for bad in ("", "soon", "1x", "h1", "-1h", "1.5h"):
        with pytest.raises(ValueError):
            parse_interval(bad)
    assert format_duration(129600) == "1d12h" and format_duration(0) == "0"


def test_windows() -> None:
    assert check_window("01:00-05:00") == "01:00-05:00"
    assert check_window("22:00-04:00") == "22:00-04:00"  # across midnight
    assert check_window("") == ""
    for bad in ("1:00-5:00", "25:00-01:00", "01:00-01:00", "01:00", "01:60-02:00"):
        with pytest.raises(ValueError):
            check_window(bad)


def test_inheritance_field_by_field() -> None:
    partner = BackupPolicy(interval_s=43200, keep_daily=30)
    server = BackupPolicy(window="01:00-03:00", keep_daily=3)
    p = effective(partner, server)
    assert (p.interval_s, p.window, p.keep_daily, p.keep_last) == (
        43200,
        "01:00-03:00",
        3,
        DEFAULTS.keep_last,
    )
    assert effective(None, None) == DEFAULTS
    assert effective(None, BackupPolicy(interval_s=0)).interval_s == 0


def test_agent_settings_from_policy_and_recipients(fleet: Fleet) -> None:
    a, c = fleet.agents["srv-a"], fleet.agents["srv-c"]
    r1 = "age1qkuv8nrypqd5wxylfdfn60hnm2v0wdfvwklj83mf95xz5h75qcnqe5e8dq"
    fleet.db.write_sync(lambda x: catalog.add_recipient(x, a.partner_id, r1, "recovery", "", 1))
    fleet.db.write_sync(
        lambda x: promise.store_policy(
            x, "partner", str(a.partner_id), BackupPolicy(interval_s=3600, window="02:00-04:00"), 1
        )
    )
    got = run(agent_backup_settings(fleet.db, a.server_id))
    assert got == {
        "backup_interval_s": 3600,
        "backup_window": "02:00-04:00",
        "backup_recipients": [r1],
        "backup_recipient_list": "",
        "backup_entitled": True,
    }
    # the partner's signed list is forwarded as given; an older one does not replace it
    signer = Ed25519PrivateKey.generate()
    newer = recipient_list.sign([r1], signer, 2000.0)
    older = recipient_list.sign([r1], signer, 1000.0)
    fp = recipient_list.key_fingerprint(signer)
    assert fleet.db.write_sync(
        lambda x: catalog.put_recipient_list(x, a.partner_id, newer, fp, 2000.0, 3)
    )
    assert not fleet.db.write_sync(
        lambda x: catalog.put_recipient_list(x, a.partner_id, older, fp, 1000.0, 4)
    )
    got = run(agent_backup_settings(fleet.db, a.server_id))
    assert got["backup_recipient_list"] == newer
    assert recipient_list.verify(got["backup_recipient_list"], fp).recipients == [r1]
    other = run(agent_backup_settings(fleet.db, c.server_id))  # another partner: defaults
    assert other["backup_recipients"] == [] and other["backup_interval_s"] == 86400
    fleet.db.write_sync(
        lambda x: promise.store_policy(x, "server", a.server_id, BackupPolicy(interval_s=0), 1)
    )
    got = run(agent_backup_settings(fleet.db, a.server_id))
    assert got["backup_interval_s"] == 0 and got["backup_entitled"] is False
    # setting one field keeps the others of the same row
    fleet.db.write_sync(
        lambda x: promise.store_policy(x, "server", a.server_id, BackupPolicy(keep_last=9), 1)
    )
    row = fleet.db.read_sync(lambda x: catalog.get_policy(x, "server", a.server_id))
    assert row == BackupPolicy(interval_s=0, keep_last=9)
    assert run(agent_backup_settings(fleet.db, "nope"))["backup_entitled"] is False


def test_fleet_status_matches_per_server_status(fleet: Fleet) -> None:
    from collector.backups.status import backup_status, fleet_backup_status

    from .test_uploads import service, upload

    a, b = fleet.agents["srv-a"], fleet.agents["srv-b"]
    svc = service(fleet)
    run(upload(svc, a.server_id, a.envelope(b"data"), b"data", a.public_key))
    for i, outcome in enumerate(("ok", "failed", "failed")):
        body = json.dumps(
            {"outcome": outcome, "reason": f"r{i}", "started_at": 1000 + i, "finished_at": 2000 + i}
        ).encode()
        run(svc.record_run(b.server_id, body))
    fleet.db.write_sync(
        lambda x: promise.store_policy(x, "server", b.server_id, BackupPolicy(interval_s=600), 1)
    )
    now = 1_800_000_000.0
    every = fleet.db.read_sync(lambda x: fleet_backup_status(x, now=now))
    assert set(every) == {"srv-a", "srv-b", "srv-c"}
    for sid in every:
        assert every[sid] == fleet.db.read_sync(lambda x, s=sid: backup_status(x, s, now))
    assert every["srv-b"]["last_failure_reason"] == "r2" and every["srv-b"]["overdue"]
    # The agent's ok run at 2000 stored nothing: due from enrollment, shown apart.
    enrolled = fleet.db.read_sync(lambda x: servers.brief(x, "srv-b")["enrolled_at"])
    assert every["srv-b"]["next_due"] == enrolled + 600
    assert every["srv-b"]["last_reported_ok"] == 2000 and every["srv-b"]["last_success"] is None
    acme = fleet.db.read_sync(lambda x: fleet_backup_status(x, a.partner_id, now=now))
    assert set(acme) == {"srv-a", "srv-b"}
