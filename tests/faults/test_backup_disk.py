"""Backups cannot take the disk from reports: staged uploads count against a quota,
uploads stop at their own (larger) reserve, no temporary link outlives an object, and a
download the client closes early is a line of information, not an error."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

from collector.backups.config import backup_config
from collector.backups.limits import DEFAULT_UPLOAD_TTL_S
from collector.backups.objectstore import LocalObjectStore
from harness.enrolled import EnrolledAgent, enroll_agent
from harness.net import wait_until
from tests.faults.inject import fill, rename
from tests.faults.uploads import envelope, upload

CHUNK = 64 * 1024


def run_upload(
    agent: EnrolledAgent, data: bytes, seq: int, chunk: int = CHUNK, complete: bool = True
):
    async def go():
        client = agent.client()
        try:
            return await upload(client, envelope(agent, data, seq), data, chunk, complete)
        finally:
            await client.close()

    return asyncio.run(go())


def test_staged_uploads_count_against_the_quota(make_collector, tmp_path: Path):
    c = make_collector(
        '[backup]\nchunk_size = "64KiB"\nstaging_quota = "256KiB"\n', data_dir=tmp_path / "data"
    )
    _, token = c.partner("acme")
    first = enroll_agent(c.url, token, "rec-01")
    second = enroll_agent(c.url, token, "rec-02")
    # a half-finished upload holds 192 KiB of the quota...
    answers = run_upload(first, os.urandom(512 * 1024), 1, complete=False)
    answers = answers[:4]
    assert [a.status for a in answers] == [201, 200, 200, 200]
    # ...so the next server's upload stops at the quota, with a clear code and Retry-After
    answers = run_upload(second, os.urandom(256 * 1024), 1)
    refused = answers[-1]
    assert refused.status == 507, refused
    assert refused.body["error"] == "staging_quota_exceeded"
    assert int(refused.headers["Retry-After"]) > 0
    assert second.send_report()[0] == 200  # reports are not touched


def test_uploads_stop_at_their_reserve_while_reports_go_on(make_collector, tmpfs, tmp_path):
    disk = tmpfs(tmp_path / "disk", "40m")
    c = make_collector(
        '[collector]\nreport_reserve = "2MiB"\nstorage_check_interval_s = 1\n'
        '[backup]\nchunk_size = "64KiB"\nupload_reserve = "16MiB"\n',
        data_dir=disk / "data",
    )
    _, token = c.partner("acme")
    agent = enroll_agent(c.url, token)
    fill(disk, 8 * 1024 * 1024)  # between the two reserves

    answers = run_upload(agent, os.urandom(256 * 1024), 1)
    assert answers[0].status == 507, answers[0]
    assert answers[0].body["error"] == "backup_space_low"
    assert "reports are still accepted" in answers[0].body["message"]
    assert int(answers[0].headers["Retry-After"]) > 0
    assert agent.send_report()[0] == 200


def test_uploads_expire_within_hours_by_default():
    cfg = backup_config({})
    assert cfg.limits.upload_ttl_s == DEFAULT_UPLOAD_TTL_S <= 6 * 3600
    assert backup_config({"backup": {"staging_quota": "1GiB"}}).limits.staging_quota == 1 << 30


def _hidden(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if p.is_file()]


def test_repeated_put_of_one_staged_file_leaves_no_hidden_link(tmp_path: Path):
    """A retried completion stores the same staged file again: rename() between two links
    of one file does nothing, and used to leave the temporary link behind."""
    store = LocalObjectStore(tmp_path / "objects")
    staged = tmp_path / "staged.part"
    staged.write_bytes(os.urandom(300_000))

    async def go() -> None:
        await store.put_file("srv/b1.age", staged)
        await store.put_file("srv/b1.age", staged)  # the retry
        assert _hidden(store.root) == []
        staged.unlink()
        await store.delete("srv/b1.age")

    asyncio.run(go())
    assert _hidden(store.root) == [] and list(store.root.rglob("*.age")) == []


def test_delete_takes_the_objects_temporary_links_with_it(tmp_path: Path):
    store = LocalObjectStore(tmp_path / "objects")

    async def go() -> None:
        await store.put_bytes("srv/b2.age", b"x" * 1000)
        final = store.root / "srv" / "b2.age"
        os.link(final, final.parent / ".tmp-0123456789abcdef-b2.age")  # an interrupted put
        await store.delete("srv/b2.age")

    asyncio.run(go())
    assert _hidden(store.root) == []


def test_download_closed_early_is_an_info_line(make_collector, tmp_path: Path):
    c = make_collector('[backup]\nchunk_size = "1MiB"\n', data_dir=tmp_path / "data")
    key, token = c.partner("acme")
    agent = enroll_agent(c.url, token)
    data = os.urandom(24 * 1024 * 1024)
    answers = run_upload(agent, data, 1, chunk=1024 * 1024)
    assert answers[-1].status == 201, answers[-1]

    with socket.create_connection(("127.0.0.1", c.port)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(
            f"GET /api/v1/servers/{agent.server_id}/backups/latest/object HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\r\n".encode()
        )
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(0.2)  # the collector is mid-stream, its socket buffer full
    wait_until(lambda: "closed by the client" in c.log(), what="the early close to be logged")
    log = c.log()
    line = next(ln for ln in log.splitlines() if "closed by the client" in ln)
    assert " INFO " in line, line
    assert "Traceback" not in log and " ERROR " not in log, log


def test_retried_completion_leaves_no_hidden_link(make_collector, tmp_path: Path):
    """The first completion stores the object, then its database write fails (the table
    it writes is renamed away); the agent's retry stores the same staged file again."""
    data_dir = tmp_path / "data"
    c = make_collector('[backup]\nchunk_size = "64KiB"\n', data_dir=data_dir)
    _, token = c.partner("acme")
    agent = enroll_agent(c.url, token)
    data = os.urandom(300 * 1024)
    answers = run_upload(agent, data, 1, complete=False)
    upload_id = answers[0].body["upload_id"]
    assert answers[-1].status == 200

    async def complete() -> int:
        client = agent.client()
        try:
            path = f"/api/v1/agent/backups/uploads/{upload_id}/complete"
            return (await client.request("POST", path)).status
        finally:
            await client.close()

    rename(data_dir / "vigil.db", "backup_sequences", "backup_sequences_away")
    assert asyncio.run(complete()) == 503
    rename(data_dir / "vigil.db", "backup_sequences_away", "backup_sequences")
    assert asyncio.run(complete()) == 201
    objects = data_dir / "backups"
    assert [p.name for p in objects.rglob("*.age")], "the object is stored"
    assert _hidden(objects) == []
