"""The user's path for backups, with the installed commands only: the partner makes a
recovery key offline, gives the collector its public half, the agent backs up, and the
partner restores on another machine with the key file, the API key and the URL."""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
from pathlib import Path

from harness.processes import BIN, Collector


def vigil_backup(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "vigil-backup"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def test_backup_now_then_restore_with_the_partners_key(
    collector: Collector, make_agent, tmp_path: Path
) -> None:
    key, token = collector.partner("acme")
    identity = tmp_path / "partner" / "recovery.key"
    identity.parent.mkdir()
    out = vigil_backup("keygen", "--out", str(identity), env={})
    assert out.returncode == 0, out.stderr
    recipient = out.stdout.strip().splitlines()[-1]
    assert recipient.startswith("age1") and oct(identity.stat().st_mode)[-3:] == "600"
    signer = vigil_backup("signer", "--identity", str(identity), env={}).stdout.strip()
    assert signer in out.stdout
    # the partner signs the recipient list offline; the collector only stores it
    signed = vigil_backup("sign-recipients", "--identity", str(identity), recipient, env={})
    assert signed.returncode == 0, signed.stderr
    signed_list = signed.stdout.strip().splitlines()[-1]
    collector.cli("recovery-key", "add", "--partner", "acme", signed_list)

    src = tmp_path / "vms-config"
    (src / "cams").mkdir(parents=True)
    (src / "recorder.conf").write_text("[recording]\nretention_days = 30\n")
    (src / "cams" / "camera 1.xml").write_text("<camera id='1'/>\n")
    (src / "empty").write_bytes(b"")
    (src / "cache.tmp").write_text("not this")
    agent = make_agent(extra_config=f'\n[backup]\npaths = ["{src}"]\nexclude = ["*.tmp"]\n')
    server_id = agent.enroll(collector.url, f"{token}#{signer}")
    assert agent.status()["recovery_signer"]["fingerprint"] == signer
    first = agent.cmd("backup", "--now", check=False)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "backup stored" in first.stdout
    again = agent.cmd("backup", "--now", "--json", check=False)
    assert again.returncode == 0 and json.loads(again.stdout)["outcome"] == "unchanged"
    assert agent.status()["backup"]["last_outcome"] == "unchanged"
    plain = agent.cmd("status").stdout
    assert "last backup  unchanged at" in plain and "last stored  " in plain, plain
    assert "cameras      none configured" in plain

    env = {"VIGIL_COLLECTOR": collector.url, "VIGIL_API_KEY": key}
    listed = vigil_backup("list", "--server", server_id, "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert sorted(b["kind"] for b in json.loads(listed.stdout)["backups"]) == ["full", "unchanged"]
    target = tmp_path / "new-machine" / "restored"
    restored = vigil_backup(
        "restore", "--server", server_id, "--identity", str(identity), "--to", str(target), env=env
    )
    assert restored.returncode == 0, restored.stderr
    # first use pinned the key the agent shows on its status
    assert agent.status()["signing_key_fingerprint"] in restored.stderr
    found = [p for p in target.rglob("recorder.conf")]
    assert len(found) == 1
    root = found[0].parent
    cmp = filecmp.dircmp(src, root, ignore=["cache.tmp"])
    assert not cmp.left_only or cmp.left_only == ["cache.tmp"]
    assert not cmp.right_only and not cmp.diff_files
    assert (root / "cams" / "camera 1.xml").read_text() == "<camera id='1'/>\n"
    assert not (root / "cache.tmp").exists()

    status = collector.api(key, f"/api/v1/servers/{server_id}/backup-status")[1]
    assert status["last_success"] is not None and status["next_due"] is not None

    other_key, _ = collector.partner("other")
    denied = vigil_backup(
        "list",
        "--server",
        server_id,
        env={"VIGIL_COLLECTOR": collector.url, "VIGIL_API_KEY": other_key},
    )
    assert denied.returncode != 0


def test_collector_adding_a_recipient_is_refused_by_a_pinned_agent(
    collector: Collector, make_agent, tmp_path: Path
) -> None:
    """Someone with the collector's admin commands adds a recipient of their own: an agent
    that pinned the partner's signing key makes no backup, and says why everywhere."""
    key, token = collector.partner("acme")
    identity = tmp_path / "recovery.key"
    out = vigil_backup("keygen", "--out", str(identity), "--json", env={})
    made = json.loads(out.stdout)
    signed = (
        vigil_backup("sign-recipients", "--identity", str(identity), made["recipient"], env={})
        .stdout.strip()
        .splitlines()[-1]
    )
    collector.cli("recovery-key", "add", "--partner", "acme", signed)
    evil = json.loads(
        vigil_backup("keygen", "--out", str(tmp_path / "evil.key"), "--json", env={}).stdout
    )["recipient"]
    added = collector.cli("recovery-key", "add", "--partner", "acme", "--extra", evil)
    assert "added" in added

    src = tmp_path / "cfg"
    src.mkdir()
    (src / "recorder.conf").write_text("x = 1\n")
    agent = make_agent(extra_config=f'\n[backup]\npaths = ["{src}"]\n')
    agent.cmd(
        "enroll",
        "--collector",
        collector.url,
        "--token",
        token,
        "--recovery-signer",
        made["signer"],
    )
    server_id = json.loads((agent.state_dir / "identity.json").read_text())["server_id"]
    run = agent.cmd("backup", "--now", "--json", check=False)
    assert run.returncode != 0
    outcome = json.loads(run.stdout)
    assert outcome["outcome"] == "failed" and evil in outcome["reason"]
    assert evil in agent.status()["backup"]["last_reason"]
    assert evil in agent.cmd("status").stdout
    status = collector.api(key, f"/api/v1/servers/{server_id}/backup-status")[1]
    assert evil in status["last_failure_reason"]
    listed = vigil_backup(
        "list",
        "--server",
        server_id,
        "--json",
        env={"VIGIL_COLLECTOR": collector.url, "VIGIL_API_KEY": key},
    )
    assert json.loads(listed.stdout)["backups"] == []

    # once the extra recipient is gone, the partner's signed list is honoured
    collector.cli("recovery-key", "remove", "--partner", "acme", evil)
    again = agent.cmd("backup", "--now", "--json", check=False)
    assert again.returncode == 0 and json.loads(again.stdout)["outcome"] == "ok", again.stdout


def test_an_enrollment_without_a_pinned_key_keeps_working_with_a_warning(
    collector: Collector, make_agent, tmp_path: Path
) -> None:
    _, token = collector.partner("acme")
    out = vigil_backup("keygen", "--out", str(tmp_path / "k"), env={})
    collector.cli("recovery-key", "add", "--partner", "acme", out.stdout.strip().splitlines()[-1])
    src = tmp_path / "cfg"
    src.mkdir()
    (src / "a.conf").write_text("a\n")
    agent = make_agent(extra_config=f'\n[backup]\npaths = ["{src}"]\n')
    agent.enroll(collector.url, token)
    assert agent.status()["recovery_signer"]["pinned"] is False
    assert "warning: no partner signing key pinned" in agent.cmd("status").stdout
    doctor = agent.cmd("doctor", check=False)
    line = next(ln for ln in doctor.stdout.splitlines() if "backup recipients" in ln)
    assert line.startswith("[warn]") and "no partner signing key pinned" in line
    run = agent.cmd("backup", "--now", "--json", check=False)
    assert run.returncode == 0 and json.loads(run.stdout)["outcome"] == "ok", run.stdout

    # pinned later, on the server itself: the unsigned recipients are no longer enough
    signer = vigil_backup("signer", "--identity", str(tmp_path / "k"), env={}).stdout.strip()
    pinned = agent.cmd("recovery-signer", signer.upper())
    assert signer in pinned.stdout
    assert agent.status()["recovery_signer"]["fingerprint"] == signer
    (src / "a.conf").write_text("b\n")
    run = agent.cmd("backup", "--now", "--json", check=False)
    assert run.returncode != 0
    assert "no recipient list signed" in json.loads(run.stdout)["reason"]
