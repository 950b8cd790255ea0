"""The installer's tools (status, doctor) and the partner's pages, over the wire."""

from __future__ import annotations

import os
import re

from harness.net import http, page_session_cookie, page_sign_in, wait_until
from harness.processes import Collector


def test_status_and_doctor_of_a_running_agent(collector: Collector, make_agent) -> None:
    _, token = collector.partner("acme")
    agent = make_agent(extra_config='\n[software]\nproduct = "VMS"\nversion = "7.1"\n')
    server_id = agent.enroll(collector.url, token)
    agent.start()
    wait_until(lambda: agent.polled_status()["last_success_at"], 30, what="a first send")
    st = agent.status()
    assert (
        st["server_id"] == server_id
        and st["partner"] == "acme"
        and st["collector"] == collector.url
    )
    assert st["spool"]["reports"] == 0 and st["spool"]["dropped_total"] == 0
    assert st["next_report_at"] is not None and st["running_pid"] == agent.proc.pid
    text = agent.cmd("status").stdout
    assert server_id in text and "last sent" in text
    out = agent.cmd("doctor", check=False)
    assert out.returncode == 0, out.stdout
    for line in ("configuration", "permissions", "collector", "clock", "credentials"):
        assert re.search(rf"\[ok  \] {line}", out.stdout), (line, out.stdout)


def test_doctor_says_what_to_fix(collector: Collector, make_agent) -> None:
    _, token = collector.partner("acme")
    agent = make_agent()
    out = agent.cmd("doctor", check=False)
    assert out.returncode == 1 and "vigil-agent enroll" in out.stdout
    server_id = agent.enroll(collector.url, token)
    os.chmod(agent.state_dir / "agent.key", 0o644)
    collector.cli("server", "revoke", server_id)
    out = agent.cmd("doctor", check=False)
    assert out.returncode == 1
    assert "chmod" in out.stdout and "revoked" in out.stdout
    collector.kill()
    out = agent.cmd("doctor", check=False)
    assert "[FAIL] collector" in out.stdout and "check the URL" in out.stdout


def test_fleet_pages_show_only_the_partners_servers(collector: Collector, make_agent) -> None:
    key, token = collector.partner("acme")
    other_key, other_token = collector.partner("other")
    a = make_agent("a")
    sid = a.enroll(collector.url, token)
    b = make_agent("b")
    other_sid = b.enroll(collector.url, other_token)
    a.start()
    wait_until(lambda: collector.api(key, f"/api/v1/servers/{sid}")[1]["last_seen"], 30)

    status, _, page = http("GET", collector.url + "/")  # urllib follows the redirect
    assert status == 200 and b"E-mail address" in page and b"API key" in page
    status, _, page = page_sign_in(collector.url, "wrong")
    assert status == 401 and b"Unknown API key" in page
    cookie = page_session_cookie(collector.url, key)
    status, _, page = http("GET", collector.url + "/", headers=cookie)
    assert status == 200 and sid.encode() in page and other_sid.encode() not in page
    status, _, page = http("GET", collector.url + f"/servers/{sid}", headers=cookie)
    assert status == 200 and b"Storage" in page and b"Cameras" in page
    status, _, _ = http("GET", collector.url + f"/servers/{other_sid}", headers=cookie)
    assert status == 404
    other_cookie = page_session_cookie(collector.url, other_key)
    status, _, page = http("GET", collector.url + "/", headers=other_cookie)
    assert status == 200 and sid.encode() not in page
