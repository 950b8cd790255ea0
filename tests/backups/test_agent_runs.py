"""The agent's backup runs against the real collector over real sockets on 127.0.0.1: the
agent's own runner and client, a server enrolled with ``vigil-agent enroll``."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from pathlib import Path

import pytest

from agent.backup.config import BackupConfigError, default_threads, parse_backup_config
from agent.backup.state import PendingUpload, StateStore
from harness.net import wait_until
from protocol.backup_archive import generate_identity, read_identities
from recovery.extract import read_archive
from tests.backups.backup_site import CHUNK, BackupSite


def test_config_errors_name_the_key() -> None:
    ok = parse_backup_config(
        {"paths": ["/etc/vms", "/var/lib/*.db"], "exclude": ["*.tmp"], "pre_command": "dump -x"},
        "agent.toml",
    )
    assert ok.pre_command == ("dump", "-x") and ok.pre_command_timeout == 600
    bad = [
        ({"paths": "relative/path"}, "paths"),
        ({"paths": [1]}, "paths"),
        ({"exclude": {"a": 1}}, "exclude"),
        ({"pre_command": 5}, "pre_command"),
        ({"pre_command_timeout": "10"}, "pre_command_timeout"),
        ({"pre_command_timeout": -1}, "pre_command_timeout"),
        ({"pathz": ["/etc"]}, "pathz"),
        ({"threads": 0}, "threads"),
        ({"threads": "4"}, "threads"),
        ({"threads": True}, "threads"),
    ]
    for table, key in bad:
        with pytest.raises(BackupConfigError) as exc:
            parse_backup_config(table, "agent.toml")
        assert exc.value.key == key and "agent.toml" in str(exc.value)


def test_threads_default_to_half_the_cores_at_most_four() -> None:
    assert [default_threads(n) for n in (1, 2, 3, 4, 8, 9, 64)] == [1, 1, 1, 2, 4, 4, 4]
    assert parse_backup_config({}).threads == default_threads()
    assert parse_backup_config({"threads": 6}).threads == 6


def test_full_then_unchanged_then_changed(site: BackupSite, tree: Path, tmp_path: Path) -> None:
    secret, recipient = generate_identity()
    state = tmp_path / "state"
    runner, _ = site.runner(state, {"paths": [str(tree)]}, [recipient])
    progress: list[tuple[str, int, int]] = []
    first = site.run(runner.run_once(lambda *a: progress.append(a)))
    assert first.outcome == "ok", first.reason
    assert first.seq == 1 and first.backup_id
    assert any(p[0] == "files" for p in progress) and any(p[0] == "upload" for p in progress)
    [stored] = site.backups()
    assert stored["kind"] == "full" and stored["id"] == first.backup_id
    header = site.header(stored)
    read = read_archive(
        io.BytesIO(site.object(stored)), read_identities(secret), recipients=[recipient]
    )
    assert read.manifest.content_digest == header.content_digest

    # the unchanged tree is re-checked from the stat cache alone: no archive is written
    import agent.backup.runner as runner_module

    def no_archive(*a, **kw):
        raise AssertionError("an unchanged tree must not be archived again")

    real = runner_module._write_archive_file
    runner_module._write_archive_file = no_archive
    try:
        second = site.run(runner.run_once())
    finally:
        runner_module._write_archive_file = real
    assert second.outcome == "unchanged" and second.seq == 2
    latest = site.backups()[-1]
    assert latest["kind"] == "unchanged" and site.header(latest).base_seq == 1
    assert len([b for b in site.backups() if b["kind"] == "full"]) == 1

    # only the mtime changes (a re-export of identical data): still unchanged
    os.utime(tree / "etc" / "vms" / "agent.toml", (1, 1))
    third = site.run(runner.run_once())
    assert third.outcome == "unchanged", third.reason

    (tree / "etc" / "vms" / "agent.toml").write_text("[agent]\nname = 'changed'\n")
    fourth = site.run(runner.run_once())
    assert fourth.outcome == "ok" and fourth.seq == 4
    assert [r["outcome"] for r in site.runs()] == ["ok", "unchanged", "unchanged", "ok"]
    assert not list((state / "backup").glob("*.age*"))  # archives removed once stored
    status = runner.status()
    assert status["last_outcome"] == "ok" and status["last_full_seq"] == 4


def test_new_recipient_forces_full_backup(site: BackupSite, tree: Path, tmp_path: Path) -> None:
    _, r1 = generate_identity()
    _, r2 = generate_identity()
    runner, _ = site.runner(tmp_path / "s", {"paths": [str(tree)]}, [r1])
    assert site.run(runner.run_once()).outcome == "ok"
    site.set_recipients([r1, r2])  # the partner adds a key; the agent hears it next session
    runner2, _ = site.runner(tmp_path / "s", {"paths": [str(tree)]})
    again = site.run(runner2.run_once())
    assert again.outcome == "ok"
    latest = site.backups()[-1]
    assert latest["kind"] == "full" and site.header(latest).recipients == [r1, r2]


def test_pre_command_failure_keeps_output(site: BackupSite, tree: Path, tmp_path: Path) -> None:
    _, recipient = generate_identity()
    cmd = [
        sys.executable,
        "-c",
        "import sys; print('dumping ' * 900); sys.exit('export failed: disk')",
    ]
    runner, _ = site.runner(tmp_path / "s", {"paths": [str(tree)], "pre_command": cmd}, [recipient])
    out = site.run(runner.run_once())
    assert out.outcome == "failed"
    assert "exited with status 1" in out.reason and "export failed: disk" in out.reason
    assert site.runs()[-1]["outcome"] == "failed"
    assert "export failed: disk" in site.runs()[-1]["reason"]
    assert site.backups() == []


def test_pre_command_timeout(site: BackupSite, tree: Path, tmp_path: Path) -> None:
    _, recipient = generate_identity()
    cmd = [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"]
    runner, _ = site.runner(
        tmp_path / "s",
        {"paths": [str(tree)], "pre_command": cmd, "pre_command_timeout": 0.5},
        [recipient],
    )
    out = site.run(runner.run_once())
    assert out.outcome == "failed" and "timed out" in out.reason and "started" in out.reason
    assert site.runs()[-1]["outcome"] == "failed"


def test_missing_path_and_no_recipient_fail_with_reason(site: BackupSite, tmp_path: Path) -> None:
    runner, _ = site.runner(
        tmp_path / "s", {"paths": [str(tmp_path / "nope")]}, [generate_identity()[1]]
    )
    out = site.run(runner.run_once())
    assert out.outcome == "failed" and "not found" in out.reason
    runner2, _ = site.runner(tmp_path / "s2", {"paths": [str(tmp_path)]}, [])
    out2 = site.run(runner2.run_once())
    assert out2.outcome == "failed" and "recovery key" in out2.reason
    assert [r["outcome"] for r in site.runs()] == ["failed", "failed"]


def test_not_entitled_is_shown(site: BackupSite, tree: Path, tmp_path: Path) -> None:
    """Backups switched off for this server by the collector's policy (interval 0) after
    the agent last heard its settings: the upload is refused, and the agent says why."""
    runner, _ = site.runner(tmp_path / "s", {"paths": [str(tree)]}, [generate_identity()[1]])
    site.collector.cli("backup", "policy", "set", "--server", site.server_id, "--interval", "0")
    out = site.run(runner.run_once())
    assert out.outcome == "failed" and "switched off for this server" in out.reason
    status = runner.status()
    assert status["entitled"] is False and "switched off" in status["notice"]
    assert status["pending_upload"] is None
    assert site.backups() == []


def test_upload_resumes_after_dropped_connection(
    site: BackupSite, tree: Path, tmp_path: Path
) -> None:
    """The connection dies half-way through the third chunk (the proxy cuts it): the
    collector keeps only whole chunks, the agent asks where it stands and resumes there."""
    secret, recipient = generate_identity()
    (tree / "random.bin").write_bytes(os.urandom(400_000))
    runner, client = site.runner(tmp_path / "s", {"paths": [str(tree)]}, [recipient])
    # aiohttp sends an idempotent request once more on a fresh connection by itself: both
    # are cut, so the agent's own resume is what carries on
    site.proxy.cut(b"PUT ", skip=2, after=CHUNK // 2, times=2)
    out = site.run(runner.run_once())
    assert out.outcome == "ok", out.reason
    assert site.proxy.cuts == 2
    [stored] = site.backups()
    data = site.object(stored)
    assert len(data) == stored["size"]
    # the interrupted chunk was sent again from the collector's offset, not from zero
    puts = client.puts()
    offsets = [p.offset for p in puts]
    assert offsets[:4] == [0, CHUNK, 2 * CHUNK, 2 * CHUNK] and puts[2].status is None
    assert client.put_bytes() == stored["size"]
    assert sum(p.size for p in puts) == stored["size"] + CHUNK  # one chunk sent twice
    read_archive(io.BytesIO(data), read_identities(secret), recipients=[recipient])


def test_restart_resumes_pending_upload(site: BackupSite, tree: Path, tmp_path: Path) -> None:
    """The agent's connection is cut during its third chunk and it gives up (as after
    kill -9); a new runner on the same state directory resumes the same upload at the
    collector's offset."""
    _, recipient = generate_identity()
    state = tmp_path / "s"
    (tree / "random.bin").write_bytes(os.urandom(400_000))
    runner, client = site.runner(state, {"paths": [str(tree)]}, [recipient])
    runner.retry_delays = ()
    site.proxy.cut(b"PUT ", skip=2, times=2)  # and aiohttp's own second try
    out = site.run(runner.run_once())
    assert out.outcome == "failed" and "resumes" in out.reason
    pending = StateStore(state).load_pending()
    assert pending is not None and pending.offset == 2 * CHUNK
    sent_before = client.put_bytes()
    assert sent_before == 2 * CHUNK

    runner2, client2 = site.runner(state, {"paths": [str(tree)]})
    from protocol.messages import AgentSettings

    assert runner2.next_due(AgentSettings(backup_interval_s=86400), now=1000.0) == 1000.0
    out2 = site.run(runner2.run_once())
    assert out2.outcome == "ok" and out2.seq == pending.seq and "resumed" in out2.reason
    [stored] = site.backups()
    assert client2.put_bytes() == stored["size"] - sent_before
    assert client2.puts()[0].offset == 2 * CHUNK
    assert site.header(stored).seq == pending.seq
    assert StateStore(state).load_pending() is None


def test_never_two_runs_at_once(site: BackupSite, tree: Path, tmp_path: Path) -> None:
    _, recipient = generate_identity()
    state = tmp_path / "s"
    runner, _ = site.runner(state, {"paths": [str(tree)]}, [recipient])

    async def both():
        return await asyncio.gather(runner.run_once(), runner.run_once())

    a, b = site.run(both())
    assert sorted([a.outcome, b.outcome]) == ["busy", "ok"]
    # another process holding the lock file
    with StateStore(state).run_lock() as got:
        assert got
        runner2, _ = site.runner(state, {"paths": [str(tree)]})
        assert site.run(runner2.run_once()).outcome == "busy"
    assert [r["outcome"] for r in site.runs()] == ["ok"]


AGENT_SCRIPT = """
import asyncio, msgspec
from pathlib import Path
from agent.backup.config import parse_backup_config
from agent.backup.runner import BackupRunner
from agent.client import CollectorClient
from agent.identity import load_identity
ident, key = load_identity(Path({state!r}))
client = CollectorClient(ident.collector_url, ident.server_id, key)
runner = BackupRunner(
    parse_backup_config({{"paths": [{tree!r}]}}), Path({state!r}), key, ident.server_id, client
)
client.on_settings = lambda s: runner.apply(msgspec.structs.replace(s, backup_streaming=False))


async def main():
    await client.open_session()
    await runner.run_once()


asyncio.run(main())
"""


def test_kill_9_mid_upload_then_resume(site: BackupSite, tree: Path, tmp_path: Path) -> None:
    """An agent process (the enrolled identity, the agent's runner and client) is killed
    with SIGKILL while its fourth chunk is held on the wire; a runner on its state
    directory resumes the upload."""
    import signal
    import subprocess

    secret, recipient = generate_identity()
    site.set_recipients([recipient])
    (tree / "random.bin").write_bytes(os.urandom(600_000))
    site.proxy.hold(b"PUT ", skip=3)
    state = site.agent.state_dir
    script = AGENT_SCRIPT.format(state=str(state), tree=str(tree))
    proc = subprocess.Popen([sys.executable, "-c", script])

    def held_at_the_fourth_chunk() -> PendingUpload | None:
        assert proc.poll() is None, "agent exited before it was killed"
        found = StateStore(state).load_pending() if (state / "backup").exists() else None
        return found if found is not None and found.offset >= 3 * CHUNK else None

    try:
        pending = wait_until(held_at_the_fourth_chunk, 60, 0.05, "three chunks acknowledged")
        assert pending.offset == 3 * CHUNK
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    assert site.backups() == []  # nothing half-stored
    site.proxy.release()

    runner, client = site.runner(state, {"paths": [str(tree)]})
    out = site.run(runner.run_once())
    assert out.outcome == "ok" and out.seq == pending.seq, out.reason
    [stored] = site.backups()
    # resumed at the collector's offset: every byte was sent exactly once
    assert client.puts()[0].offset == 3 * CHUNK
    assert 3 * CHUNK + client.put_bytes() == stored["size"]
    data = site.object(stored)
    read_archive(io.BytesIO(data), read_identities(secret), recipients=[recipient])


def test_stale_partial_archive_is_removed(site: BackupSite, tree: Path, tmp_path: Path) -> None:
    _, recipient = generate_identity()
    state = tmp_path / "s"
    runner, _ = site.runner(state, {"paths": [str(tree)]}, [recipient])
    stale = state / "backup" / "backup-7.age.part"
    stale.write_bytes(b"left by a killed run")
    assert site.run(runner.run_once()).outcome == "ok"
    assert not stale.exists()


def test_progress_printer_shows_files_and_bytes(
    site: BackupSite, tree: Path, tmp_path: Path
) -> None:
    from agent.backup.progress import ProgressPrinter

    out = io.StringIO()
    printer = ProgressPrinter(out, interval_s=0.0)
    runner, _ = site.runner(tmp_path / "s", {"paths": [str(tree)]}, [generate_identity()[1]])
    assert site.run(runner.run_once(printer)).outcome == "ok"
    text = out.getvalue()
    assert "files " in text and "read " in text and "upload " in text
    last = text.strip().splitlines()[-1]
    assert "files 7/7" in last  # regular files in the tree


def test_sequence_replay_recovers(site: BackupSite, tree: Path, tmp_path: Path) -> None:
    """A state directory lost or restored from an old copy (or the machine enrolled again)
    numbers backups the collector already has. The collector's refusal names its last
    number and the same archive is signed again after it; a refusal without that number
    (an older collector) fails the run, reported, and numbering moves on by one per run."""
    _, recipient = generate_identity()
    first_state, second_state = tmp_path / "first", tmp_path / "lost"
    runner, _ = site.runner(first_state, {"paths": [str(tree)]}, [recipient])
    for _ in range(3):
        (tree / "etc" / "vms" / "agent.toml").write_text(f"[agent]\nname = '{_}'\n")
        assert site.run(runner.run_once()).outcome == "ok"
    (tree / "etc" / "vms" / "agent.toml").write_text("[agent]\nname = 'again'\n")
    runner2, _ = site.runner(second_state, {"paths": [str(tree)]})
    second = site.run(runner2.run_once())
    assert second.outcome == "ok" and second.seq == 4, second.reason
    assert [r["outcome"] for r in site.runs()] == ["ok", "ok", "ok", "ok"]
    assert [b["seq"] for b in site.backups()] == [1, 2, 3, 4]


def test_sequence_replay_without_the_last_number_moves_on() -> None:
    """The refusal of an older collector (no ``last_seq``): numbering moves on by one."""
    from agent.backup import upload
    from agent.backup.runner import _last_seq_hint

    bare = upload.UploadRefused(409, "sequence_replay", "seq 1 already used", {})
    hinted = upload.UploadRefused(409, "sequence_replay", "seq 1 already used", {"last_seq": 41})
    assert _last_seq_hint(bare) is None and _last_seq_hint(hinted) == 41


def test_upload_while_the_archive_is_written(site: BackupSite, tree: Path, tmp_path: Path) -> None:
    """The collector accepts streamed uploads: the upload opens before the archive is
    finished (no hash, no size in the first header) and the final envelope completes it;
    every byte is sent once."""
    secret, recipient = generate_identity()
    (tree / "random.bin").write_bytes(os.urandom(400_000))
    runner, client = site.runner(
        tmp_path / "s", {"paths": [str(tree)]}, [recipient], streaming=True
    )
    out = site.run(runner.run_once())
    assert out.outcome == "ok", out.reason
    [stored] = site.backups()
    opened = [s for s in client.sent if s.method == "POST" and s.path.endswith("/backups")]
    completes = [s for s in client.sent if s.path.endswith("/complete")]
    assert len(opened) == 1 and len(completes) == 1 and completes[0].size > 0
    data = site.object(stored)
    assert site.header(stored).ciphertext_size == len(data)
    assert client.put_bytes() == len(data) == sum(p.size for p in client.puts())
    read_archive(io.BytesIO(data), read_identities(secret), recipients=[recipient])


def test_streamed_upload_refused_at_the_end_falls_back(
    site: BackupSite, tree: Path, tmp_path: Path
) -> None:
    """'complete' never gets through (the proxy cuts each one, three in a row): the
    finished archive is sent again the usual way, with its hash in the first header."""
    secret, recipient = generate_identity()
    runner, client = site.runner(
        tmp_path / "s", {"paths": [str(tree)]}, [recipient], streaming=True
    )
    site.proxy.cut(b"/complete ", times=3)
    out = site.run(runner.run_once())
    assert out.outcome == "ok", out.reason
    [stored] = site.backups()
    completes = [s for s in client.sent if s.path.endswith("/complete")]
    assert [c.status for c in completes[:3]] == [None, None, None]
    assert completes[-1].status == 201 and completes[-1].size == 0  # the usual way
    assert site.header(stored).ciphertext_sha256 is not None
    read_archive(io.BytesIO(site.object(stored)), read_identities(secret), recipients=[recipient])


def test_streamed_upload_waits_for_the_collector_to_complete(
    site: BackupSite, tree: Path, tmp_path: Path
) -> None:
    """The collector is away when the archive is done (the proxy cuts two 'complete's):
    'complete' is tried again, and the upload is not sent a second time."""
    secret, recipient = generate_identity()
    runner, client = site.runner(
        tmp_path / "s", {"paths": [str(tree)]}, [recipient], streaming=True
    )
    site.proxy.cut(b"/complete ", times=2)
    out = site.run(runner.run_once())
    assert out.outcome == "ok", out.reason
    [stored] = site.backups()
    completes = [s for s in client.sent if s.path.endswith("/complete")]
    assert [c.status for c in completes] == [None, None, 201]
    data = site.object(stored)
    assert client.put_bytes() == len(data) == sum(p.size for p in client.puts())
    read_archive(io.BytesIO(data), read_identities(secret), recipients=[recipient])


@pytest.mark.parametrize("streaming", [False, True])
def test_a_full_disk_fails_the_run_clearly_and_the_next_one_goes_through(
    site: BackupSite, tmp_path: Path, tmpfs, streaming: bool
) -> None:
    """The archive file fills the agent's disk: the run fails saying so, leaves no part of
    the archive behind, and once there is room the next run stores a whole backup."""
    import subprocess

    src = tmp_path / "src"
    src.mkdir()
    (src / "export.bin").write_bytes(os.urandom(3 << 20))  # incompressible: 3 MiB archived
    secret, recipient = generate_identity()
    state = tmpfs(tmp_path / "state", "2m")
    runner, _ = site.runner(state, {"paths": [str(src)]}, [recipient], streaming=streaming)
    failed = site.run(runner.run_once())
    assert failed.outcome == "failed"
    assert f"could not write the archive in {state}" in failed.reason
    assert "No space left on device" in failed.reason
    assert not list(state.glob("backup-*.age*"))
    grown = subprocess.run(
        ["mount", "-o", "remount,size=16m", str(state)], capture_output=True, text=True
    )
    assert grown.returncode == 0, grown.stderr
    done = site.run(runner.run_once())
    assert done.outcome == "ok", done.reason
    [stored] = site.backups()
    assert stored["id"] == done.backup_id
    read = read_archive(
        io.BytesIO(site.object(stored)), read_identities(secret), recipients=[recipient]
    )
    assert read.manifest.content_digest == site.header(stored).content_digest
    assert stored["size"] > 3 << 20  # the whole export, not what fitted before
