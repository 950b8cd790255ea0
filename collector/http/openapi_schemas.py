"""Response schemas of the partner API for the OpenAPI document (JSON Schema 2020-12).

A handler names the schema it answers with where it is documented
(:func:`collector.http.openapi.documented`); a table (:data:`RESPONSES`) names them for
the paths a feature adds as a whole, and :func:`add_response_schemas` puts them into the
document after every feature has added its paths. The schemas name the fields clients
rely on, with their types; objects stay open (``additionalProperties`` is allowed) so that
adding a field breaks no client. The tests validate real responses against this document.
"""

from __future__ import annotations

from typing import Any

from collector.http import paths

_NUM = {"type": "number"}
_INT = {"type": "integer"}
_STR = {"type": "string"}
_BOOL = {"type": "boolean"}


def _opt(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": sorted(required),
        "properties": {**required, **(optional or {})},
    }


def _list(key: str, item: str, count: bool = True) -> dict[str, Any]:
    fields: dict[str, Any] = {key: {"type": "array", "items": _ref(item)}}
    if count:
        fields["count"] = _INT
    return _obj(fields)


_VOLUME = _obj({"mountpoint": _STR, "total": _NUM, "used": _NUM}, {"free": _NUM})
_CLOCK = _obj(
    {
        "target": _opt(_STR),
        "status": {
            "enum": [
                "none",
                "running",
                "warning_50",
                "warning_75",
                "breached",
                "paused",
                "met",
                "missed",
            ]
        },
        "due": _opt(_STR),
        "warn_50": _opt(_STR),
        "warn_75": _opt(_STR),
        "stopped_at": _opt(_STR),
        "used_share": _opt(_NUM),
    }
)

SCHEMAS: dict[str, dict[str, Any]] = {
    "ServerSummary": _obj(
        {
            "id": _STR,
            "hostname": _STR,
            "partner": _STR,
            "status": _STR,
            "status_reasons": {"type": "array", "items": _STR},
            "last_seen": _opt(_NUM),
            "enrolled_at": _NUM,
            "revoked": _BOOL,
            "licence_id": _opt(_STR),
            "software": {"type": "object"},
            "cameras": _obj({"total": _INT, "by_verdict": {"type": "object"}}),
            "volumes": {"type": "array", "items": _VOLUME},
            "report_interval_s": _INT,
            "clock_offset_s": _opt(_NUM),
        },
        {
            "backup": _opt(
                _obj(
                    {
                        "last_success": _opt(_NUM),
                        "last_failure": _opt(_NUM),
                        "next_due": _opt(_NUM),
                        "overdue": _BOOL,
                        "interval_s": _INT,
                    }
                )
            ),
            "contract": _obj({"coverage": _STR}, {"plan": _STR, "customer": _STR}),
        },
    ),
    "ServerList": _obj(
        {"servers": {"type": "array", "items": _ref("ServerSummary")}, "count": _INT}
    ),
    "ServerDetail": {
        "allOf": [
            _ref("ServerSummary"),
            _obj(
                {
                    "last_seq": _INT,
                    "reports_received": _INT,
                    "dropped_reports": _INT,
                    "missing_reports": _INT,
                }
            ),
        ]
    },
    "Camera": _obj(
        {
            "verdict": _STR,
            "reasons": {"type": "array", "items": _STR},
            "availability": _obj({"24h": _opt(_NUM), "7d": _opt(_NUM), "30d": _opt(_NUM)}),
            "firmware_outdated": _BOOL,
        }
    ),
    "CameraList": _obj(
        {"server_id": _STR, "cameras": {"type": "array", "items": _ref("Camera")}, "count": _INT}
    ),
    "CameraEvents": _obj(
        {
            "server_id": _STR,
            "events": {
                "type": "array",
                "items": _obj({"camera": _STR, "at": _NUM, "from": _opt(_STR), "to": _STR}),
            },
        }
    ),
    "StorageHistory": _obj(
        {
            "server_id": _STR,
            "points": {
                "type": "array",
                "items": _obj({"at": _NUM, "volumes": {"type": "array", "items": _VOLUME}}),
            },
        }
    ),
    "Backup": _obj(
        {
            "id": _STR,
            "seq": _INT,
            "kind": _STR,
            "created_at": _NUM,
            "size": _INT,
            "status": _STR,
        },
        {"verified_at": _opt(_NUM), "base_seq": _opt(_INT), "ciphertext_sha256": _STR},
    ),
    "BackupList": _list("backups", "Backup", count=False),
    "BackupStatus": _obj(
        {
            "last_success": _opt(_NUM),
            "last_failure": _opt(_NUM),
            "last_failure_reason": _opt(_STR),
            "next_due": _opt(_NUM),
            "overdue": _BOOL,
            "interval_s": _INT,
            "window": _STR,
        }
    ),
    "PublicKey": _obj({"public_key": _STR}),
    "BackupPolicy": _obj(
        {
            "interval_s": _opt(_INT),
            "interval": _opt(_STR),
            "window": _opt(_STR),
            "keep_last": _opt(_INT),
            "keep_daily": _opt(_INT),
            "keep_weekly": _opt(_INT),
            "keep_monthly": _opt(_INT),
            "keep_yearly": _opt(_INT),
            "contract_override": _opt(_STR),
        },
        {"breaks": {"type": "array", "items": _STR}},
    ),
    "SmaQuote": _obj(
        {"server_id": _STR, "year": _INT, "list_total": _STR, "price": _STR, "modules": {}}
    ),
    "SmaUpgrade": _obj({"server_id": _STR}),
    "Contract": _obj(
        {
            "id": _STR,
            "customer": _STR,
            "partner": _STR,
            "plan": _STR,
            "licence_ids": {"type": "array", "items": _STR},
            "start": _STR,
            "coverage": _STR,
            "last_covered_day": _opt(_STR),
            "last_day_to_cancel": _opt(_STR),
        }
    ),
    "ContractList": _list("contracts", "Contract"),
    "ContractWithHistory": _obj(
        {
            "contract": _ref("Contract"),
            "history": {
                "type": "array",
                "items": _obj({"version": _INT, "valid_from": _STR, "removed": _BOOL}),
            },
        }
    ),
    "Finding": _obj(
        {
            "partner": _STR,
            "server_id": _opt(_STR),
            "contract_id": _opt(_STR),
            "kind": _STR,
            "severity": _STR,
            "clause": _STR,
            "message": _STR,
        }
    ),
    "FindingList": _list("findings", "Finding"),
    "Incident": _obj(
        {
            "id": _STR,
            "plan": _STR,
            "priority": _STR,
            "contract_id": _opt(_STR),
            "server_id": _opt(_STR),
            "title": _STR,
            "opened_at": _STR,
            "state": {"enum": ["open", "acknowledged", "paused", "resolved", "closed"]},
            "response": _CLOCK,
            "resolution": _CLOCK,
            "events": {
                "type": "array",
                "items": _obj({"action": _STR, "at": _STR, "by": _STR, "note": _STR}),
            },
        }
    ),
    "IncidentList": _list("incidents", "Incident"),
    "PriorityMap": _obj({"defaults": {"type": "object"}, "overrides": {"type": "object"}}),
    "MonthlyReport": _obj(
        {
            "month": _STR,
            "rows": {
                "type": "array",
                "items": _obj({"month": _STR, "partner": _STR, "customer": _STR, "servers": _INT}),
            },
        }
    ),
    "SlaDue": _obj({"plan": _STR, "priority": _STR, "opened": _STR, "response_due": _opt(_STR)}),
    "Me": _obj(
        {
            "user_id": _INT,
            "email": _STR,
            "role": {"enum": ["admin", "operator", "viewer"]},
            "partner": _STR,
            "customer": _opt(_STR),
        }
    ),
    "User": _obj(
        {
            "id": _INT,
            "email": _STR,
            "role": {"enum": ["admin", "operator", "viewer"]},
            "customer": _opt(_STR),
            "service_account": _BOOL,
            "created_at": _NUM,
            "disabled_at": _opt(_NUM),
            "last_login_at": _opt(_NUM),
        }
    ),
    "UserList": _list("users", "User"),
    "ApiKey": _obj(
        {
            "id": _INT,
            "prefix": _STR,
            "label": _STR,
            "owner": _opt(_STR),
            "created_at": _NUM,
            "last_used_at": _opt(_NUM),
            "revoked_at": _opt(_NUM),
        }
    ),
    "ApiKeyList": _list("api_keys", "ApiKey"),
    "ApiKeyCreated": _obj({"key": _STR, "prefix": _STR, "label": _STR}),
    "EnrollmentToken": _obj(
        {
            "id": _INT,
            "uses_left": _INT,
            "created_at": _NUM,
            "expires_at": _NUM,
            "revoked_at": _opt(_NUM),
            "allow_reenroll": _BOOL,
        }
    ),
    "EnrollmentTokenList": _list("enrollment_tokens", "EnrollmentToken"),
    "EnrollmentTokenCreated": _obj({"token": _STR}),
    "Revoked": _obj({"revoked": _INT}),
    "ContractSaved": _obj({"contract": _ref("Contract"), "changed": _BOOL, "version": _opt(_INT)}),
    "ContractRemoved": _obj({"removed": _STR}),
    "ImportSummary": _obj(
        {
            "dry_run": _BOOL,
            "added": {"type": "array", "items": _STR},
            "changed": {"type": "array", "items": _STR},
            "removed": {"type": "array", "items": _STR},
            "unchanged": _INT,
        }
    ),
    "PriorityOverrides": _obj({"overrides": {"type": "object"}}),
}

RESPONSES: dict[tuple[str, str], tuple[str, str]] = {
    ("get", paths.SERVER_SMA_QUOTE): ("200", "SmaQuote"),
    ("get", paths.SERVER_SMA_UPGRADE): ("200", "SmaUpgrade"),
    ("get", paths.CONTRACTS): ("200", "ContractList"),
    ("get", paths.CONTRACT): ("200", "ContractWithHistory"),
    ("put", paths.CONTRACT): ("200", "ContractSaved"),
    ("delete", paths.CONTRACT): ("200", "ContractRemoved"),
    ("post", paths.CONTRACTS_IMPORT): ("200", "ImportSummary"),
    ("put", paths.INCIDENT_PRIORITIES): ("200", "PriorityOverrides"),
    ("get", paths.CONTRACT_FINDINGS): ("200", "FindingList"),
    ("get", paths.INCIDENTS): ("200", "IncidentList"),
    ("post", paths.INCIDENTS): ("201", "Incident"),
    ("get", paths.INCIDENT): ("200", "Incident"),
    ("post", paths.INCIDENT_ACTION): ("200", "Incident"),
    ("get", paths.INCIDENT_PRIORITIES): ("200", "PriorityMap"),
    ("get", paths.MONTHLY_REPORT): ("200", "MonthlyReport"),
    ("get", paths.SLA_DUE): ("200", "SlaDue"),
}
"""(method, path) -> (status, schema) of the partner endpoints that answer JSON and whose
operations are not attached to their handlers (the others name theirs with
:func:`collector.http.openapi.documented`)."""


def with_response(op: dict[str, Any], status: str, name: str) -> dict[str, Any]:
    """Make ``op`` answer ``status`` with the schema ``name`` on success."""
    responses = op.setdefault("responses", {})
    responses.pop("200" if status != "200" else "", None)
    responses[status] = {
        "description": "OK" if status == "200" else "Created",
        "content": {"application/json": {"schema": _ref(name)}},
    }
    return op


def add_response_schemas(doc: dict[str, Any]) -> None:
    """Put :data:`SCHEMAS` into ``doc`` and each partner endpoint's success response."""
    doc["components"]["schemas"].update(SCHEMAS)
    for (method, path), (status, name) in RESPONSES.items():
        op = doc["paths"].get(path, {}).get(method)
        if op is not None:
            with_response(op, status, name)
