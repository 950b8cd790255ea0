"""A collector that lies cannot make ``vigil-backup`` restore what the agent did not write.

The real collector plays the compromised one, its data directory edited: it serves a
backup signed by a key of its own (and, for the worst case, offers that key as the
server's), hides newer backups to roll a restore of "latest" back, or offers a changed key.
The partner's tool pins the server's key in its own file and refuses each of these.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agent.agent_key import AgentKey
from agent.identity import load_identity
from harness.processes import Agent
from protocol import backup_envelope
from protocol.backup_archive import generate_identity, read_identities
from protocol.recipient_list import fingerprint
from protocol.recipient_list import verify as verify_list
from recovery.cli import main as vigil_backup
from tests.backups.backup_site import BackupSite
from tests.backups.recovery_cli import backed_up, cli, restore

SUDOERS = "intruder ALL=(ALL) NOPASSWD: ALL\n"


def raw(key: Ed25519PrivateKey | AgentKey) -> bytes:
    if isinstance(key, AgentKey):
        return key.public_bytes_raw()
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def forged_backup(
    site: BackupSite, tmp_path: Path, recipient: str, seq: int
) -> tuple[dict[str, Any], Ed25519PrivateKey]:
    """A complete, valid-looking backup of a tree holding a malicious ``etc/sudoers``,
    encrypted to the partner's recipient and signed by a key that is not the agent's: made
    by another server the attacker enrolled, its header rewritten to name the victim. The
    row to insert into the collector's catalogue, and the attacker's key."""
    evil_tree = tmp_path / "attacker" / "src"
    (evil_tree / "etc").mkdir(parents=True)
    (evil_tree / "etc" / "sudoers").write_text(SUDOERS)
    attacker = site.another_server(tmp_path / "attacker" / "agent")
    runner, _ = attacker.runner(tmp_path / "attacker" / "state", {"paths": [str(evil_tree)]})
    assert attacker.run(runner.run_once()).outcome == "ok"
    made = attacker.backups()[0]
    header = msgspec.structs.replace(attacker.header(made), seq=seq, server_id=site.server_id)
    env = backup_envelope.encode(backup_envelope.sign(header, attacker.key))
    row = attacker.row(made["id"])
    row.update(id=f"forged-{seq}", server_id=site.server_id, seq=seq, envelope=env.decode())
    return row, attacker.key


def restored_sudoers(tmp_path: Path) -> list[Path]:
    return [p for p in tmp_path.rglob("sudoers") if "attacker" not in p.parts]


def test_first_use_pins_the_key_and_says_so(
    site: BackupSite,
    tree: Path,
    tmp_path: Path,
    keyfile,
    capsys,
) -> None:
    key, recipient = keyfile
    _, agent_key = backed_up(site, tree, tmp_path, recipient)
    rc, _, err = restore(site, capsys, key, tmp_path / "r1")
    assert rc == 0, err
    fp = fingerprint(raw(agent_key))
    assert "first use" in err and fp in err
    pinned = json.loads((tmp_path / "known_servers").read_text())["servers"][site.server_id]
    assert pinned["fingerprint"] == fp and pinned["highest_seq"] == 1


def test_forged_backup_signed_by_another_key_is_refused(
    site: BackupSite,
    tree: Path,
    tmp_path: Path,
    keyfile,
    capsys,
) -> None:
    """The collector keeps offering the real key but serves a newer backup it signed."""
    key, recipient = keyfile
    backed_up(site, tree, tmp_path, recipient)
    assert restore(site, capsys, key, tmp_path / "r1")[0] == 0
    forged, _ = forged_backup(site, tmp_path, recipient, seq=2)
    site.insert_backup(forged)
    dest = tmp_path / "out" / "r2"
    rc, _, err = restore(site, capsys, key, dest)
    assert rc == 1 and "signed by another key" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not dest.exists() and list((tmp_path / "out").iterdir()) == []
    assert restored_sudoers(tmp_path) == []


def test_collector_swapping_the_servers_key_cannot_get_a_forged_sudoers_restored(
    site: BackupSite,
    tree: Path,
    tmp_path: Path,
    keyfile,
    capsys,
) -> None:
    """The worst case: the collector replaces the backups and offers its own key as the
    server's. Fetching the key from the collector (as before) restored the forged file."""
    key, recipient = keyfile
    _, agent_key = backed_up(site, tree, tmp_path, recipient)
    assert restore(site, capsys, key, tmp_path / "r1")[0] == 0
    forged, attacker = forged_backup(site, tmp_path, recipient, seq=2)
    site.offer_key(raw(attacker))
    for b in site.backups():
        site.hide(b["id"])
    site.insert_backup(forged)
    dest = tmp_path / "r2"
    rc, _, err = restore(site, capsys, key, dest)
    assert rc == 1, err
    line = err.strip()
    assert len(line.splitlines()) == 1
    assert site.server_id in line and "changed" in line
    assert fingerprint(raw(agent_key)) in line and fingerprint(raw(attacker)) in line
    assert (
        f"vigil-backup trust --server {site.server_id} --fingerprint {fingerprint(raw(attacker))}"
        in line
    )
    assert not dest.exists()
    assert restored_sudoers(tmp_path) == []
    # verify and diff are held to the same pin
    rc, _, err = cli(site, capsys, "verify", "--server", site.server_id, "--identity", str(key))
    assert rc == 1 and "changed" in err


def test_a_legitimately_changed_key_is_accepted_with_trust_and_fingerprint(
    site: BackupSite,
    tree: Path,
    tmp_path: Path,
    keyfile,
    capsys,
) -> None:
    key, recipient = keyfile
    backed_up(site, tree, tmp_path, recipient)
    assert restore(site, capsys, key, tmp_path / "r1")[0] == 0
    # the server is enrolled again: a new key signs its next backups
    site.collector.cli("server", "allow-reenroll", site.server_id)
    again = Agent(tmp_path / "agent-again", machine_id=site.agent.machine_id)
    assert again.enroll(site.proxy.url, site.partner.token) == site.server_id
    loaded = load_identity(again.state_dir)
    assert loaded is not None
    site.key = new_key = loaded[1]
    runner, _ = site.runner(tmp_path / "state-new", {"paths": [str(tree)]})
    assert site.run(runner.run_once()).outcome == "ok"
    new_fp = fingerprint(raw(new_key))
    assert restore(site, capsys, key, tmp_path / "r2")[0] == 1

    rc, _, err = cli(site, capsys, "trust", "--server", site.server_id)
    assert rc == 1 and "--fingerprint" in err  # no silent replacement
    rc, _, err = cli(site, capsys, "trust", "--server", site.server_id, "--fingerprint", "ab" * 32)
    assert rc == 1 and "not pinned" in err
    rc, out, err = cli(
        site, capsys, "trust", "--server", site.server_id, "--fingerprint", new_fp.upper()
    )
    assert rc == 0, err
    assert out.strip().splitlines()[-1].startswith("pinned")
    rc, _, err = restore(site, capsys, key, tmp_path / "r3")
    assert rc == 0, err
    # a backup the old key signed still verifies (the old key is kept as retired)
    rc, _, err = restore(site, capsys, key, tmp_path / "r4", "--backup", "1")
    assert rc == 0, err


def test_trust_before_first_use_checks_the_fingerprint(
    site: BackupSite,
    tree: Path,
    tmp_path: Path,
    keyfile,
    capsys,
) -> None:
    key, recipient = keyfile
    _, agent_key = backed_up(site, tree, tmp_path, recipient)
    # a collector offering its own key is caught when the partner gives the fingerprint
    site.offer_key(raw(Ed25519PrivateKey.generate()))
    fp = fingerprint(raw(agent_key))
    rc, _, err = cli(site, capsys, "trust", "--server", site.server_id, "--fingerprint", fp)
    assert rc == 1 and fp in err
    assert not (tmp_path / "known_servers").exists()
    site.offer_key(raw(agent_key))
    rc, _, err = cli(site, capsys, "trust", "--server", site.server_id, "--fingerprint", fp)
    assert rc == 0, err
    rc, _, err = restore(site, capsys, key, tmp_path / "r1")
    assert rc == 0 and "first use" not in err


def test_rollback_of_latest_is_refused(
    site: BackupSite,
    tree: Path,
    tmp_path: Path,
    keyfile,
    capsys,
) -> None:
    key, recipient = keyfile
    runner, _ = backed_up(site, tree, tmp_path, recipient)
    conf = next(tree.rglob("agent.toml"))
    conf.write_text("[agent]\nname = 'changed'\n")
    assert site.run(runner.run_once()).outcome == "ok"
    rc, out, err = restore(site, capsys, key, tmp_path / "r1", "--json")
    assert rc == 0 and json.loads(out)["seq"] == 2, err
    # the collector hides seq 2: "latest" would quietly be the older configuration
    newest = site.hide(site.backups()[-1]["id"])
    dest = tmp_path / "r2"
    rc, _, err = restore(site, capsys, key, dest)
    assert rc == 1 and "seq 2 was seen before" in err and site.server_id in err
    assert not dest.exists()
    # restoring the older one on purpose still works
    rc, out, err = restore(site, capsys, key, dest, "--backup", "1", "--json")
    assert rc == 0 and json.loads(out)["seq"] == 1, err
    site.insert_backup(newest)
    assert restore(site, capsys, key, tmp_path / "r3")[0] == 0


def test_known_servers_path_flag_and_damaged_file(
    site: BackupSite,
    tree: Path,
    tmp_path: Path,
    keyfile,
    capsys,
) -> None:
    key, recipient = keyfile
    backed_up(site, tree, tmp_path, recipient)
    mine = tmp_path / "partner" / "pins.json"
    rc, _, err = restore(site, capsys, key, tmp_path / "r1", "--known-servers", str(mine))
    assert rc == 0, err
    assert (mine.stat().st_mode & 0o777) == 0o600 and site.server_id in mine.read_text()
    mine.write_text("{not json")
    rc, _, err = restore(site, capsys, key, tmp_path / "r2", "--known-servers", str(mine))
    assert rc == 1 and str(mine) in err and len(err.strip().splitlines()) == 1


def test_a_damaged_object_ends_in_one_line_and_writes_nothing(
    site: BackupSite,
    tree: Path,
    tmp_path: Path,
    keyfile,
    capsys,
) -> None:
    """The collector serves other bytes under a genuinely signed header."""
    key, recipient = keyfile
    backed_up(site, tree, tmp_path, recipient)
    backup_id = site.backups()[0]["id"]
    obj_file = site.object_file(backup_id)
    good = obj_file.read_bytes()
    for bad in (b"", b"garbage" * 100, good[: len(good) // 2], good[:-1] + b"\x00", good + b"x"):
        obj_file.write_bytes(bad)  # served whole: the catalogue's size made to match
        site.sql("UPDATE backups SET size = ? WHERE id = ?", (len(bad), backup_id))
        dest = tmp_path / "out" / "r"
        rc, out, err = restore(site, capsys, key, dest)
        assert rc == 1 and out == "", err
        lines = [ln for ln in err.splitlines() if "first use" not in ln]
        assert len(lines) == 1 and lines[0].startswith("vigil-backup restore: "), err
        assert not dest.exists() and list((tmp_path / "out").iterdir()) == []


def test_keygen_signing_key_for_old_key_files(tmp_path: Path, capsys) -> None:
    old = tmp_path / "old.key"
    secret, recipient = generate_identity()
    old.write_text(f"# public key: {recipient}\n{secret}\n")
    assert vigil_backup(["signer", "--identity", str(old)]) == 1
    assert "keygen --add-signing-key" in capsys.readouterr().err
    assert vigil_backup(["keygen", "--add-signing-key", "--out", str(old)]) == 0
    added = capsys.readouterr().out.strip().split()[-1]
    assert vigil_backup(["signer", "--identity", str(old)]) == 0
    assert capsys.readouterr().out.strip() == added
    assert vigil_backup(["keygen", "--add-signing-key", "--out", str(old)]) == 1
    assert read_identities(old.read_text())  # still an age identity file
    assert vigil_backup(["sign-recipients", "--identity", str(old), recipient]) == 0
    signed = capsys.readouterr().out.strip().splitlines()[-1]
    assert verify_list(signed, added).recipients == [recipient]


def test_a_target_that_cannot_be_made_is_one_line(
    site: BackupSite, tree: Path, tmp_path: Path, keyfile, capsys
) -> None:
    key, recipient = keyfile
    backed_up(site, tree, tmp_path, recipient)
    (tmp_path / "a-file").write_text("x")
    rc, _, err = restore(site, capsys, key, tmp_path / "a-file" / "below")
    assert rc == 1 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("vigil-backup restore: ")
