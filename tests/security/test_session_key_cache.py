"""Opened session keys and session lookups are kept in memory, with a bounded staleness:
a server revoked by another process (the CLI) is refused within ``session_cache_s`` (at
its very next request with the cache off), a session a re-enrollment through the
collector ended is refused at its next request, and a key is only handed out for the
sealed bytes it was opened from."""

from __future__ import annotations

from collector.http import session_cache, session_keys
from collector.http.session_cache import SessionCache
from collector.http.session_keys import SessionSealer
from harness.enrolled import EnrolledAgent, enroll_agent
from harness.net import wait_until
from harness.processes import Collector
from harness.signed import batch, post_signed, report
from tests.conftest import MakeCollector


def refused_within_the_cache_time(agent: EnrolledAgent) -> dict:
    """Reports go on being sent until one is refused (each one before is stored)."""
    answers: list[tuple[int, dict]] = []

    def refused() -> bool:
        answers.append(agent.send_report())
        return answers[-1][0] != 200

    wait_until(refused, 30, 0.2, "the revoked server's session to be refused")
    return {"status": answers[-1][0], **answers[-1][1]}


def test_a_revoked_servers_open_session_is_refused_within_the_session_cache_time(
    collector: Collector,
) -> None:
    _, token = collector.partner("acme")
    agent = enroll_agent(collector.url, token)
    assert agent.send_report()[0] == 200
    assert agent.send_report()[0] == 200  # the session is now kept in memory

    collector.cli("server", "revoke", agent.server_id)

    doc = refused_within_the_cache_time(agent)
    assert doc["status"] == 403 and doc["error"] == "revoked", doc


def test_without_the_session_cache_a_revoked_session_is_refused_at_its_next_request(
    make_collector: MakeCollector,
) -> None:
    collector = make_collector("[collector]\nsession_cache_s = 0\n")
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


def test_a_kept_session_lapses_after_its_time_and_the_cache_is_bounded(monkeypatch) -> None:
    now = [100.0]
    cache: SessionCache[str] = SessionCache(clock=lambda: now[0])
    cache.put("ses_a", "srv_1", "a", 5)
    cache.put("ses_b", "srv_2", "b", 5)
    cache.put("ses_off", "srv_2", "x", 0)  # session_cache_s = 0: nothing kept
    assert cache.get("ses_a") == "a" and cache.get("ses_off") is None
    now[0] = 105.0
    assert cache.get("ses_a") is None  # looked up again from here on
    cache.put("ses_a", "srv_1", "a", 5)
    cache.forget_server("srv_1")  # a re-enrollment here ended srv_1's sessions
    assert cache.get("ses_a") is None and cache.get("ses_b") is None  # b lapsed too
    monkeypatch.setattr(session_cache, "MAX_SESSIONS", 4)
    for i in range(9):
        cache.put(f"ses_{i}", "srv", str(i), 60)
    assert len(cache) <= 4 and cache.get("ses_8") == "8"
