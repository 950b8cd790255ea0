"""The notification API's paths in the collector's OpenAPI document."""

from __future__ import annotations

from typing import Any


def _answer(required: dict[str, Any]) -> dict[str, Any]:
    """A JSON object answer with these keys (others may follow)."""
    return {"type": "object", "required": sorted(required), "properties": required}


_ID = {"type": ["string", "integer"]}
_LIST = {"type": "array", "items": {"type": "object"}}
CHANNEL = _answer(
    {"id": {"type": "string"}, "type": {"type": "string"}, "name": {"type": "string"}}
)
ROUTE = _answer({"id": _ID, "channel": {"type": "string"}})
SILENCE = _answer({"id": _ID, "scope": {"type": "string"}, "value": {"type": "string"}})


def _op(
    summary: str,
    *params: str,
    body: str | None = None,
    created: bool = False,
    answer: dict[str, Any],
) -> dict[str, Any]:
    ok = "201" if created else "200"
    op: dict[str, Any] = {
        "summary": summary,
        "tags": ["notifications"],
        "security": [{"partnerKey": []}],
        "responses": {
            ok: {
                "description": "Created" if created else "OK",
                "content": {"application/json": {"schema": answer}},
            },
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
        op["requestBody"] = {
            "description": body,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    return op


OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/notify/channels": {
        "get": _op(
            "The partner's channels with their health (no secrets)",
            answer=_answer({"channels": _LIST}),
        ),
        "post": _op(
            "Add a channel; a webhook's secret is in this answer only",
            body="{type: webhook|smtp|apprise, name, customer?, config: {url | host, port, "
            "security, username, from, to}, secret?: whsec_… | SMTP password | Apprise URL}",
            created=True,
            answer=CHANNEL,
        ),
    },
    "/api/v1/notify/channels/{channel_id}": {
        "delete": _op(
            "Remove a channel, its routes and its undelivered messages",
            "channel_id",
            answer=_answer({"removed": {"type": "string"}}),
        )
    },
    "/api/v1/notify/channels/{channel_id}/rotate-secret": {
        "post": _op(
            "New webhook secret; the old one signs beside it for overlap_s (default 1 day)",
            "channel_id",
            body="{secret?: whsec_…, overlap_s?: seconds}",
            answer=_answer({"channel": {"type": "string"}, "secret": {"type": "string"}}),
        )
    },
    "/api/v1/notify/channels/{channel_id}/test": {
        "post": _op(
            "Send a test message now; answers with the receiver's answer",
            "channel_id",
            answer=_answer({"channel": {"type": "string"}, "ok": {"type": "boolean"}}),
        )
    },
    "/api/v1/notify/channels/{channel_id}/deliveries": {
        "get": _op(
            "The channel's delivery log, newest first (?limit=)",
            "channel_id",
            answer=_answer({"channel": {"type": "string"}, "attempts": _LIST}),
        )
    },
    "/api/v1/notify/routes": {
        "get": _op("The partner's routes", answer=_answer({"routes": _LIST})),
        "post": _op(
            "Add a route",
            body="{channel, kinds?: [glob], min_severity?, customer?, site?, group_wait_s?, "
            "repeat_s?, send_resolved?, digest?, digest_hour?, quiet_hours?: {from, until, "
            "timezone}}",
            created=True,
            answer=ROUTE,
        ),
    },
    "/api/v1/notify/routes/{route_id}": {
        "delete": _op("Remove a route", "route_id", answer=_answer({"removed": _ID}))
    },
    "/api/v1/notify/silences": {
        "get": _op("Silences not yet ended", answer=_answer({"silences": _LIST})),
        "post": _op(
            "Add a silence (maintenance window)",
            body="{scope: server|site|customer|partner, value, starts_at?, ends_at | duration_s, "
            "reason?}",
            created=True,
            answer=SILENCE,
        ),
    },
    "/api/v1/notify/silences/{silence_id}": {
        "delete": _op("End a silence now", "silence_id", answer=_answer({"ended": _ID}))
    },
    "/api/v1/notify/servers/{server_id}/labels": {
        "put": _op(
            "Set a server's customer and site (routes, silences, grouping)",
            "server_id",
            body="{customer, site}",
            answer=_answer({"server": {"type": "string"}}),
        )
    },
    "/api/v1/notify/events": {
        "get": _op(
            "The partner's events with what became of each (?after=ID&limit=)",
            answer=_answer({"events": _LIST}),
        )
    },
}
