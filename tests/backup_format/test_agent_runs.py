"""The agent's backup runs against a fake collector over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from pathlib import Path

import pytest
from agent_helpers import enroll, make_runner

from agent.backup.config import BackupConfigError, default_threads, parse_backup_config
from agent.backup.state import StateStore
from protocol import backup_envelope
from protocol.backup_archive import generate_identity, read_identities
from recovery.extract import read_archive


def run(coro):
    return asyncio.run(coro)


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


def test_full_then_unchanged_then_changed(collector, tree: Path, tmp_path: Path) -> None:
    secret, recipient = generate_identity()
    key = enroll(collector)
    state = tmp_path / "state"
    runner, _ = make_runner(collector, state, key, {"paths": [str(tree)]}, [recipient])
    progress: list[tuple[str, int, int]] = []
    first = run(runner.run_once(lambda *a: progress.append(a)))
    assert first.outcome == "ok", first.reason
    assert first.seq == 1 and first.backup_id
    assert any(p[0] == "files" for p in progress) and any(p[0] == "upload" for p in progress)
    stored = collector.backups[-1]
    assert stored.obj is not None and stored.header.kind == "full"
    read = read_archive(io.BytesIO(stored.obj), read_identities(secret), recipients=[recipient])
    assert read.manifest.content_digest == stored.header.content_digest

    # the unchanged tree is re-checked from the stat cache alone: no archive is written
    import agent.backup.runner as runner_module

    def no_archive(*a, **kw):
        raise AssertionError("an unchanged tree must not be archived again")

    real = runner_module._write_archive_file
    runner_module._write_archive_file = no_archive
    try:
        second = run(runner.run_once())
    finally:
        runner_module._write_archive_file = real
    assert second.outcome == "unchanged" and second.seq == 2
    assert collector.backups[-1].header.kind == "unchanged"
    assert collector.backups[-1].header.base_seq == 1
    assert len([b for b in collector.backups if b.obj is not None]) == 1

    # only the mtime changes (a re-export of identical data): still unchanged
    os.utime(tree / "etc" / "vms" / "agent.toml", (1, 1))
    third = run(runner.run_once())
    assert third.outcome == "unchanged", third.reason

    (tree / "etc" / "vms" / "agent.toml").write_text("[agent]\nname = 'changed'\n")
    fourth = run(runner.run_once())
    assert fourth.outcome == "ok" and fourth.seq == 4
    assert [r["outcome"] for r in collector.runs] == ["ok", "unchanged", "unchanged", "ok"]
    assert not list((state / "backup").glob("*.age*"))  # archives removed once stored
    status = runner.status()
    assert status["last_outcome"] == "ok" and status["last_full_seq"] == 4


def test_new_recipient_forces_full_backup(collector, tree: Path, tmp_path: Path) -> None:
    _, r1 = generate_identity()
    _, r2 = generate_identity()
    key = enroll(collector)
    runner, _ = make_runner(collector, tmp_path / "s", key, {"paths": [str(tree)]}, [r1])
    assert run(runner.run_once()).outcome == "ok"
    from protocol.messages import AgentSettings

    runner.apply(AgentSettings(backup_interval_s=3600, backup_recipients=[r1, r2]))
    again = run(runner.run_once())
    assert again.outcome == "ok"
    assert collector.backups[-1].header.recipients == [r1, r2]


def test_pre_command_failure_keeps_output(collector, tree: Path, tmp_path: Path) -> None:
    _, recipient = generate_identity()
    key = enroll(collector)
    cmd = [
        sys.executable,
        "-c",
        "import sys; print('dumping ' * 900); sys.exit('export failed: disk')",
    ]
    runner, _ = make_runner(
        collector, tmp_path / "s", key, {"paths": [str(tree)], "pre_command": cmd}, [recipient]
    )
    out = run(runner.run_once())
    assert out.outcome == "failed"
    assert "exited with status 1" in out.reason and "export failed: disk" in out.reason
    assert collector.runs[-1]["outcome"] == "failed"
    assert "export failed: disk" in collector.runs[-1]["reason"]
    assert collector.backups == []


def test_pre_command_timeout(collector, tree: Path, tmp_path: Path) -> None:
    _, recipient = generate_identity()
    key = enroll(collector)
    cmd = [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"]
    runner, _ = make_runner(
        collector,
        tmp_path / "s",
        key,
        {"paths": [str(tree)], "pre_command": cmd, "pre_command_timeout": 0.5},
        [recipient],
    )
    out = run(runner.run_once())
    assert out.outcome == "failed" and "timed out" in out.reason and "started" in out.reason
    assert collector.runs[-1]["outcome"] == "failed"


def test_missing_path_and_no_recipient_fail_with_reason(collector, tmp_path: Path) -> None:
    key = enroll(collector)
    runner, _ = make_runner(
        collector,
        tmp_path / "s",
        key,
        {"paths": [str(tmp_path / "nope")]},
        [generate_identity()[1]],
    )
    out = run(runner.run_once())
    assert out.outcome == "failed" and "not found" in out.reason
    runner2, _ = make_runner(collector, tmp_path / "s2", key, {"paths": [str(tmp_path)]}, [])
    out2 = run(runner2.run_once())
    assert out2.outcome == "failed" and "recovery key" in out2.reason
    assert [r["outcome"] for r in collector.runs] == ["failed", "failed"]


def test_not_entitled_is_shown(collector, tree: Path, tmp_path: Path) -> None:
    key = enroll(collector)
    collector.refuse = (403, "backup_not_entitled", "no active maintenance agreement")
    runner, _ = make_runner(
        collector, tmp_path / "s", key, {"paths": [str(tree)]}, [generate_identity()[1]]
    )
    out = run(runner.run_once())
    assert out.outcome == "failed" and "no active maintenance agreement" in out.reason
    status = runner.status()
    assert status["entitled"] is False and "maintenance" in status["notice"]
    assert status["pending_upload"] is None


def test_upload_resumes_after_dropped_connection(collector, tree: Path, tmp_path: Path) -> None:
    secret, recipient = generate_identity()
    key = enroll(collector)
    (tree / "random.bin").write_bytes(os.urandom(400_000))
    collector.chunk_size = 64 * 1024
    collector.drop_after = int(2.5 * collector.chunk_size)
    runner, _ = make_runner(collector, tmp_path / "s", key, {"paths": [str(tree)]}, [recipient])
    out = run(runner.run_once())
    assert out.outcome == "ok", out.reason
    stored = collector.backups[-1]
    assert len(stored.obj) == stored.header.ciphertext_size
    # the interrupted chunk resumed at the byte where the collector stopped, not at zero
    offsets = [o for o, _ in collector.puts]
    assert int(2.5 * collector.chunk_size) in offsets
    assert sum(n for _, n in collector.puts) == stored.header.ciphertext_size
    read_archive(io.BytesIO(stored.obj), read_identities(secret), recipients=[recipient])


def test_restart_resumes_pending_upload(collector, tree: Path, tmp_path: Path) -> None:
    """The agent dies mid-upload (its client stops working, as after kill -9); a new runner
    on the same state directory resumes the same upload at the collector's offset."""
    _, recipient = generate_identity()
    key = enroll(collector)
    state = tmp_path / "s"
    (tree / "random.bin").write_bytes(os.urandom(400_000))
    collector.chunk_size = 64 * 1024
    runner, client = make_runner(collector, state, key, {"paths": [str(tree)]}, [recipient])
    runner.retry_delays = ()
    client.fail_after_puts = 2
    out = run(runner.run_once())
    assert out.outcome == "failed" and "resumes" in out.reason
    pending = StateStore(state).load_pending()
    assert pending is not None and pending.offset == 2 * collector.chunk_size
    sent_before = sum(n for _, n in collector.puts)

    runner2, _ = make_runner(collector, state, key, {"paths": [str(tree)]}, [recipient])
    from protocol.messages import AgentSettings

    assert runner2.next_due(AgentSettings(backup_interval_s=86400), now=1000.0) == 1000.0
    out2 = run(runner2.run_once())
    assert out2.outcome == "ok" and out2.seq == pending.seq and "resumed" in out2.reason
    stored = collector.backups[-1]
    assert (
        sum(n for _, n in collector.puts) - sent_before
        == stored.header.ciphertext_size - sent_before
    )
    assert collector.puts[len(collector.puts) - 1][0] > 0
    assert backup_envelope.decode(stored.envelope).header.seq == pending.seq
    assert StateStore(state).load_pending() is None


def test_never_two_runs_at_once(collector, tree: Path, tmp_path: Path) -> None:
    _, recipient = generate_identity()
    key = enroll(collector)
    state = tmp_path / "s"
    runner, _ = make_runner(collector, state, key, {"paths": [str(tree)]}, [recipient])

    async def both():
        return await asyncio.gather(runner.run_once(), runner.run_once())

    a, b = run(both())
    assert sorted([a.outcome, b.outcome]) == ["busy", "ok"]
    # another process holding the lock file
    with StateStore(state).run_lock() as got:
        assert got
        runner2, _ = make_runner(collector, state, key, {"paths": [str(tree)]}, [recipient])
        assert run(runner2.run_once()).outcome == "busy"
    assert [r["outcome"] for r in collector.runs] == ["ok"]


AGENT_SCRIPT = """
import asyncio, sys
sys.path[:0] = {paths!r}
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from agent_helpers import make_runner
from fake_collector import FakeCollector
c = FakeCollector()
c.url = {url!r}
key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex({key!r}))
runner, _ = make_runner(c, {state!r}, key, {{"paths": [{tree!r}]}}, [{recipient!r}])
asyncio.run(runner.run_once())
"""


def test_kill_9_mid_upload_then_resume(collector, tree: Path, tmp_path: Path) -> None:
    import signal
    import subprocess
    import time

    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    secret, recipient = generate_identity()
    key = enroll(collector)
    (tree / "random.bin").write_bytes(os.urandom(600_000))
    collector.chunk_size = 64 * 1024
    collector.stall_after_puts = 3
    state = tmp_path / "state"
    script = AGENT_SCRIPT.format(
        paths=[str(Path(__file__).parent), str(Path(__file__).parents[2])],
        url=collector.url,
        key=key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()).hex(),
        state=str(state),
        tree=str(tree),
        recipient=recipient,
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        pending = None
        while time.monotonic() < deadline:
            pending = StateStore(state).load_pending() if (state / "backup").exists() else None
            if pending is not None and pending.offset >= 3 * collector.chunk_size:
                break
            assert proc.poll() is None, "agent exited before it was killed"
            time.sleep(0.05)
        assert pending is not None and pending.offset == 3 * collector.chunk_size
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    assert collector.backups == []  # nothing half-stored
    collector.stall_after_puts = None

    runner, _ = make_runner(collector, state, key, {"paths": [str(tree)]}, [recipient])
    out = run(runner.run_once())
    assert out.outcome == "ok" and out.seq == pending.seq, out.reason
    stored = collector.backups[-1]
    # resumed at the collector's offset: every byte was sent exactly once
    assert sum(n for _, n in collector.puts) == stored.header.ciphertext_size
    assert collector.puts[3][0] == 3 * collector.chunk_size
    read_archive(io.BytesIO(stored.obj), read_identities(secret), recipients=[recipient])


def test_stale_partial_archive_is_removed(collector, tree: Path, tmp_path: Path) -> None:
    _, recipient = generate_identity()
    key = enroll(collector)
    state = tmp_path / "s"
    runner, _ = make_runner(collector, state, key, {"paths": [str(tree)]}, [recipient])
    stale = state / "backup" / "backup-7.age.part"
    stale.write_bytes(b"left by a killed run")
    assert run(runner.run_once()).outcome == "ok"
    assert not stale.exists()


def test_progress_printer_shows_files_and_bytes(collector, tree: Path, tmp_path: Path) -> None:
    from agent.backup.progress import ProgressPrinter

    out = io.StringIO()
    printer = ProgressPrinter(out, interval_s=0.0)
    key = enroll(collector)
    runner, _ = make_runner(
        collector, tmp_path / "s", key, {"paths": [str(tree)]}, [generate_identity()[1]]
    )
    assert run(runner.run_once(printer)).outcome == "ok"
    text = out.getvalue()
    assert "files " in text and "read " in text and "upload " in text
    last = text.strip().splitlines()[-1]
    assert "files 7/7" in last  # regular files in the tree


def test_sequence_replay_recovers(collector, tree: Path, tmp_path: Path) -> None:
    """A state directory lost or restored from an old copy (or the machine enrolled again)
    numbers backups the collector already has. When the refusal names the collector's last
    number the same archive is signed again after it; otherwise the run fails, reported,
    and numbering moves on by one per run."""
    _, recipient = generate_identity()
    key = enroll(collector)
    collector.last_seq["srv-1"] = 41
    runner, _ = make_runner(collector, tmp_path / "s", key, {"paths": [str(tree)]}, [recipient])
    first = run(runner.run_once())  # no hint in the refusal
    assert first.outcome == "failed" and "sequence_replay" in first.reason
    assert runner.status()["last_seq"] == 1
    collector.last_seq_hint = True  # as the real collector does (``last_seq`` in the body)
    second = run(runner.run_once())
    assert second.outcome == "ok" and second.seq == 42, second.reason
    assert [r["outcome"] for r in collector.runs] == ["failed", "ok"]


def test_upload_while_the_archive_is_written(collector, tree: Path, tmp_path: Path) -> None:
    """With a collector that accepts streamed uploads, the upload opens before the archive
    is finished (no hash, no size in the first header) and the final envelope completes
    it; every byte is sent once."""
    secret, recipient = generate_identity()
    key = enroll(collector)
    (tree / "random.bin").write_bytes(os.urandom(400_000))
    collector.chunk_size = 64 * 1024
    runner, _ = make_runner(collector, tmp_path / "s", key, {"paths": [str(tree)]}, [recipient])
    runner.streaming = True
    out = run(runner.run_once())
    assert out.outcome == "ok", out.reason
    stored = collector.backups[-1]
    assert len(collector.streamed) == 1  # opened without hash, completed by the final envelope
    assert stored.header.ciphertext_size == len(stored.obj)
    assert sum(n for _, n in collector.puts) == len(stored.obj)
    read_archive(io.BytesIO(stored.obj), read_identities(secret), recipients=[recipient])


def test_streamed_upload_refused_at_the_end_falls_back(
    collector, tree: Path, tmp_path: Path
) -> None:
    secret, recipient = generate_identity()
    key = enroll(collector)
    collector.refuse_final = True
    runner, _ = make_runner(collector, tmp_path / "s", key, {"paths": [str(tree)]}, [recipient])
    runner.streaming = True
    out = run(runner.run_once())
    assert out.outcome == "ok", out.reason
    stored = collector.backups[-1]
    assert collector.streamed == []
    assert stored.header.ciphertext_sha256 is not None  # sent again, the usual way
    read_archive(io.BytesIO(stored.obj), read_identities(secret), recipients=[recipient])


def test_streamed_upload_waits_for_the_collector_to_complete(
    collector, tree: Path, tmp_path: Path
) -> None:
    """The collector is away when the archive is done: 'complete' is tried again, and the
    upload is not sent a second time."""
    secret, recipient = generate_identity()
    key = enroll(collector)
    collector.unavailable_completes = 2
    runner, _ = make_runner(collector, tmp_path / "s", key, {"paths": [str(tree)]}, [recipient])
    runner.streaming = True
    out = run(runner.run_once())
    assert out.outcome == "ok", out.reason
    stored = collector.backups[-1]
    assert len(collector.streamed) == 1
    assert sum(n for _, n in collector.puts) == len(stored.obj)
    read_archive(io.BytesIO(stored.obj), read_identities(secret), recipients=[recipient])
