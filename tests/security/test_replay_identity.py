"""A signed request replayed after a collector restart is refused; re-enrolling a known
machine needs the operator's consent and never undoes a revocation."""

from __future__ import annotations

import json
import time

import pytest

from agent.client import Refused
from harness.net import http, wait_until
from harness.processes import Collector
from harness.signed import (
    batch,
    enroll_raw,
    post_signed,
    report,
    session_for,
    session_raw,
    signed_headers,
)

REPORTS = "/api/v1/agent/reports"


def _server(c: Collector, key: str, server_id: str) -> dict:
    status, body = c.api(key, f"/api/v1/servers/{server_id}")
    assert status == 200, body
    return body


def test_a_request_captured_before_a_restart_is_refused_after_it(
    collector: Collector, make_agent
) -> None:
    key, token = collector.partner("acme")
    agent = make_agent()
    sid = agent.enroll(collector.url, token)
    session = session_for(agent.state_dir, collector.url)
    delivered = batch(report(1))
    delivered_headers = signed_headers(session, "POST", REPORTS, delivered)
    status, _, _ = http("POST", collector.url + REPORTS, delivered, delivered_headers)
    assert status == 200
    held_back = batch(report(2))  # captured on its way, never delivered
    held_headers = signed_headers(session, "POST", REPORTS, held_back)

    collector.stop()
    collector.start()

    for body, headers in ((delivered, delivered_headers), (held_back, held_headers)):
        status, _, out = http("POST", collector.url + REPORTS, body, headers)
        assert status == 401 and json.loads(out)["error"] == "session_unknown", out
    view = _server(collector, key, sid)
    assert view["reports_received"] == 1 and view["last_seq"] == 1, "nothing more was stored"
    # The agent itself opens a new session and goes on.
    fresh = session_for(agent.state_dir, collector.url)
    assert fresh[0] != session[0]
    assert post_signed(collector.url, fresh, REPORTS, batch(report(3)))[0] == 200


def test_a_running_agent_reopens_its_session_after_a_restart(
    collector: Collector, make_agent
) -> None:
    key, token = collector.partner("acme")
    agent = make_agent()
    sid = agent.enroll(collector.url, token)
    collector.cli("server", "interval", "--server", sid, "1s")
    agent.start()
    wait_until(lambda: _server(collector, key, sid)["reports_received"] >= 1, 30)
    collector.stop()
    collector.start()
    restarted = time.time()
    wait_until(
        lambda: (_server(collector, key, sid)["last_seen"] or 0) > restarted,
        60,
        what="a report after the restart",
    )
    assert agent.proc is not None and agent.proc.poll() is None, "the agent kept running"


def test_reenrolling_a_known_machine_needs_consent(collector: Collector, make_agent) -> None:
    key, token = collector.partner("acme")
    agent = make_agent()
    sid = agent.enroll(collector.url, token)
    before = _server(collector, key, sid)

    status, _, body = enroll_raw(collector.url, token, agent.machine_id)
    assert status == 409 and body["error"] == "already_enrolled"
    assert f"vigil-collector server allow-reenroll {sid}" in body["message"]
    assert "--allow-reenroll" in body["message"]
    # Nothing changed: the agent's own key still opens sessions and reports.
    assert (
        post_signed(
            collector.url, session_for(agent.state_dir, collector.url), REPORTS, batch(report(1))
        )[0]
        == 200
    )
    assert _server(collector, key, sid)["enrolled_at"] == before["enrolled_at"]
    assert "refused re-enrollment of " + sid in collector.log()

    collector.cli("server", "allow-reenroll", sid)
    status, _, body = enroll_raw(collector.url, token, agent.machine_id)
    assert status == 201 and body["server_id"] == sid, "with consent: the same server"
    assert "server " + sid + " re-enrolled" in collector.log()
    with pytest.raises(Refused) as refused:  # the replaced key no longer opens sessions
        session_for(agent.state_dir, collector.url)
    assert refused.value.code == "bad_signature"
    status, _, body = enroll_raw(collector.url, token, agent.machine_id)
    assert status == 409, "the consent was for one re-enrollment"


def test_a_token_made_for_reenrollment_allows_it(collector: Collector, make_agent) -> None:
    _, token = collector.partner("acme")
    agent = make_agent()
    sid = agent.enroll(collector.url, token)
    again = collector.last_line("token", "create", "--partner", "acme", "--allow-reenroll")
    agent.cmd("enroll", "--collector", collector.url, "--token", again, "--force")
    assert json.loads((agent.state_dir / "identity.json").read_text())["server_id"] == sid
    assert "consent by the token" in collector.log()


def test_another_partners_token_never_touches_the_server(collector: Collector, make_agent) -> None:
    key_a, token_a = collector.partner("acme")
    key_b, token_b = collector.partner("rival")
    agent = make_agent()
    sid = agent.enroll(collector.url, token_a)
    status, _, body = enroll_raw(collector.url, token_b, agent.machine_id)
    assert status == 201 and body["server_id"] != sid, "a server of rival's own, not acme's"
    assert collector.api(key_b, f"/api/v1/servers/{sid}")[0] == 404
    assert _server(collector, key_a, sid)["partner"] == "acme"
    assert (
        post_signed(
            collector.url, session_for(agent.state_dir, collector.url), REPORTS, batch(report(1))
        )[0]
        == 200
    )


def test_a_revoked_server_stays_revoked(collector: Collector, make_agent) -> None:
    key, token = collector.partner("acme")
    agent = make_agent()
    sid = agent.enroll(collector.url, token)
    collector.cli("server", "revoke", sid)

    status, _, body = enroll_raw(collector.url, token, agent.machine_id)
    assert status == 409 and "revoked and stays revoked" in body["message"]
    out = collector.cli("server", "allow-reenroll", sid, check=False)
    assert "stays revoked" in out
    consenting = collector.last_line("token", "create", "--partner", "acme", "--allow-reenroll")
    status, _, body = enroll_raw(collector.url, consenting, agent.machine_id)
    assert status == 201 and body["server_id"] != sid, "the machine comes back as a new server"
    assert _server(collector, key, sid)["status"] == "revoked"
    assert session_raw(collector.url, sid)[0] == 403
