"""Enrollment over the wire: tokens (uses, expiry), identity files, re-enrollment."""

from __future__ import annotations

import json
import stat
import time

from harness.net import http
from harness.processes import Collector


def test_enroll_makes_private_identity_and_registers_server(
    collector: Collector, make_agent
) -> None:
    key, token = collector.partner("acme")
    agent = make_agent()
    agent.cmd("enroll", "--collector", collector.url, "--token", token)  # as a process
    server_id = json.loads((agent.state_dir / "identity.json").read_text())["server_id"]
    assert server_id.startswith("srv_")
    assert stat.S_IMODE(agent.state_dir.stat().st_mode) == 0o700
    for name in ("agent.key", "identity.json"):
        assert stat.S_IMODE((agent.state_dir / name).stat().st_mode) == 0o600
    ident = json.loads((agent.state_dir / "identity.json").read_text())
    assert ident["collector_url"] == collector.url and ident["partner"] == "acme"
    status, body = collector.api(key, f"/api/v1/servers/{server_id}")
    assert status == 200
    assert body["status"] == "pending" and body["machine_id"] == agent.machine_id


def test_token_use_count_is_enforced(collector: Collector, make_agent) -> None:
    collector.cli("partner", "add", "acme")
    token = collector.last_line("token", "create", "--partner", "acme", "--uses", "2")
    make_agent("a1").enroll(collector.url, token)
    make_agent("a2").enroll(collector.url, token)
    third = make_agent("a3").cmd(
        "enroll", "--collector", collector.url, "--token", token, check=False
    )
    assert third.returncode != 0
    assert "no uses left" in third.stderr


def test_expired_token_is_refused(collector: Collector, make_agent) -> None:
    collector.cli("partner", "add", "acme")
    token = collector.last_line("token", "create", "--partner", "acme", "--ttl", "1s")
    time.sleep(1.5)
    out = make_agent().cmd("enroll", "--collector", collector.url, "--token", token, check=False)
    assert out.returncode != 0 and "expired" in out.stderr


def test_unknown_token_is_refused(collector: Collector, make_agent) -> None:
    out = make_agent().cmd(
        "enroll", "--collector", collector.url, "--token", "vgl_enr_nope", check=False
    )
    assert out.returncode != 0 and "unknown enrollment token" in out.stderr


def test_enroll_twice_needs_force_and_consent_and_keeps_server_id(
    collector: Collector, make_agent
) -> None:
    _, token = collector.partner("acme")
    agent = make_agent()
    first = agent.enroll(collector.url, token)
    old_key = (agent.state_dir / "agent.key").read_bytes()
    again = agent.cmd("enroll", "--collector", collector.url, "--token", token, check=False)
    assert again.returncode != 0 and "--force" in again.stderr
    refused = agent.cmd(
        "enroll", "--collector", collector.url, "--token", token, "--force", check=False
    )
    assert refused.returncode != 0 and f"server allow-reenroll {first}" in refused.stderr
    collector.cli("server", "allow-reenroll", first)
    agent.cmd("enroll", "--collector", collector.url, "--token", token, "--force")
    ident = json.loads((agent.state_dir / "identity.json").read_text())
    assert ident["server_id"] == first, "same machine, same partner: same server"
    assert (agent.state_dir / "agent.key").read_bytes() != old_key, "a new key pair"


def test_token_create_prints_token_on_last_line_and_json(collector: Collector) -> None:
    collector.cli("partner", "add", "acme")
    out = collector.cli(
        "token", "create", "--partner", "acme", "--uses", "3", "--ttl", "2h", "--json"
    )
    lines = out.strip().splitlines()
    assert lines[-1].startswith("vgl_enr_")
    doc = json.loads("\n".join(lines[:-1]))
    assert doc["uses"] == 3 and doc["token"] == lines[-1]


def test_admin_errors_are_clear(collector: Collector) -> None:
    out = collector.cli("token", "create", "--partner", "ghost", check=False)
    assert "no partner named 'ghost'" in out
    collector.cli("partner", "add", "acme")
    assert "already exists" in collector.cli("partner", "add", "acme", check=False)
    assert "not a duration" in collector.cli(
        "token", "create", "--partner", "acme", "--ttl", "soon", check=False
    )


def test_enroll_bad_bodies_get_400_not_500(collector: Collector) -> None:
    url = collector.url + "/api/v1/agent/enroll"
    for body in (
        b"",
        b"{",
        b"[]",
        b'{"protocol": 1}',
        b'{"protocol": "x", "token": 1}',
        b"\xff\xfe",
    ):
        status, _, out = http("POST", url, body, {"Content-Type": "application/json"})
        assert status == 400, (body, status, out)
        assert json.loads(out)["error"] in ("malformed_json", "invalid_field")
