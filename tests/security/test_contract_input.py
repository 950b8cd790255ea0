"""Malformed contract and incident input against a real collector process: every refusal
is a 4xx with a message that says what is wrong, never a 500, and nothing is stored.
A value that would break a later read is refused when it is written: each test lists
contracts, incidents and findings afterwards."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness.database import PrivatePostgres, own_database_env
from harness.net import http
from harness.processes import BIN, Collector

TODAY = time.strftime("%Y-%m-%d")
GOOD = {"customer": "Museum", "plan": "maintenance-support", "licence_ids": "L1", "start": TODAY}
LISTINGS = ("/api/v1/contracts", "/api/v1/incidents", "/api/v1/contract-findings")


@pytest.fixture(scope="module")
def collector(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PrivatePostgres | None
) -> Iterator[Collector]:
    """One collector for the module (each case is a request that must change nothing)."""
    root = tmp_path_factory.mktemp("input")
    c = Collector(root / "collector", env=own_database_env(postgres_server)).start()
    try:
        yield c
    finally:
        c.kill(signal.SIGTERM)


@pytest.fixture(scope="module")
def key(collector: Collector) -> str:
    k, _ = collector.partner("acme")
    status, _ = send(collector, k, "PUT", "/api/v1/contracts/OK-1", json.dumps(GOOD).encode())
    assert status == 200
    return k


def send(
    collector: Collector,
    key: str,
    method: str,
    path: str,
    body: bytes | None = None,
    ctype: str = "",
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    if body is not None:
        headers["Content-Type"] = ctype or "application/json"
    status, _, out = http(method, collector.url + path, body, headers)
    try:
        return status, json.loads(out) if out else None
    except ValueError:
        return status, out


def refused(status: int, body: Any) -> None:
    assert 400 <= status < 500, (status, body)
    assert isinstance(body, dict) and body.get("error") and body.get("message"), body


def reads_still_work(collector: Collector, key: str) -> None:
    for path in LISTINGS:
        status, body = send(collector, key, "GET", path)
        assert status == 200, (path, body)
    status, body = send(collector, key, "GET", "/api/v1/contracts/OK-1")
    assert status == 200, body


def contract_ids(collector: Collector, key: str) -> list[str]:
    return [c["id"] for c in send(collector, key, "GET", "/api/v1/contracts")[1]["contracts"]]


# --- PUT /api/v1/contracts/{id} -----------------------------------------------------------

BAD_JSON_BODIES = {
    "invalid utf-8": b'{"customer": "Caf\xe9", "plan": "warranty"}',
    "NaN literal": b'{"customer": "x", "plan": "maintenance-support", "licence_ids": "L1", '
    b'"start": "2026-01-01", "term_months": NaN}',
    "Infinity literal": b'{"customer": "x", "plan": "maintenance-support", "licence_ids": "L1", '
    b'"start": "2026-01-01", "notice_days": Infinity}',
    "lone surrogate": b'{"customer": "\\ud800", "plan": "maintenance-support", '
    b'"licence_ids": "L1", "start": "2026-01-01"}',
    "deeply nested": b'{"list_prices": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
}


@pytest.mark.parametrize("name", sorted(BAD_JSON_BODIES))
def test_put_contract_bad_body(collector: Collector, key: str, name: str) -> None:
    status, body = send(collector, key, "PUT", "/api/v1/contracts/X-1", BAD_JSON_BODIES[name])
    refused(status, body)
    assert "X-1" not in contract_ids(collector, key)
    reads_still_work(collector, key)


BAD_FIELDS: dict[str, dict[str, Any]] = {
    "term_months 1e400": {"term_months": "__1e400__"},
    "term_months 1e308": {"term_months": 1e308},
    "term_months 2^63": {"term_months": 2**63},
    "term_months 2^64": {"term_months": 2**64},
    "term_months -1": {"term_months": -1},
    "term_months 12.5": {"term_months": 12.5},
    "term_days 1e308": {"term_days": 1e308},
    "grace_days -1e308": {"grace_days": -1e308},
    "notice_days 2^63": {"notice_days": 2**63},
    "renewals 2^63": {"renewals": [2**63]},
    "renewals 1e308": {"renewals": "1e308"},
    "price NaN": {"list_prices": {"base": "nan"}},
    "price inf": {"list_prices": {"base": "inf"}},
    "price 1e400": {"list_prices": {"base": "__1e400__"}},
    "price 1e308": {"list_prices": {"base": 1e308}},
    "price 2^63": {"list_prices": {"base": 2**63}},
    "price negative": {"list_prices": {"base": -5}},
    "start year 1": {"start": "0001-01-01"},
    "start 1969": {"start": "1969-12-31"},
    "start year 10000": {"start": "10000-01-01"},
    "start 31.12.1969": {"start": "31.12.1969"},
    "start 9999-12-31": {"start": "9999-12-31"},
    "installed_on year 1": {"installed_on": "0001-01-01"},
    "cancelled_on 1969-12-31": {"cancelled_on": "1969-12-31"},
    "ends_on 1900-01-01": {"ends_on": "1900-01-01"},
    "start a number": {"start": 1e308},
    "customer lone surrogate": {"customer": "\ud800x"},
    "customer NUL": {"customer": "a\x00b"},
    "licence huge list": {"licence_ids": ["L"] * 100_000},
    "closed days": {"hours": "09:00-17:00", "timezone": "Mars/Olympus"},
}


def _encode(fields: dict[str, Any]) -> bytes:
    text = json.dumps({**GOOD, **fields})
    return text.replace('"__1e400__"', "1e400").encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("name", sorted(BAD_FIELDS))
def test_put_contract_bad_field(collector: Collector, key: str, name: str) -> None:
    cid = "F-" + str(abs(hash(name)))
    status, body = send(
        collector, key, "PUT", f"/api/v1/contracts/{cid}", _encode(BAD_FIELDS[name])
    )
    refused(status, body)
    assert cid not in contract_ids(collector, key)
    reads_still_work(collector, key)


def test_a_far_future_contract_is_refused_or_readable(collector: Collector, key: str) -> None:
    """Dates up to 9999 are dates; a term whose end cannot be computed is refused when
    written, never found out by every later list."""
    for i, fields in enumerate(
        (
            {"start": "9998-12-31", "term_months": 120},
            {"start": "9999-06-01", "plan": "warranty", "installed_on": "9999-06-01"},
            {"start": "9999-12-01", "auto_renew": True},
            {"cancelled_on": "9999-12-31"},
            {"cancelled_on": "9999-12-31", "auto_renew": True},
            {"ends_on": "9999-12-31", "grace_days": 3660},
            {"start": "1970-01-01", "renewals": [120] * 900},
        )
    ):
        status, body = send(collector, key, "PUT", f"/api/v1/contracts/FF-{i}", _encode(fields))
        assert status < 500, body
        if status != 200:
            refused(status, body)
        reads_still_work(collector, key)
    # The scheduled check run over these contracts must not fail either.
    out = collector.cli("check", "--json")
    assert json.loads(out)["count"] >= 0
    reads_still_work(collector, key)


# --- POST /api/v1/contracts/import --------------------------------------------------------

HEAD = "contract_id,customer,partner,plan,licence_ids,start,term_months\n"
BAD_FILES: dict[str, tuple[bytes, str]] = {
    "csv invalid utf-8": (
        HEAD.encode() + b"I-1,Caf\xe9,acme,warranty,L1,2026-01-01,\n",
        "text/csv",
    ),
    "csv nan": ((HEAD + "I-1,x,acme,maintenance-support,L1,2026-01-01,nan\n").encode(), "text/csv"),
    "csv inf": ((HEAD + "I-1,x,acme,maintenance-support,L1,2026-01-01,inf\n").encode(), "text/csv"),
    "csv 1e308": (
        (HEAD + "I-1,x,acme,maintenance-support,L1,2026-01-01,1e308\n").encode(),
        "text/csv",
    ),
    "csv 2^63": (
        (HEAD + f"I-1,x,acme,maintenance-support,L1,2026-01-01,{2**63}\n").encode(),
        "text/csv",
    ),
    "csv year 1": ((HEAD + "I-1,x,acme,maintenance-support,L1,0001-01-01,\n").encode(), "text/csv"),
    "csv 1969": ((HEAD + "I-1,x,acme,maintenance-support,L1,01.01.1969,\n").encode(), "text/csv"),
    "csv digits": (
        (HEAD + "I-1,x,acme,maintenance-support,L1,2026-01-01," + "9" * 5000 + "\n").encode(),
        "text/csv",
    ),
}
_TOML = """[[contract]]
contract_id = "I-1"
customer = "x"
partner = "acme"
plan = "maintenance-support"
licence_ids = ["L1"]
start = 2026-01-01
"""
for _name, _extra in {
    "toml nan": "term_months = nan",
    "toml inf": "notice_days = inf",
    "toml -inf": "grace_days = -inf",
    "toml 1e308": "term_months = 1e308",
    "toml 2^63": "term_months = 9223372036854775807",
    "toml float months": "term_months = 12.0",
    "toml price nan": "list_prices = { base = nan }",
    "toml price 1e308": "list_prices = { base = 1e308 }",
    "toml price huge int": "list_prices = { base = 9223372036854775807 }",
    "toml datetime year 1": "installed_on = 0001-01-01T00:00:00",
    "toml renewals inf": "renewals = [inf]",
    "toml bool months": "term_months = true",
}.items():
    BAD_FILES[_name] = ((_TOML + _extra + "\n").encode(), "application/toml")
BAD_FILES["toml start year 1"] = (
    _TOML.replace("start = 2026-01-01", "start = 0001-01-01").encode(),
    "application/toml",
)
BAD_FILES["toml not utf-8"] = (_TOML.encode() + b'note = "\xff"\n', "application/toml")


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_import_bad_file(collector: Collector, key: str, name: str) -> None:
    body, ctype = BAD_FILES[name]
    status, out = send(collector, key, "POST", "/api/v1/contracts/import", body, ctype)
    refused(status, out)
    ids = contract_ids(collector, key)
    assert "OK-1" in ids and "I-1" not in ids
    reads_still_work(collector, key)


# --- incidents ------------------------------------------------------------------------------


BAD_INCIDENTS: dict[str, dict[str, Any]] = {
    "opened year 1": {"opened_at": "0001-01-01T00:00:00+00:00"},
    "opened 1969": {"opened_at": "1969-12-31T23:59:59+00:00"},
    "opened year 10000": {"opened_at": "10000-01-01T00:00:00+00:00"},
    "opened as a number": {"opened_at": 1e308},
    "opened nan": {"opened_at": "nan"},
    "title surrogate": {"title": "\udfff"},
    "title NUL": {"title": "a\x00"},
    "priority number": {"priority": 2**63},
    "server of nobody": {"server_id": "no-such-server"},
}


@pytest.mark.parametrize("name", sorted(BAD_INCIDENTS))
def test_create_incident_bad_field(collector: Collector, key: str, name: str) -> None:
    fields = {"contract_id": "OK-1", "priority": "high", **BAD_INCIDENTS[name]}
    before = send(collector, key, "GET", "/api/v1/incidents")[1]["count"]
    body = json.dumps(fields).encode("utf-8", "surrogatepass")
    status, out = send(collector, key, "POST", "/api/v1/incidents", body)
    refused(status, out)
    assert send(collector, key, "GET", "/api/v1/incidents")[1]["count"] == before
    reads_still_work(collector, key)


BAD_ACTIONS: dict[str, dict[str, Any]] = {
    "at year 9999": {"at": "9999-12-31T23:59:59+00:00"},
    "at year 10000": {"at": "10000-01-01T00:00:00+00:00"},
    "at year 1": {"at": "0001-01-01T00:00:00+00:00"},
    "at far future offset": {"at": "9999-12-31T23:59:59-23:59"},
    "note surrogate": {"note": "\ud83d"},
    "by a number": {"by": 1e308},
}


@pytest.mark.parametrize("name", sorted(BAD_ACTIONS))
def test_incident_action_bad_field(collector: Collector, key: str, name: str) -> None:
    status, inc = send(
        collector,
        key,
        "POST",
        "/api/v1/incidents",
        json.dumps({"contract_id": "OK-1", "priority": "high"}).encode(),
    )
    assert status == 201, inc
    body = json.dumps(BAD_ACTIONS[name]).encode("utf-8", "surrogatepass")
    status, out = send(collector, key, "POST", f"/api/v1/incidents/{inc['id']}/acknowledge", body)
    refused(status, out)
    got = send(collector, key, "GET", f"/api/v1/incidents/{inc['id']}")
    assert got[0] == 200 and got[1]["state"] == "open"
    reads_still_work(collector, key)


# --- listings -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", LISTINGS)
@pytest.mark.parametrize(
    "query",
    [
        "limit=inf",
        "limit=-1",
        "limit=nan",
        "limit=1e308",
        "limit=9223372036854775808",
        "limit=1.5",
        "limit=",
        "offset=-1",
        "offset=inf",
        "offset=99999999999999999999999",
    ],
)
def test_listing_bad_paging(collector: Collector, key: str, path: str, query: str) -> None:
    status, out = send(collector, key, "GET", f"{path}?{query}")
    refused(status, out)
    assert "limit" in out["message"] or "offset" in out["message"]


@pytest.mark.parametrize("path", LISTINGS)
def test_listing_pages(collector: Collector, key: str, path: str) -> None:
    status, out = send(collector, key, "GET", f"{path}?limit=1&offset=0")
    assert status == 200 and out["count"] <= 1


@pytest.mark.parametrize(
    "at", ["0001-01-01T00:00:00%2B00:00", "1969-01-01T00:00Z", "10000-01-01T00:00Z", "nan", "1e308"]
)
def test_findings_at_out_of_range_is_refused(collector: Collector, key: str, at: str) -> None:
    status, out = send(collector, key, "GET", f"/api/v1/contract-findings?at={at}")
    refused(status, out)


@pytest.mark.parametrize(
    "at", ["9999-12-31T23:59:59Z", "9999-12-31T23:59:59-23:59", "1970-01-01T00:00Z"]
)
def test_findings_at_the_edges_never_fail(collector: Collector, key: str, at: str) -> None:
    status, out = send(collector, key, "GET", f"/api/v1/contract-findings?at={at}")
    assert status == 200 or 400 <= status < 500, out


# --- the same files through the CLI ---------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["csv invalid utf-8", "csv 1e308", "toml nan", "toml start year 1"]
)
def test_cli_import_bad_file(
    collector: Collector, key: str, name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    body, ctype = BAD_FILES[name]
    f = tmp_path_factory.mktemp("cli") / ("upload.toml" if "toml" in ctype else "upload.csv")
    f.write_bytes(body)
    for extra in ((), ("--dry-run",)):
        out = subprocess.run(
            [
                str(BIN / "vigil-collector"),
                "contracts",
                "import",
                str(f),
                *extra,
                "--data",
                str(collector.data_dir),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode != 0
        assert "Traceback" not in out.stderr and "vigil-collector:" in out.stderr, out.stderr
    assert "I-1" not in contract_ids(collector, key)
