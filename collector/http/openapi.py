"""``GET /api/v1/openapi.json``: the HTTP interface, with schemas taken from the messages."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp import web

from collector.http.openapi_schemas import ACCOUNT_PATHS, add_response_schemas
from protocol import messages as m
from protocol.version import PROTOCOL_VERSION

_MESSAGES = (
    m.EnrollRequest,
    m.EnrollResponse,
    m.SessionRequest,
    m.SessionResponse,
    m.ReportBatch,
    m.ReportAck,
    m.ErrorBody,
    m.AgentSettings,
)


def _op(
    summary: str,
    *,
    body: str | None = None,
    response: str | None = None,
    auth: str | None = "partner",
    params: tuple[str, ...] = (),
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            "200": {"description": "OK"}
            if response is None
            else {
                "description": "OK",
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{response}"}}
                },
            },
            "4XX": {
                "description": "Refused",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                },
            },
        },
    }
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    if auth == "partner":
        op["security"] = [{"partnerKey": []}]
    elif auth == "agent":
        op["security"] = [{"agentSession": []}]
    else:
        op["security"] = []
    if params:
        op["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in params
        ]
    return op


def document() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        _MESSAGES, ref_template="#/components/schemas/{name}"
    )
    sid = ("server_id",)
    paths: dict[str, Any] = {
        "/healthz": {
            "get": _op(
                "Storage, database, object store and background tasks; 503 naming each "
                "failed check",
                auth=None,
            )
        },
        "/metrics": {
            "get": _op("Prometheus metrics (Bearer token if [metrics] token is set)", auth=None)
        },
        "/api/v1/agent/enroll": {
            "post": _op(
                "Enroll an agent with a one-time token",
                body="EnrollRequest",
                response="EnrollResponse",
                auth=None,
            )
        },
        "/api/v1/agent/session": {
            "post": _op(
                "Open a session (Ed25519-signed body)",
                body="SessionRequest",
                response="SessionResponse",
                auth=None,
            )
        },
        "/api/v1/agent/reports": {
            "post": _op(
                "Upload health reports (idempotent by report_id)",
                body="ReportBatch",
                response="ReportAck",
                auth="agent",
            )
        },
        "/api/v1/servers": {"get": _op("The partner's servers with status")},
        "/api/v1/servers/{server_id}": {"get": _op("One server in detail", params=sid)},
        "/api/v1/servers/{server_id}/cameras": {
            "get": _op("Cameras with verdicts and availability", params=sid)
        },
        "/api/v1/servers/{server_id}/camera-events": {
            "get": _op("Camera verdict changes", params=sid)
        },
        "/api/v1/servers/{server_id}/storage-history": {
            "get": _op("Volume usage over time", params=sid)
        },
    }
    for path, ops in ACCOUNT_PATHS.items():
        names = tuple(re.findall(r"\{(\w+)\}", path))
        paths[path] = {method: _op(summary, params=names) for method, summary in ops.items()}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Vigil collector", "version": f"protocol {PROTOCOL_VERSION}"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "partnerKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "API key of a user or a partner's service account",
                },
                "agentSession": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Vigil-Signature",
                    "description": "session HMAC, see docs/security.md",
                },
            },
        },
    }


EXTRA_PATHS: web.AppKey[dict[str, Any]] = web.AppKey("openapi_extra_paths", dict)


async def get_openapi(request: web.Request) -> web.Response:
    doc = document()
    doc["paths"].update(request.app.get(EXTRA_PATHS, {}))
    add_response_schemas(doc)
    return web.json_response(doc)


def setup(app: web.Application) -> None:
    """The document's route, and the registry features after it add their paths to."""
    app[EXTRA_PATHS] = {}
    app.router.add_get("/api/v1/openapi.json", get_openapi)
