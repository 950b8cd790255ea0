"""The agent endpoints and the partner API over the wire: reports, tenancy, refusals."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator

import pytest

from harness.database import PrivatePostgres, own_database_env
from harness.net import http, wait_until
from harness.processes import Agent, Collector
from harness.signed import batch, post_signed, report, session_for, signed_headers
from protocol import limits

Enrolled = tuple[str, Agent, str, tuple[str, bytes]]


@pytest.fixture(scope="module")
def refusing(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PrivatePostgres | None
) -> Iterator[tuple[Collector, Enrolled]]:
    """One collector and one enrolled agent (as ``enrolled``) for the tests whose every
    request is refused, so that none leaves anything another could see: started once for
    them all, not once each."""
    root = tmp_path_factory.mktemp("refusing")
    collector = Collector(root / "collector", env=own_database_env(postgres_server)).start()
    try:
        key, token = collector.partner("acme")
        agent = Agent(root / "agent")
        server_id = agent.enroll(collector.url, token)
        yield collector, (key, agent, server_id, session_for(agent.state_dir, collector.url))
    finally:
        collector.kill(signal.SIGTERM)


def test_report_arrives_and_is_listed(collector: Collector, enrolled) -> None:
    key, _agent, server_id, session = enrolled
    rep = report(1, software={"product": "VMS", "version": "5.2"})
    status, ack = post_signed(collector.url, session, "/api/v1/agent/reports", batch(rep))
    assert status == 200 and ack["accepted"] == [rep["report_id"]]
    assert ack["settings"]["report_interval_s"] == 60
    status, body = collector.api(key, "/api/v1/servers")
    assert status == 200 and body["count"] == 1
    srv = body["servers"][0]
    assert srv["id"] == server_id and srv["status"] == "ok"
    assert srv["software"] == {"product": "VMS", "version": "5.2"}
    status, detail = collector.api(key, f"/api/v1/servers/{server_id}")
    assert detail["last_seq"] == 1 and detail["reports_received"] == 1
    assert detail["volumes"][0]["mountpoint"] == "/video"


def test_retried_report_is_stored_once(collector: Collector, enrolled) -> None:
    key, _agent, server_id, session = enrolled
    rep = report(1)
    assert post_signed(collector.url, session, "/api/v1/agent/reports", batch(rep))[0] == 200
    status, ack = post_signed(
        collector.url, session, "/api/v1/agent/reports", batch(rep, report(2))
    )
    assert status == 200 and ack["duplicates"] == [rep["report_id"]] and len(ack["accepted"]) == 1
    assert collector.api(key, f"/api/v1/servers/{server_id}")[1]["reports_received"] == 2


def test_partner_sees_only_its_own_servers(collector: Collector, enrolled) -> None:
    _key, _agent, server_id, session = enrolled
    other_key, _ = collector.partner("other")
    post_signed(collector.url, session, "/api/v1/agent/reports", batch(report(1)))
    assert collector.api(other_key, "/api/v1/servers")[1]["count"] == 0
    for path in ("", "/cameras", "/camera-events", "/storage-history"):
        status, body = collector.api(other_key, f"/api/v1/servers/{server_id}{path}")
        assert status == 404, path
        assert body["error"] == "not_found"


def test_unauthenticated_and_wrong_keys_get_401(refusing: tuple[Collector, Enrolled]) -> None:
    collector, _ = refusing
    assert http("GET", collector.url + "/api/v1/servers")[0] == 401
    assert collector.api("vgl_key_wrong", "/api/v1/servers")[0] == 401
    status, _, body = http("POST", collector.url + "/api/v1/agent/reports", batch(report(1)))
    assert status == 401 and json.loads(body)["error"] == "unauthenticated"


def test_revoked_api_key_is_refused(collector: Collector) -> None:
    key, _ = collector.partner("acme")
    assert collector.api(key, "/api/v1/servers")[0] == 200
    collector.cli("apikey", "revoke", key[:14])
    assert collector.api(key, "/api/v1/servers")[0] == 401


def test_revocation_shuts_the_agent_out_within_the_session_cache_time(
    collector: Collector, enrolled
) -> None:
    key, agent, server_id, session = enrolled
    assert post_signed(collector.url, session, "/api/v1/agent/reports", batch(report(1)))[0] == 200
    collector.cli("server", "revoke", server_id)
    answers: list[tuple[int, dict]] = []
    seq = iter(range(2, 10_000))

    def refused() -> bool:
        body = batch(report(next(seq)))
        answers.append(post_signed(collector.url, session, "/api/v1/agent/reports", body))
        return answers[-1][0] != 200

    wait_until(refused, 30, 0.2, "the revoked server's session to be refused")
    status, body = answers[-1]
    assert status == 403 and body["error"] == "revoked"
    assert collector.api(key, f"/api/v1/servers/{server_id}")[1]["status"] == "revoked"
    agent.start()
    wait_until(lambda: agent.polled_status()["revoked"], 30, what="agent status to show revocation")
    assert "revoked" in agent.cmd("status").stdout.lower()


def test_replayed_request_is_refused(collector: Collector, enrolled) -> None:
    _key, _agent, _server_id, session = enrolled
    body = batch(report(1))
    headers = signed_headers(session, "POST", "/api/v1/agent/reports", body)
    url = collector.url + "/api/v1/agent/reports"
    assert http("POST", url, body, headers)[0] == 200
    status, _, out = http("POST", url, body, headers)
    assert status == 401 and json.loads(out)["error"] == "replay"


def test_stale_timestamp_and_bad_signature_are_refused(
    refusing: tuple[Collector, Enrolled],
) -> None:
    collector, enrolled = refusing
    _key, _agent, _server_id, session = enrolled
    body = batch(report(1))
    url = collector.url + "/api/v1/agent/reports"
    old = signed_headers(session, "POST", "/api/v1/agent/reports", body, ts=time.time() - 3600)
    status, _, out = http("POST", url, body, old)
    assert status == 401 and json.loads(out)["error"] == "clock_skew"
    headers = signed_headers(session, "POST", "/api/v1/agent/reports", body)
    status, _, out = http("POST", url, batch(report(2)), headers)  # body swapped after signing
    assert status == 401 and json.loads(out)["error"] == "bad_signature"


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (b"{not json", "malformed_json", None),
        (b'{"protocol": 1, "reports": []}', "invalid_field", "$.reports"),
        (
            batch(report(1, host={"hostname": "h", "cpu_percent": 250})),
            "invalid_field",
            "$.reports[0].host.cpu_percent",
        ),
        (batch(report(-1)), "invalid_field", "$.reports[0].seq"),
        (batch(report(1), protocol=99), "unsupported_protocol", "$.protocol"),
    ],
)
def test_bad_reports_get_400_naming_the_field(
    refusing: tuple[Collector, Enrolled], body, code, field
) -> None:
    collector, enrolled = refusing
    status, out = post_signed(collector.url, enrolled[3], "/api/v1/agent/reports", body)
    assert status == 400 and out["error"] == code
    assert out.get("field") == field


def test_oversized_body_gets_413(refusing: tuple[Collector, Enrolled]) -> None:
    collector, enrolled = refusing
    big = batch(
        report(1, volumes=[{"mountpoint": "x" * 1000, "total": 1, "used": 1, "free": 0}] * 200)
    )
    big = big + b" " * (limits.MAX_BATCH_BYTES + 1 - len(big))
    status, out = post_signed(collector.url, enrolled[3], "/api/v1/agent/reports", big)
    assert status == 413 and out["error"] == "too_large"
    status, _, _ = http(
        "POST", collector.url + "/api/v1/agent/enroll", b"{" + b" " * (10 * 1024 * 1024) + b"}"
    )
    assert status == 413


def test_newer_agent_fields_are_ignored_and_optional_fields_may_be_missing(
    collector: Collector, enrolled
) -> None:
    key, _agent, server_id, session = enrolled
    minimal = {
        "report_id": "min-1",
        "seq": 1,
        "collected_at": time.time(),
        "host": {"hostname": "h"},
    }
    future = report(2, gpu={"temp": 70}, host={"hostname": "h", "quantum": True})
    status, ack = post_signed(
        collector.url, session, "/api/v1/agent/reports", batch(minimal, future)
    )
    assert status == 200 and len(ack["accepted"]) == 2
    assert collector.api(key, f"/api/v1/servers/{server_id}")[1]["last_seq"] == 2


def test_garbage_never_gets_a_5xx(refusing: tuple[Collector, Enrolled]) -> None:
    collector, enrolled = refusing
    key, _agent, server_id, session = enrolled
    bodies = [
        b"",
        b"null",
        b"[]",
        b"\x00" * 64,
        b'{"protocol": 1, "reports": [null]}',
        b'{"protocol": 1e999}',
        json.dumps({"protocol": 1, "reports": [{"seq": "1"}]}).encode(),
        '{"protocol": 1, "reports": [{"report_id": "\u00e9"}]}'.encode(),
    ]
    for body in bodies:
        status, _ = post_signed(collector.url, session, "/api/v1/agent/reports", body)
        assert 400 <= status < 500, body
    for path in (
        "/api/v1/servers/%00",
        "/api/v1/servers/x" + "y" * 5000,
        "/api/v1/servers/a/b/c",
        f"/api/v1/servers/{server_id}/storage-history?since=abc",
    ):
        status, _ = collector.api(key, path)
        assert 400 <= status < 500, path
    for path in ("/api/v1/agent/session", "/api/v1/agent/enroll"):
        status, _, _ = http("POST", collector.url + path, b'{"protocol":1,"server_id":"x"}')
        assert 400 <= status < 500


def test_healthz_metrics_openapi(collector: Collector, enrolled) -> None:
    _key, _agent, _server_id, session = enrolled
    post_signed(collector.url, session, "/api/v1/agent/reports", batch(report(1)))
    http("GET", collector.url + "/api/v1/servers")
    status, _, body = http("GET", collector.url + "/metrics")
    text = body.decode()
    assert status == 200
    assert "vigil_reports_received_total 1.0" in text
    assert 'vigil_requests_rejected_total{reason="unauthenticated"} 1.0' in text
    assert 'vigil_servers{status="ok"} 1.0' in text
    assert "vigil_ingest_latency_seconds_count 1.0" in text
    status, _, body = http("GET", collector.url + "/api/v1/openapi.json")
    doc = json.loads(body)
    assert status == 200 and "/api/v1/servers/{server_id}" in doc["paths"]
    assert "ReportBatch" in doc["components"]["schemas"]


def test_collector_servers_cli(collector: Collector, enrolled) -> None:
    _key, _agent, server_id, session = enrolled
    post_signed(collector.url, session, "/api/v1/agent/reports", batch(report(1)))
    doc = json.loads(collector.cli("servers", "--json"))
    assert [s["id"] for s in doc["servers"]] == [server_id]
    assert server_id in collector.cli("servers")
