"""The OpenAPI document describes what the partner endpoints really answer: every partner
endpoint that answers JSON has a response schema, the document is valid OpenAPI 3.1, and
real responses of a running collector validate against it."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from harness.net import http
from tests.portal.world import HEADER, World, call

BINARY = {
    "/api/v1/servers/{server_id}/backups/{backup_id}/envelope",
    "/api/v1/servers/{server_id}/backups/{backup_id}/object",
}


@pytest.fixture(scope="module")
def doc(world: World) -> dict[str, Any]:
    status, _, body = http("GET", world.collector.url + "/api/v1/openapi.json")
    assert status == 200
    return json.loads(body)


def _check(doc: dict[str, Any], method: str, template: str, status: int, body: Any) -> None:
    responses = doc["paths"][template][method.lower()]["responses"]
    assert str(status) in responses, (method, template, status, body)
    schema = responses[str(status)]["content"]["application/json"]["schema"]
    root = {**schema, "components": doc["components"]}
    errors = sorted(Draft202012Validator(root).iter_errors(body), key=str)
    assert not errors, (method, template, [e.message for e in errors[:3]])


def test_the_document_is_valid_openapi(doc: dict[str, Any]) -> None:
    validate(doc)


def test_every_partner_endpoint_has_a_response_schema(doc: dict[str, Any]) -> None:
    missing = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            partner = op.get("security") == [{"partnerKey": []}]
            if not partner or path in BINARY:
                continue
            ok = [s for s, r in op["responses"].items() if s.startswith("2") and "content" in r]
            if not ok:
                missing.append(f"{method.upper()} {path}")
    assert not missing, missing


def test_real_responses_validate_against_the_document(world: World, doc: dict[str, Any]) -> None:
    c, acme, admin = world.collector, world.keys["acme"], world.keys["acme-admin"]
    sid, inc = world.servers["museum-1"], world.incidents["museum-1"]
    month = time.strftime("%Y-%m")
    gets = {
        "/api/v1/servers": "/api/v1/servers",
        "/api/v1/servers/{server_id}": f"/api/v1/servers/{sid}",
        "/api/v1/servers/{server_id}/cameras": f"/api/v1/servers/{sid}/cameras",
        "/api/v1/servers/{server_id}/camera-events": f"/api/v1/servers/{sid}/camera-events",
        "/api/v1/servers/{server_id}/storage-history": f"/api/v1/servers/{sid}/storage-history",
        "/api/v1/servers/{server_id}/backups": f"/api/v1/servers/{sid}/backups",
        "/api/v1/servers/{server_id}/backup-status": f"/api/v1/servers/{sid}/backup-status",
        "/api/v1/servers/{server_id}/public-key": f"/api/v1/servers/{sid}/public-key",
        "/api/v1/backup-policy": "/api/v1/backup-policy",
        "/api/v1/servers/{server_id}/sma-quote": f"/api/v1/servers/{sid}/sma-quote",
        "/api/v1/contracts": "/api/v1/contracts",
        "/api/v1/contracts/{contract_id}": "/api/v1/contracts/A-M",
        "/api/v1/contract-findings": "/api/v1/contract-findings",
        "/api/v1/incidents": "/api/v1/incidents",
        "/api/v1/incidents/{incident_id}": f"/api/v1/incidents/{inc}",
        "/api/v1/incident-priorities": "/api/v1/incident-priorities",
        "/api/v1/reports/monthly": f"/api/v1/reports/monthly?month={month}",
        "/api/v1/sla/due": "/api/v1/sla/due?plan=sma&priority=high&opened=2026-01-05T10:00:00Z",
        "/api/v1/me": "/api/v1/me",
        "/api/v1/users": "/api/v1/users",
        "/api/v1/api-keys": "/api/v1/api-keys",
        "/api/v1/enrollment-tokens": "/api/v1/enrollment-tokens",
        "/api/v1/notify/channels": "/api/v1/notify/channels",
        "/api/v1/notify/routes": "/api/v1/notify/routes",
        "/api/v1/notify/silences": "/api/v1/notify/silences",
        "/api/v1/notify/events": "/api/v1/notify/events",
    }
    for template, path in gets.items():
        for key in (acme, world.keys["museum"]) if "/servers" in template else (acme,):
            status, body = call(c, key, "GET", path)
            if key != acme and status == 403:
                continue
            _check(doc, "GET", template, status, body)
            assert status == 200, (path, body)
    _, servers = call(c, acme, "GET", "/api/v1/servers")
    assert len(servers["servers"]) == 3 and all(s["contract"] for s in servers["servers"])

    def post(method: str, template: str, path: str, body: Any, key: str = admin) -> Any:
        status, out = call(c, key, method, path, body)
        _check(doc, method, template, status, out)
        assert 200 <= status < 300, (path, out)
        return out

    new = post(
        "POST",
        "/api/v1/incidents",
        "/api/v1/incidents",
        {"contract_id": "A-M", "priority": "P3", "server_id": sid, "title": "schema"},
    )
    post(
        "POST",
        "/api/v1/incidents/{incident_id}/{action}",
        f"/api/v1/incidents/{new['id']}/acknowledge",
        {},
    )
    user = post(
        "POST",
        "/api/v1/users",
        "/api/v1/users",
        {"email": "schema@example.test", "password": "long enough pw", "role": "viewer"},
    )
    post("POST", "/api/v1/users/{user_id}/{action}", f"/api/v1/users/{user['id']}/disable", None)
    post("POST", "/api/v1/api-keys", "/api/v1/api-keys", {"label": "schema"})
    _, keys = call(c, admin, "GET", "/api/v1/api-keys")
    kid = next(k["id"] for k in keys["api_keys"] if k["label"] == "schema")
    post("DELETE", "/api/v1/api-keys/{key_id}", f"/api/v1/api-keys/{kid}", None)
    post("POST", "/api/v1/enrollment-tokens", "/api/v1/enrollment-tokens", {"uses": 1})
    contract = {
        "customer": "Schema",
        "plan": "warranty",
        "licence_ids": "LIC-S",
        "start": "2026-01-01",
    }
    post("PUT", "/api/v1/contracts/{contract_id}", "/api/v1/contracts/S-1", contract)
    post("DELETE", "/api/v1/contracts/{contract_id}", "/api/v1/contracts/S-1", None)
    csv = HEADER + "D-1,Dry,acme,warranty,LIC-D,2026-01-01,2026-01-01\n"
    post("POST", "/api/v1/contracts/import", "/api/v1/contracts/import?dry_run=1", csv)
    post("PUT", "/api/v1/incident-priorities", "/api/v1/incident-priorities", {"overrides": {}})
    promised = {"interval": "6h", "window": "", "keep_last": 28, "keep_daily": 30}
    promised.update(keep_weekly=8, keep_monthly=24)  # museum-1's premium promise
    post("PUT", "/api/v1/backup-policy", "/api/v1/backup-policy", promised)
    _, tokens = call(c, admin, "GET", "/api/v1/enrollment-tokens")
    tid = tokens["enrollment_tokens"][0]["id"]
    post("DELETE", "/api/v1/enrollment-tokens/{token_id}", f"/api/v1/enrollment-tokens/{tid}", None)


def test_refusals_match_the_error_schema(world: World, doc: dict[str, Any]) -> None:
    status, body = call(world.collector, world.keys["museum"], "GET", "/api/v1/contracts")
    assert status == 403
    schema = {**doc["components"]["schemas"]["ErrorBody"], "components": doc["components"]}
    assert not list(Draft202012Validator(schema).iter_errors(body))
