"""Malformed input against a real collector: a clear 4xx every time, never a 500, never stored.

Requests are written byte by byte on a socket where an HTTP client would refuse to send
them (invalid UTF-8 in headers, cookies, paths), and signed as a real agent where the
attack needs a session (numbers out of range in a report or a backup run record).
"""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness.database import PrivatePostgres, collector_sql, own_database_env
from harness.net import http
from harness.processes import Agent, Collector
from harness.signed import batch, report, session_for, signed_headers
from protocol import request_auth as ra

Enrolled = tuple[str, str, tuple[str, bytes]]


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PrivatePostgres | None
) -> Iterator[tuple[Collector, Enrolled]]:
    """One collector and one enrolled agent for the module: each attack leaves no trace."""
    root = tmp_path_factory.mktemp("malformed")
    collector = Collector(root / "collector", env=own_database_env(postgres_server)).start()
    try:
        key, token = collector.partner("acme")
        agent = Agent(root / "agent")
        server_id = agent.enroll(collector.url, token)
        yield collector, (key, server_id, session_for(agent.state_dir, collector.url))
    finally:
        collector.kill(signal.SIGTERM)


@pytest.fixture
def collector(served: tuple[Collector, Enrolled]) -> Collector:
    return served[0]


@pytest.fixture
def enrolled(served: tuple[Collector, Enrolled]) -> Enrolled:
    return served[1]


def raw_request(collector: Collector, head: bytes, body: bytes = b"") -> tuple[int, dict]:
    """Send ``head`` (request line and headers, without the blank line) and ``body``."""
    s = socket.create_connection(("127.0.0.1", collector.port), timeout=10)
    s.sendall(
        head + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
    )
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    s.close()
    head_out, _, payload = out.partition(b"\r\n\r\n")
    status = int(head_out.split(b" ", 2)[1])
    try:
        doc = json.loads(payload) if payload else {}
    except ValueError:
        doc = {"raw": payload[:200]}
    return status, doc


def assert_clean_4xx(status: int, doc: dict, *codes: int) -> None:
    assert 400 <= status < 500, (status, doc)
    if codes:
        assert status in codes, (status, doc)
    if "error" in doc:  # a JSON refusal says what is wrong
        assert doc["error"] != "internal_error" and doc["message"], doc


def count(collector: Collector, table: str) -> int:
    with collector_sql(collector.data_dir, collector.env) as db:
        return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


# --- invalid UTF-8 -------------------------------------------------------------------------


def test_invalid_utf8_in_the_authorization_header(collector: Collector) -> None:
    status, doc = raw_request(
        collector, b"GET /api/v1/servers HTTP/1.1\r\nAuthorization: Bearer \xff\xfe"
    )
    assert_clean_4xx(status, doc, 400, 401)


def test_invalid_utf8_in_a_cookie(collector: Collector) -> None:
    status, doc = raw_request(collector, b"GET / HTTP/1.1\r\nCookie: vigil_key=vgl_key_\xff\xfe")
    assert_clean_4xx(status, doc, 400, 401)


@pytest.mark.parametrize("header", [b"X-Vigil-Session", b"X-Vigil-Timestamp", b"X-Vigil-Nonce"])
def test_invalid_utf8_in_agent_headers(collector: Collector, header: bytes) -> None:
    fields = {b"X-Vigil-Session": b"s", b"X-Vigil-Timestamp": b"1", b"X-Vigil-Nonce": b"n"}
    fields[header] = b"\xff\xfe"
    lines = b"".join(b"\r\n%s: %s" % kv for kv in fields.items())
    status, doc = raw_request(
        collector,
        b"POST /api/v1/agent/reports HTTP/1.1" + lines + b"\r\nX-Vigil-Signature: AAAA",
        batch(report(1)),
    )
    assert_clean_4xx(status, doc, 400, 401)


@pytest.mark.parametrize(
    "target",
    [
        b"/api/v1/servers?status=%ff%fe",
        b"/api/v1/servers/%ff%fe",
        b"/api/v1/servers/%ff%fe/backups",
        b"/api/v1/servers/x/backups/%ff%fe/envelope",
        b"/servers/%ff%fe",
        b"/api/v1/servers?status=\xff",
        b"/api/v1/servers/\xff",
    ],
)
def test_invalid_utf8_in_paths_and_queries(
    collector: Collector, enrolled: Enrolled, target: bytes
) -> None:
    key = enrolled[0].encode()
    status, doc = raw_request(
        collector,
        b"GET %s HTTP/1.1\r\nAuthorization: Bearer %s\r\nCookie: vigil_key=%s" % (target, key, key),
    )
    assert_clean_4xx(status, doc, 400)


@pytest.mark.parametrize(
    ("path", "ctype", "body"),
    [
        ("/login", "application/x-www-form-urlencoded", b"api_key=\xff\xfe"),
        ("/login", "application/x-www-form-urlencoded", b"api_key=%ff%fe"),
        ("/api/v1/agent/enroll", "application/json", b'{"protocol": 1, "token": "\xff"}'),
        ("/api/v1/agent/session", "application/json", b'{"protocol": 1, "server_id": "\xfe"}'),
    ],
)
def test_invalid_utf8_in_bodies(collector: Collector, path: str, ctype: str, body: bytes) -> None:
    head = f"POST {path} HTTP/1.1\r\nContent-Type: {ctype}".encode()
    status, doc = raw_request(collector, head, body)
    # The sign-in form refuses a post without its CSRF token (403) before reading fields.
    assert_clean_4xx(status, doc, 400, 401, *((403,) if path == "/login" else ()))


# --- nesting -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/agent/enroll", "/api/v1/agent/session"])
def test_deeply_nested_json_on_open_routes(collector: Collector, path: str) -> None:
    body = b'{"protocol": 1, "x": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    status, doc = raw_request(
        collector, f"POST {path} HTTP/1.1\r\nContent-Type: application/json".encode(), body
    )
    assert_clean_4xx(status, doc, 400)


@pytest.mark.parametrize("path", ["/api/v1/agent/reports", "/api/v1/agent/backup-runs"])
def test_deeply_nested_json_from_an_agent(
    collector: Collector, enrolled: Enrolled, path: str
) -> None:
    _key, _sid, session = enrolled
    body = b'{"protocol": 1, "x": ' + b"[" * 50000 + b"]" * 50000 + b"}"
    status, _, out = http(
        "POST", collector.url + path, body, signed_headers(session, "POST", path, body)
    )
    assert_clean_4xx(status, json.loads(out), 400, 413)


def test_deeply_nested_toml_import(collector: Collector, enrolled: Enrolled) -> None:
    key = enrolled[0]
    body = b"a = " + b"[" * 5000 + b"]" * 5000
    status, _, out = http(
        "POST",
        collector.url + "/api/v1/contracts/import",
        body,
        {"Authorization": f"Bearer {key}", "Content-Type": "application/toml"},
    )
    assert_clean_4xx(status, json.loads(out), 400)


# --- numbers and dates ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "limit=inf",
        "limit=nan",
        "limit=-5",
        "limit=99999999999999999999",
        "limit=1e308",
        "offset=-1",
        "offset=inf",
        "offset=99999999999999999999",
    ],
)
def test_listing_parameters_out_of_range(
    collector: Collector, enrolled: Enrolled, query: str
) -> None:
    status, doc = collector.api(enrolled[0], f"/api/v1/servers?{query}")
    assert_clean_4xx(status, doc, 400)
    assert doc["field"] == query.split("=")[0]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e308", "-1", "253402300800", "x"])
@pytest.mark.parametrize("resource", ["camera-events", "storage-history"])
def test_time_parameters_out_of_range(
    collector: Collector, enrolled: Enrolled, resource: str, value: str
) -> None:
    key, server_id, _ = enrolled
    status, doc = collector.api(key, f"/api/v1/servers/{server_id}/{resource}?since={value}")
    assert_clean_4xx(status, doc, 400)
    assert doc["field"] == "since"


def test_listings_still_page_normally(collector: Collector, enrolled: Enrolled) -> None:
    key, server_id, _ = enrolled
    status, doc = collector.api(key, "/api/v1/servers?limit=1&offset=0")
    assert status == 200 and doc["count"] == 1 and doc["servers"][0]["id"] == server_id
    assert collector.api(key, "/api/v1/servers?limit=5&offset=3")[1]["servers"] == []
    since = int(time.time()) - 3600
    assert collector.api(key, f"/api/v1/servers/{server_id}/camera-events?since={since}")[0] == 200


def post_report(collector: Collector, session: tuple[str, bytes], rep: dict) -> tuple[int, dict]:
    body = json.dumps({"protocol": 1, "reports": [rep]}).encode()
    path = "/api/v1/agent/reports"
    status, _, out = http(
        "POST", collector.url + path, body, signed_headers(session, "POST", path, body)
    )
    return status, json.loads(out)


BAD_REPORTS: dict[str, Any] = {
    "seq 2^63": lambda: report(2**63),
    "collected far in the future": lambda: report(1, collected_at=time.time() + 30 * 86400),
    "collected after year 9999": lambda: report(1, collected_at=253402300800.0),
    "collected before 1970": lambda: report(1, collected_at=-1.0),
    "collected at 1e308": lambda: report(1, collected_at=1e308),
    "total 2^63": lambda: report(
        1, volumes=[{"mountpoint": "/v", "total": 2**63, "used": 0, "free": 0}]
    ),
    "negative size": lambda: report(
        1, volumes=[{"mountpoint": "/v", "total": 10, "used": -1, "free": 0}]
    ),
    "used above total": lambda: report(
        1, volumes=[{"mountpoint": "/v", "total": 10, "used": 100, "free": 0}]
    ),
    "free above total": lambda: report(
        1, volumes=[{"mountpoint": "/v", "total": 10, "used": 1, "free": 100}]
    ),
    "uptime 1e308": lambda: report(1, host={"hostname": "h", "uptime_s": 1e308}),
    "boot before 1970": lambda: report(1, host={"hostname": "h", "boot_time": -5.0}),
    "memory 2^64": lambda: report(1, host={"hostname": "h", "memory_total": 2**64}),
    "dropped 2^63": lambda: report(1, dropped_reports=2**63),
    "camera probed after 9999": lambda: report(
        1, cameras=[{"key": "c1", "address": "10.0.0.1", "verdict": "ok", "probed_at": 1e12}]
    ),
    "camera latency 1e308": lambda: report(
        1, cameras=[{"key": "c1", "address": "10.0.0.1", "verdict": "ok", "latency_ms": 1e308}]
    ),
    "camera port 70000": lambda: report(
        1, cameras=[{"key": "c1", "address": "10.0.0.1", "verdict": "ok", "port": 70000}]
    ),
    "number out of float range": lambda: report(1, collected_at="__1e400__"),
}


@pytest.mark.parametrize("name", list(BAD_REPORTS))
def test_reports_with_numbers_out_of_range_are_refused_and_not_stored(
    collector: Collector, enrolled: Enrolled, name: str
) -> None:
    _key, _sid, session = enrolled
    before = count(collector, "reports")
    rep = BAD_REPORTS[name]()
    body = json.dumps({"protocol": 1, "reports": [rep]}).encode().replace(b'"__1e400__"', b"1e400")
    path = "/api/v1/agent/reports"
    status, _, out = http(
        "POST", collector.url + path, body, signed_headers(session, "POST", path, body)
    )
    doc = json.loads(out)
    assert_clean_4xx(status, doc, 400)
    assert doc["field"], doc
    assert count(collector, "reports") == before
    status, doc = post_report(collector, session, report(1))  # the same agent, sane again
    assert status == 200 and len(doc["accepted"]) == 1


def test_a_non_finite_request_timestamp_is_refused(
    collector: Collector, enrolled: Enrolled
) -> None:
    _key, _sid, session = enrolled
    path = "/api/v1/agent/reports"
    body = batch(report(1))
    before = count(collector, "reports")
    for stamp in ("nan", "NaN", "inf", "-inf", "1e400"):
        headers = signed_headers(session, "POST", path, body)
        headers[ra.H_TIMESTAMP] = stamp
        headers[ra.H_SIGNATURE] = ra.sign_request(
            session[1], "POST", path, stamp, headers[ra.H_NONCE], body
        )
        status, _, out = http("POST", collector.url + path, body, headers)
        assert_clean_4xx(status, json.loads(out), 400, 401)
    assert count(collector, "reports") == before


def post_run(collector: Collector, session: tuple[str, bytes], run: dict) -> tuple[int, dict]:
    body = json.dumps(run).encode()
    path = "/api/v1/agent/backup-runs"
    status, _, out = http(
        "POST", collector.url + path, body, signed_headers(session, "POST", path, body)
    )
    return status, json.loads(out)


def _run(**extra: object) -> dict[str, object]:
    now = time.time()
    return {"outcome": "failed", "reason": "x", "started_at": now - 5, "finished_at": now, **extra}


@pytest.mark.parametrize(
    "run",
    [
        _run(bytes=-5),
        _run(files=2**63),
        _run(seq=2**70),
        _run(started_at=-1.0),
        _run(finished_at=1e308),
        _run(started_at=253402300800.0),
        _run(outcome="ok", seq=3, backup_id="never-stored"),
        _run(outcome="unchanged", seq=3, backup_id="never-stored"),
    ],
    ids=[
        "bytes=-5",
        "files=2**63",
        "seq=2**70",
        "started_at=-1",
        "finished_at=1e308",
        "started_at=year 10000",
        "ok run of a backup never stored",
        "unchanged run of a backup never stored",
    ],
)
def test_backup_run_records_out_of_range_or_unfounded_are_refused(
    collector: Collector, enrolled: Enrolled, run: dict
) -> None:
    key, server_id, session = enrolled
    before = count(collector, "backup_runs")
    status, doc = post_run(collector, session, run)
    assert_clean_4xx(status, doc, 400, 409, 422)
    assert count(collector, "backup_runs") == before
    st = collector.api(key, f"/api/v1/servers/{server_id}/backup-status")[1]
    assert st["last_success"] is None
    status, doc = post_run(collector, session, _run())  # a plain failure is still recorded
    assert status == 201, doc
