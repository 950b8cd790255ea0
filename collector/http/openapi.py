"""``GET /api/v1/openapi.json``: the HTTP interface, with schemas taken from the messages.

A handler carries its own operation (:func:`documented`, next to the handler); the
document lists every registered route whose handler carries one, under the path it was
registered at, so a path is spelled once: where its route is added. A path's ``{name}``
parts become the operation's path parameters. Features whose operations are not attached
to their handlers add them to :data:`EXTRA_PATHS`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from collector.http import paths
from collector.http.openapi_schemas import add_response_schemas, with_response
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

H = TypeVar("H", bound=Callable[..., Any])

_OPERATIONS: dict[Callable[..., Any], dict[str, Any]] = {}
"""handler -> its operation (without path parameters, filled from the registered path)."""


def operation(
    summary: str,
    *,
    body: str | None = None,
    response: str | None = None,
    auth: str | None = "partner",
    busy: bool = False,
) -> dict[str, Any]:
    """An operation answering ``ErrorBody`` when refused; ``body`` and ``response`` name
    message schemas. ``busy``: it may answer 429 with ``Retry-After`` when the collector
    holds as much of that work as it takes (back-pressure)."""
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
    if busy:
        op["responses"]["429"] = {
            "description": "Busy: nothing was stored; send it again after Retry-After",
            "headers": {
                "Retry-After": {
                    "description": "Seconds to wait (an agent adds jitter)",
                    "schema": {"type": "integer", "minimum": 1},
                }
            },
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
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
    return op


def documented(
    op: dict[str, Any], *, schema: str | None = None, status: str = "200"
) -> Callable[[H], H]:
    """Attach ``op`` to a handler; ``schema`` names its success answer's schema (in
    :mod:`collector.http.openapi_schemas`), answered with ``status``."""
    if schema is not None:
        with_response(op, status, schema)

    def attach(handler: H) -> H:
        _OPERATIONS[handler] = op
        return handler

    return attach


def registered_paths(app: web.Application) -> dict[str, Any]:
    """The operations of the routes ``app`` has registered, by path and method."""
    found: dict[str, Any] = {}
    for route in app.router.routes():
        op = _OPERATIONS.get(route.handler)
        path = route.resource.canonical if route.resource is not None else None
        if op is None or path is None or route.method == "HEAD":
            continue
        op = copy.deepcopy(op)
        names = re.findall(r"\{(\w+)\}", path)
        if names:
            path_params = [
                {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                for n in names
            ]
            op["parameters"] = path_params + op.get("parameters", [])
        found.setdefault(path, {})[route.method.lower()] = op
    return found


def document(app: web.Application) -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        _MESSAGES, ref_template="#/components/schemas/{name}"
    )
    doc_paths = registered_paths(app)
    extra: dict[str, Any] = app.get(EXTRA_PATHS) or {}
    doc_paths.update(copy.deepcopy(extra))
    return {
        "openapi": "3.1.0",
        "info": {"title": "Vigil collector", "version": f"protocol {PROTOCOL_VERSION}"},
        "paths": doc_paths,
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
    doc = document(request.app)
    add_response_schemas(doc)
    return web.json_response(doc)


def setup(app: web.Application) -> None:
    """The document's route, and the registry features after it add their paths to."""
    app[EXTRA_PATHS] = {}
    app.router.add_get(paths.OPENAPI, get_openapi)
