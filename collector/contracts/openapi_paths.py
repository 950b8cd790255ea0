"""The contract API's paths in the collector's OpenAPI document."""

from __future__ import annotations

from typing import Any

from collector.http import paths


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
    paths.CONTRACTS: {"get": _op("The partner's contracts with coverage today (?limit=&offset=)")},
    paths.CONTRACTS_IMPORT: {
        "post": _op("Import contracts (CSV or TOML body; ?dry_run=1, ?keep_missing=1)")
    },
    paths.CONTRACT: {
        "get": _op("One contract and its version history", "contract_id"),
        "put": _op("Create or change a contract", "contract_id", body=True),
        "delete": _op("Remove a contract (a removed version)", "contract_id"),
    },
    paths.CONTRACT_FINDINGS: {
        "get": _op(
            "Findings of the last check run; ?at=TIME evaluates at that instant (?limit=&offset=)"
        )
    },
    paths.INCIDENTS: {
        "get": _op("Incidents with their response/resolution clocks (?state=&limit=&offset=)"),
        "post": _op("Open an incident by hand (opened_at kept as given)", body=True),
    },
    paths.INCIDENT: {"get": _op("One incident", "incident_id")},
    paths.INCIDENT_ACTION: {
        "post": _op(
            "acknowledge, pause, resume, resolve, accept or reopen (body: at, by, note)",
            "incident_id",
            "action",
            body=True,
        )
    },
    paths.INCIDENT_PRIORITIES: {
        "get": _op("Finding kind -> incident priority: defaults and the partner's overrides"),
        "put": _op("Set the partner's overrides", body=True),
    },
    paths.MONTHLY_REPORT: {
        "get": _op("Monthly compliance report (?month=YYYY-MM&by=customer|partner&format=csv)")
    },
    paths.MONTHLY_REPORT_PDF: {
        "get": _pdf(
            _op(
                "Monthly compliance report as PDF (?month=YYYY-MM&by=customer|partner): the "
                "CSV's figures, a table on A4 landscape pages"
            )
        )
    },
    paths.SLA_DUE: {"get": _op("Due times (?plan&priority&opened[&country&subdiv&tz&hours])")},
    paths.SERVER_SMA_QUOTE: {
        "get": _op("SMA yearly price from the server's modules (?year=N)", "server_id")
    },
    paths.SERVER_SMA_UPGRADE: {
        "get": _op(
            "Edition upgrade price (?from=EDITION&to=EDITION); old edition credited with an "
            "active SMA",
            "server_id",
        )
    },
}
