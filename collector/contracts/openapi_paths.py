"""The contract API's paths in the collector's OpenAPI document."""

from __future__ import annotations

from typing import Any


def _pdf(op: dict[str, Any]) -> dict[str, Any]:
    """``op`` answering a PDF document."""
    pdf = {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}
    op["responses"]["200"] = {"description": "a PDF document", "content": pdf}
    return op


def _op(summary: str, *params: str, body: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{"partnerKey": []}],
        "responses": {
            "200": {"description": "OK"},
            "400": {"description": "invalid input (ErrorBody)"},
            "404": {"description": "not found, or not the partner's (ErrorBody)"},
        },
    }
    if params:
        op["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in params
        ]
    if body:
        op["requestBody"] = {"content": {"application/json": {"schema": {"type": "object"}}}}
    return op


OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/contracts": {
        "get": _op("The partner's contracts with coverage today (?limit=&offset=)")
    },
    "/api/v1/contracts/import": {
        "post": _op("Import contracts (CSV or TOML body; ?dry_run=1, ?keep_missing=1)")
    },
    "/api/v1/contracts/{contract_id}": {
        "get": _op("One contract and its version history", "contract_id"),
        "put": _op("Create or change a contract", "contract_id", body=True),
        "delete": _op("Remove a contract (a removed version)", "contract_id"),
    },
    "/api/v1/contract-findings": {
        "get": _op(
            "Findings of the last check run; ?at=TIME evaluates at that instant (?limit=&offset=)"
        )
    },
    "/api/v1/incidents": {
        "get": _op("Incidents with their response/resolution clocks (?state=&limit=&offset=)"),
        "post": _op("Open an incident by hand (opened_at kept as given)", body=True),
    },
    "/api/v1/incidents/{incident_id}": {"get": _op("One incident", "incident_id")},
    "/api/v1/incidents/{incident_id}/{action}": {
        "post": _op(
            "acknowledge, pause, resume, resolve, accept or reopen (body: at, by, note)",
            "incident_id",
            "action",
            body=True,
        )
    },
    "/api/v1/incident-priorities": {
        "get": _op("Finding kind -> incident priority: defaults and the partner's overrides"),
        "put": _op("Set the partner's overrides", body=True),
    },
    "/api/v1/reports/monthly": {
        "get": _op("Monthly compliance report (?month=YYYY-MM&by=customer|partner&format=csv)")
    },
    "/api/v1/reports/monthly.pdf": {
        "get": _pdf(
            _op(
                "Monthly compliance report as PDF (?month=YYYY-MM&by=customer|partner): the "
                "CSV's figures, a table on A4 landscape pages"
            )
        )
    },
    "/api/v1/sla/due": {"get": _op("Due times (?plan&priority&opened[&country&subdiv&tz&hours])")},
    "/api/v1/servers/{server_id}/sma-quote": {
        "get": _op("SMA yearly price from the server's modules (?year=N)", "server_id")
    },
    "/api/v1/servers/{server_id}/sma-upgrade": {
        "get": _op(
            "Edition upgrade price (?from=EDITION&to=EDITION); old edition credited with an "
            "active SMA",
            "server_id",
        )
    },
}
