"""A signed request replayed after a collector restart is refused while sessions survive
it; re-enrolling a known machine needs the operator's consent and never undoes a
revocation."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from agent.client import Refused
from harness.net import http, wait_until
from harness.processes import BIN, Collector
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


def test_a_request_received_before_a_restart_is_refused_after_it(
    collector: Collector, make_agent
) -> None:
    """Sessions outlive a restart (their sealing key is the installation's file), and so
    do the nonces: a request received before the restart is a replay after it, while one
    signed then and never delivered is still a request of an open session."""
    key, token = collector.partner("acme")
    agent = make_agent()
    sid = agent.enroll(collector.url, token)
    session = session_for(agent.state_dir, collector.url)
    delivered = batch(report(1))
    delivered_headers = signed_headers(session, "POST", REPORTS, delivered)
    status, _, _ = http("POST", collector.url + REPORTS, delivered, delivered_headers)
    assert status == 200
    held_back = batch(report(2))  # signed, never delivered before the restart
    held_headers = signed_headers(session, "POST", REPORTS, held_back)

    collector.stop()
    collector.start()

    status, _, out = http("POST", collector.url + REPORTS, delivered, delivered_headers)
    assert status == 401 and json.loads(out)["error"] == "replay", out
    assert _server(collector, key, sid)["reports_received"] == 1, "the replay stored nothing"
    status, _, out = http("POST", collector.url + REPORTS, held_back, held_headers)
    assert status == 200, out
    status, _, out = http("POST", collector.url + REPORTS, held_back, held_headers)
    assert status == 401 and json.loads(out)["error"] == "replay", out
    view = _server(collector, key, sid)
    assert view["reports_received"] == 2 and view["last_seq"] == 2
    # The session opened before the restart goes on signing new requests.
    assert post_signed(collector.url, session, REPORTS, batch(report(3)))[0] == 200


def test_sessions_need_the_key_file_not_only_the_database(collector: Collector, make_agent) -> None:
    """A copy of the database without the installation's session key file opens no
    session: a collector given another key answers session_unknown, and the agent opens
    a new session under the new key."""
    _, token = collector.partner("acme")
    agent = make_agent()
    agent.enroll(collector.url, token)
    session = session_for(agent.state_dir, collector.url)
    key_file = collector.data_dir / "session.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(key_file.read_bytes()) == 32

    collector.stop()
    key_file.unlink()  # the database is all that is left
    collector.start()

    assert key_file.read_bytes(), "a new key was made"
    status, body = post_signed(collector.url, session, REPORTS, batch(report(1)))
    assert status == 401 and body["error"] == "session_unknown", body
    fresh = session_for(agent.state_dir, collector.url)
    assert post_signed(collector.url, fresh, REPORTS, batch(report(2)))[0] == 200


def test_a_configured_key_file_is_shared_and_must_exist(
    make_collector, make_agent, tmp_path
) -> None:
    """``[http] session_key_file`` names the key every machine is given: a missing or
    loose one stops the collector at start with one line saying what to do."""
    shared = tmp_path / "shared.key"
    config = f'[http]\nsession_key_file = "{shared}"\n'
    config_file = tmp_path / "shared.toml"
    config_file.write_text(config)
    serve = [
        str(BIN / "vigil-collector"),
        "serve",
        "--data",
        str(tmp_path / "c1"),
        "--config",
        str(config_file),
        "--listen",
        "127.0.0.1:0",
    ]
    out = subprocess.run(serve, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "does not exist" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    shared.write_bytes(os.urandom(32))
    shared.chmod(0o644)
    out = subprocess.run(serve, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "chmod 600" in out.stderr, out.stderr
    shared.chmod(0o600)
    collector = make_collector(config, data_dir=tmp_path / "c1")
    _, token = collector.partner("acme")
    agent = make_agent()
    agent.enroll(collector.url, token)
    session = session_for(agent.state_dir, collector.url)
    assert not (collector.data_dir / "session.key").exists()
    collector.stop()
    collector.start()
    assert post_signed(collector.url, session, REPORTS, batch(report(1)))[0] == 200


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
