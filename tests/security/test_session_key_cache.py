"""Opened session keys are kept in memory, and that changes nothing of who is let in: a
revoked server's open session is refused at its very next request, a session a
re-enrollment ended likewise, and a key is only handed out for the sealed bytes it was
opened from."""

from __future__ import annotations

from collector.http import session_keys
from collector.http.session_keys import SessionSealer
from harness.enrolled import enroll_agent
from harness.processes import Collector
from harness.signed import batch, post_signed, report


def test_a_revoked_servers_open_session_is_refused_at_its_next_request(
    collector: Collector,
) -> None:
    _, token = collector.partner("acme")
    agent = enroll_agent(collector.url, token)
    assert agent.send_report()[0] == 200
    assert agent.send_report()[0] == 200  # the session's key is now kept opened

    collector.cli("server", "revoke", agent.server_id)

    status, doc = agent.send_report()
    assert status == 403 and doc["error"] == "revoked", doc


def test_a_session_ended_by_reenrollment_is_refused_at_its_next_request(
    collector: Collector,
) -> None:
    _, token = collector.partner("acme")
    machine = "machine-cache-reenroll"
    agent = enroll_agent(collector.url, token, machine_id=machine)
    assert agent.send_report()[0] == 200
    old_session = agent.session
    consenting = collector.last_line("token", "create", "--partner", "acme", "--allow-reenroll")
    again = enroll_agent(collector.url, consenting, machine_id=machine)
    assert again.server_id == agent.server_id  # same server, new key: old sessions end

    assert old_session is not None
    status, doc = post_signed(
        collector.url, old_session, "/api/v1/agent/reports", batch(report(agent.seq + 1))
    )
    assert status == 401 and doc["error"] == "session_unknown", doc


def test_a_kept_key_is_only_handed_out_for_the_sealed_bytes_it_came_from() -> None:
    sealer = SessionSealer()
    sealed = sealer.seal("ses_a", b"k" * 32)
    assert sealer.open("ses_a", sealed) == b"k" * 32
    assert sealer.open("ses_a", sealed) == b"k" * 32  # from memory
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    assert sealer.open("ses_a", tampered) is None
    resealed = sealer.seal("ses_a", b"n" * 32)  # the same id stored again, another key
    assert sealer.open("ses_a", resealed) == b"n" * 32
    assert sealer.open("ses_b", sealed) is None  # another session's id: AES-GCM refuses


def test_the_kept_keys_are_bounded(monkeypatch) -> None:
    monkeypatch.setattr(session_keys, "OPENED_KEYS", 3)
    sealer = SessionSealer()
    sealed = {f"ses_{i}": sealer.seal(f"ses_{i}", bytes([i]) * 32) for i in range(5)}
    for sid, blob in sealed.items():
        assert sealer.open(sid, blob) is not None
    assert list(sealer._opened) == ["ses_2", "ses_3", "ses_4"]
    assert sealer.open("ses_0", sealed["ses_0"]) == bytes([0]) * 32  # opened again
