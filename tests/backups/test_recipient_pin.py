"""An agent that pinned the partner's signing key encrypts to no recipient the partner did
not sign, whatever the collector sends (the real collector, given extra recipients, a list
signed by another key, or a compromised data directory)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.backup.recipient_pin import (
    Pin,
    approved_recipients,
    recipient_signer_check,
    save_pin,
    split_token,
)
from protocol import recipient_list
from protocol.backup_archive import generate_identity
from tests.backups.backup_site import BackupSite

PARTNER = Ed25519PrivateKey.generate()
PARTNER_FP = recipient_list.key_fingerprint(PARTNER)
_, RECOVERY = generate_identity()
_, EVIL = generate_identity()


def offer(site: BackupSite, signed: str, plain: list[str], extra: list[str] = ()) -> None:
    """What the collector holds for the partner: ``signed`` stored as its signed list (as
    given: the collector's own check is bypassed on its disk for a list it would refuse),
    ``plain`` recovery keys and ``extra`` recipients added without a signature."""
    name = site.partner.name
    if signed:
        site.collector.cli("recovery-key", "add", "--partner", name, signed, check=False)
        if not site.sql("SELECT 1 FROM backup_recipient_lists WHERE signed = ?", (signed,)):
            pid = site.sql("SELECT id FROM partners WHERE name = ?", (name,))[0][0]
            site.sql(
                "INSERT INTO backup_recipient_lists (partner_id, signed, signer, signed_at, "
                "added_at) VALUES (?, ?, 'forged', 0, 0)",
                (pid, signed),
            )
    for r in plain:
        site.collector.cli("recovery-key", "add", "--partner", name, r)
    for r in extra:
        site.collector.cli("recovery-key", "add", "--partner", name, "--extra", r)


def pinned_runner(site: BackupSite, tmp_path: Path, tree: Path):
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    save_pin(state, Pin(fingerprint=PARTNER_FP))
    runner, _ = site.runner(state, {"paths": [str(tree)]})
    return runner


def refused(site: BackupSite, runner, words: str) -> None:
    out = site.run(runner.run_once())
    assert out.outcome == "failed" and words in out.reason, out.reason
    assert site.backups() == [] and site.open_uploads() == 0
    assert site.runs()[-1]["outcome"] == "failed" and words in site.runs()[-1]["reason"]
    assert words in runner.status()["last_reason"]


def test_extra_recipient_not_signed_by_the_partner_is_refused(
    site: BackupSite, tree: Path, tmp_path: Path
) -> None:
    offer(site, recipient_list.sign([RECOVERY], PARTNER, 1000.0), [], [EVIL])
    refused(site, pinned_runner(site, tmp_path, tree), EVIL)


def test_list_signed_by_the_collectors_own_key_is_refused(
    site: BackupSite, tree: Path, tmp_path: Path
) -> None:
    offer(site, recipient_list.sign([RECOVERY, EVIL], Ed25519PrivateKey.generate(), 2000.0), [])
    runner = pinned_runner(site, tmp_path, tree)
    refused(site, runner, f"not by the partner's pinned signing key {PARTNER_FP}")


def test_unsigned_recipients_are_refused_once_pinned(
    site: BackupSite, tree: Path, tmp_path: Path
) -> None:
    offer(site, "", [RECOVERY])
    refused(site, pinned_runner(site, tmp_path, tree), "no recipient list signed")


def test_tampered_list_is_refused(site: BackupSite, tree: Path, tmp_path: Path) -> None:
    signed = recipient_list.sign([RECOVERY], PARTNER, 1000.0)
    body = signed[len(recipient_list.PREFIX) :]
    tampered = recipient_list.PREFIX + body[:-6] + ("A" if body[-6] != "A" else "B") + body[-5:]
    offer(site, tampered, [RECOVERY])
    refused(site, pinned_runner(site, tmp_path, tree), "recipient list refused")


def test_signed_list_is_honoured_and_an_older_one_cannot_come_back(
    site: BackupSite, tree: Path, tmp_path: Path
) -> None:
    offer(site, recipient_list.sign([RECOVERY], PARTNER, 2000.0), [])
    runner = pinned_runner(site, tmp_path, tree)
    out = site.run(runner.run_once())
    assert out.outcome == "ok", out.reason
    [stored] = site.backups()
    assert site.header(stored).recipients == [RECOVERY]
    assert runner.status()["recovery_signer"] == PARTNER_FP
    # an older list, once signed by the partner, naming a recipient since dropped, put
    # back on the collector's disk (the collector itself keeps the newer one)
    older = recipient_list.sign([RECOVERY, EVIL], PARTNER, 1000.0)
    site.sql("UPDATE backup_recipient_lists SET signed = ?, signed_at = 1000", (older,))
    offer(site, "", [], [EVIL])
    (tree / "etc" / "vms" / "agent.toml").write_text("[agent]\nname = 'changed'\n")
    again, _ = site.runner(tmp_path / "state", {"paths": [str(tree)]})  # the same pin
    refused_run = site.run(again.run_once())
    assert refused_run.outcome == "failed" and "older than one already used" in refused_run.reason
    assert len(site.backups()) == 1


def test_enrollment_without_a_pin_keeps_working_and_says_so(
    site: BackupSite, tree: Path, tmp_path: Path
) -> None:
    runner, _ = site.runner(tmp_path / "state", {"paths": [str(tree)]}, [RECOVERY])
    assert site.run(runner.run_once()).outcome == "ok"
    assert runner.status()["recovery_signer"] is None
    level, _, text = recipient_signer_check(tmp_path / "state")
    assert level == "warn" and "no partner signing key pinned" in text


def test_doctor_line_when_pinned_and_when_damaged(tmp_path: Path) -> None:
    save_pin(tmp_path, Pin(fingerprint=PARTNER_FP))
    assert recipient_signer_check(tmp_path)[0] == "ok"
    (tmp_path / "recovery-signer.json").write_text("{broken")
    level, _, text = recipient_signer_check(tmp_path)
    assert level == "fail" and "recovery-signer.json" in text
    with pytest.raises(Exception, match="cannot read the pinned partner key"):
        approved_recipients(tmp_path, [RECOVERY], "")


def test_enrollment_token_carries_the_fingerprint() -> None:
    assert split_token("vgl_enr_abc") == ("vgl_enr_abc", None)
    assert split_token(f"vgl_enr_abc#{PARTNER_FP.upper()}") == ("vgl_enr_abc", PARTNER_FP)
    with pytest.raises(recipient_list.RecipientListError):
        split_token("vgl_enr_abc#not-a-fingerprint")


def test_enroll_refuses_a_bad_or_conflicting_fingerprint_before_any_contact(
    tmp_path: Path, capsys
) -> None:
    from agent.cli import main as vigil_agent

    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\nmachine_id = "m"\n')
    url = "http://127.0.0.1:9"  # nothing listens: these must fail before connecting
    args = ["enroll", "--config", str(cfg), "--collector", url]
    assert vigil_agent([*args, "--token", "vgl_enr_x#nothex"]) == 2
    assert "not a signing-key fingerprint" in capsys.readouterr().err
    other = "b" * 64
    assert (
        vigil_agent([*args, "--token", f"vgl_enr_x#{PARTNER_FP}", "--recovery-signer", other]) == 2
    )
    assert "differ" in capsys.readouterr().err
    assert not (tmp_path / "state" / "recovery-signer.json").exists()
