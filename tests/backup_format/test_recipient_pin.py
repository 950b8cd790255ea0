"""An agent that pinned the partner's signing key encrypts to no recipient the partner did
not sign, whatever the collector (here a fake one playing a compromised collector) sends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from agent_helpers import enroll, make_runner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.backup.recipient_pin import (
    Pin,
    approved_recipients,
    recipient_signer_check,
    save_pin,
    split_token,
)
from protocol import backup_envelope, recipient_list
from protocol.backup_archive import generate_identity
from protocol.messages import AgentSettings

PARTNER = Ed25519PrivateKey.generate()
PARTNER_FP = recipient_list.key_fingerprint(PARTNER)
_, RECOVERY = generate_identity()
_, EVIL = generate_identity()


def pinned_runner(collector, tmp_path: Path, tree: Path, offered: list[str], signed: str):
    key = enroll(collector)
    state = tmp_path / "state"
    state.mkdir()
    save_pin(state, Pin(fingerprint=PARTNER_FP))
    runner, _ = make_runner(
        collector, state, key, {"paths": [str(tree)]}, offered, recipient_list=signed
    )
    return runner


def refused(collector, runner, words: str) -> None:
    out = asyncio.run(runner.run_once())
    assert out.outcome == "failed" and words in out.reason, out.reason
    assert collector.backups == [] and collector.uploads == {}
    assert collector.runs[-1]["outcome"] == "failed" and words in collector.runs[-1]["reason"]
    assert words in runner.status()["last_reason"]


def test_extra_recipient_not_signed_by_the_partner_is_refused(
    collector, tree: Path, tmp_path: Path
) -> None:
    signed = recipient_list.sign([RECOVERY], PARTNER, 1000.0)
    runner = pinned_runner(collector, tmp_path, tree, [RECOVERY, EVIL], signed)
    refused(collector, runner, EVIL)


def test_list_signed_by_the_collectors_own_key_is_refused(
    collector, tree: Path, tmp_path: Path
) -> None:
    forged = recipient_list.sign([RECOVERY, EVIL], Ed25519PrivateKey.generate(), 2000.0)
    runner = pinned_runner(collector, tmp_path, tree, [RECOVERY, EVIL], forged)
    refused(collector, runner, f"not by the partner's pinned signing key {PARTNER_FP}")


def test_unsigned_recipients_are_refused_once_pinned(collector, tree: Path, tmp_path: Path) -> None:
    runner = pinned_runner(collector, tmp_path, tree, [RECOVERY], "")
    refused(collector, runner, "no recipient list signed")


def test_tampered_list_is_refused(collector, tree: Path, tmp_path: Path) -> None:
    signed = recipient_list.sign([RECOVERY], PARTNER, 1000.0)
    body = signed[len(recipient_list.PREFIX) :]
    tampered = recipient_list.PREFIX + body[:-6] + ("A" if body[-6] != "A" else "B") + body[-5:]
    runner = pinned_runner(collector, tmp_path, tree, [RECOVERY], tampered)
    refused(collector, runner, "recipient list refused")


def test_signed_list_is_honoured_and_an_older_one_cannot_come_back(
    collector, tree: Path, tmp_path: Path
) -> None:
    newer = recipient_list.sign([RECOVERY], PARTNER, 2000.0)
    runner = pinned_runner(collector, tmp_path, tree, [RECOVERY], newer)
    out = asyncio.run(runner.run_once())
    assert out.outcome == "ok", out.reason
    header = backup_envelope.decode(collector.backups[0].envelope).header
    assert header.recipients == [RECOVERY]
    assert runner.status()["recovery_signer"] == PARTNER_FP
    # an older list, once signed by the partner, naming a recipient since dropped
    older = recipient_list.sign([RECOVERY, EVIL], PARTNER, 1000.0)
    runner.apply(
        AgentSettings(
            backup_interval_s=86400,
            backup_recipients=[RECOVERY, EVIL],
            backup_recipient_list=older,
        )
    )
    refused_run = asyncio.run(runner.run_once())
    assert refused_run.outcome == "failed" and "older than one already used" in refused_run.reason
    assert len(collector.backups) == 1


def test_enrollment_without_a_pin_keeps_working_and_says_so(
    collector, tree: Path, tmp_path: Path
) -> None:
    key = enroll(collector)
    runner, _ = make_runner(collector, tmp_path / "state", key, {"paths": [str(tree)]}, [RECOVERY])
    assert asyncio.run(runner.run_once()).outcome == "ok"
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
