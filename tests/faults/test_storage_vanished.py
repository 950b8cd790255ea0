"""The collector tells the truth about its storage: a deleted data directory, a full disk
while running, a start on a full disk. ``/healthz`` answers 503 naming each failed check,
writes are refused with a reason, the failure and the recovery are each logged once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.enrolled import enroll_agent
from harness.net import http, wait_until
from harness.signed import signed_headers
from tests.faults.inject import fill

SMALL = """
[collector]
report_reserve = "4MiB"
storage_check_interval_s = 1
"""


def health(url: str) -> tuple[int, dict]:
    status, _, body = http("GET", url + "/healthz")
    return status, json.loads(body)


@pytest.mark.sqlite_only  # the database file is in the data directory
def test_deleted_data_directory_is_unhealthy_and_refuses_reports(make_collector, tmp_path: Path):
    data = tmp_path / "data"
    c = make_collector(SMALL, data_dir=data)
    _, token = c.partner("acme")
    agent = enroll_agent(c.url, token)
    assert agent.send_report()[0] == 200

    shutil.rmtree(data)

    status, body = health(c.url)
    assert status == 503, body
    assert {"data_dir", "database_file"} <= set(body["failed"])
    assert "deleted" in body["checks"]["data_dir"]["detail"]
    for _ in range(3):
        got, answer = agent.send_report()
        assert got == 503, answer
        assert answer["error"] == "storage_unavailable"
        assert "deleted" in answer["message"]
    log = c.log()
    assert log.count("health check data_dir failed") == 1, log


def test_full_disk_refuses_writes_and_recovers(make_collector, tmpfs, tmp_path):
    disk = tmpfs(tmp_path / "disk", "32m")
    c = make_collector(SMALL, data_dir=disk / "data")
    key, token = c.partner("acme")
    agent = enroll_agent(c.url, token)
    assert agent.send_report()[0] == 200

    filler = fill(disk, 1024 * 1024)
    _, body = wait_until(
        lambda: (h := health(c.url))[0] == 503 and h, what="/healthz to fail on a full disk"
    )
    assert "disk_space" in body["failed"], body
    got, answer = agent.send_report()
    assert got == 503 and answer["error"] == "storage_unavailable", answer
    assert "report reserve" in answer["message"]
    assert c.api(key, "/api/v1/servers")[0] == 200  # reads go on

    filler.unlink()
    wait_until(lambda: health(c.url)[0] == 200, what="/healthz to recover")
    assert agent.send_report()[0] == 200
    log = c.log()
    assert log.count("health check disk_space failed") == 1, log
    assert log.count("health check disk_space is ok again") == 1, log


@pytest.mark.sqlite_only  # the database file is in the data directory
def test_starts_on_a_full_disk_serves_reads_and_refuses_writes(make_collector, tmpfs, tmp_path):
    disk = tmpfs(tmp_path / "disk", "32m")
    c = make_collector(SMALL, data_dir=disk / "data")
    key, token = c.partner("acme")
    agent = enroll_agent(c.url, token)
    assert agent.send_report()[0] == 200
    wait_until(lambda: (disk / "data" / ".vigil-ballast").exists(), what="the ballast file")
    c.stop()

    filler = fill(disk, 0)
    c.start(healthy=False)

    status, body = health(c.url)
    assert status == 503 and "disk_space" in body["failed"], body
    got, servers = c.api(key, "/api/v1/servers")
    assert got == 200 and servers["count"] == 1
    got, answer = agent.send_report()
    assert got == 503 and answer["error"] == "storage_unavailable", answer
    log = c.log()
    assert "disk I/O error" not in log, log
    assert log.count("disk is full") == 1, log

    filler.unlink()
    wait_until(lambda: health(c.url)[0] == 200, what="/healthz to recover")
    assert agent.send_report()[0] == 200


def test_vanished_object_store_refuses_uploads_not_reports(make_collector, tmp_path: Path):
    data = tmp_path / "data"
    c = make_collector(SMALL, data_dir=data)
    _, token = c.partner("acme")
    agent = enroll_agent(c.url, token)
    shutil.rmtree(data / "backups")

    # the heartbeat and the store's probe run at most once a second for /healthz
    _, body = wait_until(lambda: (h := health(c.url))[0] == 503 and h, what="/healthz to fail")
    assert body["failed"] == ["object_store"], body
    assert "deleted" in body["checks"]["object_store"]["detail"]
    agent.open_session()
    status, _, out = http(
        "POST",
        c.url + "/api/v1/agent/backups",
        b"{}",
        signed_headers(agent.session, "POST", "/api/v1/agent/backups", b"{}"),
    )
    answer = json.loads(out)
    assert status == 503 and answer["error"] == "storage_unavailable", answer
    assert "object_store" in answer["message"]
    assert agent.send_report()[0] == 200
