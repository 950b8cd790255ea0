"""The notification API's operations in the collector's OpenAPI document, one per handler of
:mod:`collector.notify.api` (which attaches them; the paths come from its routes)."""

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
    *,
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
    if body:
        op["requestBody"] = {
            "description": body,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    return op


LIST_CHANNELS = _op(
    "The partner's channels with their health (no secrets)",
    answer=_answer({"channels": _LIST}),
)

ADD_CHANNEL = _op(
    "Add a channel; a webhook's secret is in this answer only",
    body="{type: webhook|smtp|apprise, name, customer?, config: {url | host, port, "
    "security, username, from, to}, secret?: whsec_… | SMTP password | Apprise URL}",
    created=True,
    answer=CHANNEL,
)

REMOVE_CHANNEL = _op(
    "Remove a channel, its routes and its undelivered messages",
    answer=_answer({"removed": {"type": "string"}}),
)

ROTATE_SECRET = _op(
    "New webhook secret; the old one signs beside it for overlap_s (default 1 day)",
    body="{secret?: whsec_…, overlap_s?: seconds}",
    answer=_answer({"channel": {"type": "string"}, "secret": {"type": "string"}}),
)

TEST_CHANNEL = _op(
    "Send a test message now; answers with the receiver's answer",
    answer=_answer({"channel": {"type": "string"}, "ok": {"type": "boolean"}}),
)

DELIVERIES = _op(
    "The channel's delivery log, newest first (?limit=)",
    answer=_answer({"channel": {"type": "string"}, "attempts": _LIST}),
)

LIST_ROUTES = _op("The partner's routes", answer=_answer({"routes": _LIST}))

ADD_ROUTE = _op(
    "Add a route",
    body="{channel, kinds?: [glob], min_severity?, customer?, site?, group_wait_s?, "
    "repeat_s?, send_resolved?, digest?, digest_hour?, quiet_hours?: {from, until, "
    "timezone}}",
    created=True,
    answer=ROUTE,
)

REMOVE_ROUTE = _op("Remove a route", answer=_answer({"removed": _ID}))

LIST_SILENCES = _op("Silences not yet ended", answer=_answer({"silences": _LIST}))

ADD_SILENCE = _op(
    "Add a silence (maintenance window)",
    body="{scope: server|site|customer|partner, value, starts_at?, ends_at | duration_s, reason?}",
    created=True,
    answer=SILENCE,
)

END_SILENCE = _op("End a silence now", answer=_answer({"ended": _ID}))

SET_LABELS = _op(
    "Set a server's customer and site (routes, silences, grouping)",
    body="{customer, site}",
    answer=_answer({"server": {"type": "string"}}),
)

LIST_EVENTS = _op(
    "The partner's events with what became of each (?after=ID&limit=)",
    answer=_answer({"events": _LIST}),
)
