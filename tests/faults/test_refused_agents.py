"""Refused agents are said in the collector's log, once per server and reason per
interval (with the count of refusals not logged); a server refused for its clock shows
"clock off by N s" to its partner instead of a "pending" without a reason."""

from __future__ import annotations

import re
from pathlib import Path

from harness.database import drop_collector_database
from harness.enrolled import enroll_agent
from harness.net import http, page_session_cookie, wait_until


def test_agents_of_a_recreated_database_are_logged_once(make_collector, tmp_path: Path):
    data = tmp_path / "data"
    c = make_collector("[collector]\nrefusal_log_interval_s = 2\n", data_dir=data)
    _, token = c.partner("acme")
    agent = enroll_agent(c.url, token)
    c.stop()
    drop_collector_database(data)  # the database is recreated: the agent is unknown now
    c.start()

    for _ in range(5):
        status, body = agent.session_request()
        assert status == 401 and body["error"] == "unknown_server", body
    line = f"refused agent '{agent.server_id}'"
    assert c.log().count(line) == 1, c.log()
    assert "unknown_server" in c.log()

    def logged_again() -> bool:
        assert agent.session_request()[0] == 401
        return c.log().count(line) == 2

    wait_until(logged_again, interval=0.5, what="the next interval's line")
    assert re.search(r"\(\d+ more refusals of it not logged", c.log()), c.log()


def test_stale_clock_is_shown_to_the_partner(make_collector, tmp_path: Path):
    c = make_collector(data_dir=tmp_path / "data")
    key, token = c.partner("acme")
    agent = enroll_agent(c.url, token)
    status, body = agent.session_request(clock_offset_s=-1000)
    assert status == 401 and body["error"] == "clock_skew", body

    status, server = c.api(key, f"/api/v1/servers/{agent.server_id}")
    assert status == 200
    assert server["status"] == "pending"
    assert -1010 < server["clock_offset_s"] < -990
    assert server["status_reasons"][0].startswith("clock off by -1"), server
    _, fleet = c.api(key, "/api/v1/servers")
    assert fleet["servers"][0]["status_reasons"][0].startswith("clock off by"), fleet
    assert f"refused agent {agent.server_id}" in c.log()

    # once its clock is right again, the reason goes
    assert agent.session_request()[0] == 201
    _, server = c.api(key, f"/api/v1/servers/{agent.server_id}")
    assert server["clock_offset_s"] is None
    assert not any("clock" in r for r in server["status_reasons"])


def test_stale_clock_of_someone_else_is_not_pinned_on_the_server(make_collector, tmp_path: Path):
    """A session request naming the server but signed by another key puts no offset on it."""
    c = make_collector(data_dir=tmp_path / "data")
    key, token = c.partner("acme")
    agent = enroll_agent(c.url, token, "rec-01")
    other = enroll_agent(c.url, token, "rec-02")
    other.server_id = agent.server_id
    status, _ = other.session_request(clock_offset_s=5000)
    assert status == 401
    _, server = c.api(key, f"/api/v1/servers/{agent.server_id}")
    assert server["clock_offset_s"] is None
    assert "(unverified)" in c.log()


def test_server_page_shows_the_clock_reason(make_collector, tmp_path: Path):
    c = make_collector(data_dir=tmp_path / "data")
    key, token = c.partner("acme")
    agent = enroll_agent(c.url, token)
    agent.session_request(clock_offset_s=900)
    status, _, body = http(
        "GET", f"{c.url}/servers/{agent.server_id}", headers=page_session_cookie(c.url, key)
    )
    assert status == 200, body[:300]
    assert b"clock off by +9" in body
