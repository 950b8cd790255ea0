"""The notification API under ``/api/v1/notify/``: channels, routes, silences, server
labels, the delivery log and the event log, and a test message. A partner sees and
changes only its own; a channel's secret is in the answer that creates (or rotates) it
and never again."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from collector.contracts.inputs import json_body
from collector.health.api import json_response
from collector.http import paths
from collector.http.appkeys import DB
from collector.http.auth import partner_of
from collector.http.errors import ApiError
from collector.http.openapi import documented
from collector.http.query_params import MAX_PAGE, int_param
from collector.notify import delivery, events, store
from collector.notify import openapi_operations as ops
from collector.notify.channel_secrets import new_webhook_secret
from collector.notify.notifier import BOX, NOTIFIER


def _str(data: dict[str, Any], key: str, default: str = "", *, limit: int = 2000) -> str:
    v = data.get(key, default)
    if v is None:
        return default
    if not isinstance(v, str) or len(v) > limit:
        raise ApiError(400, "invalid_field", f"{key} must be a string", key)
    return v


def _num(data: dict[str, Any], key: str, default: float) -> float:
    v = data.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < 1e10:
        raise ApiError(400, "invalid_field", f"{key} must be a number of seconds", key)
    return float(v)


def _refused(exc: Exception) -> ApiError:
    if isinstance(exc, store.NotFound):
        return ApiError(404, "not_found", str(exc))
    field = getattr(exc, "field", None)
    return ApiError(400, "invalid_field", str(exc), field)


async def _write(request: web.Request, fn: Any) -> Any:
    try:
        return await request.app[DB].write(fn)
    except (store.NotifyError, store.NotFound) as exc:
        raise _refused(exc) from None


@documented(ops.LIST_CHANNELS)
async def list_channels(request: web.Request) -> web.Response:
    p = partner_of(request)
    chans = await request.app[DB].read(lambda c: store.list_channels(c, p.partner_id))
    return json_response({"channels": [ch.to_json() for ch in chans]})


@documented(ops.ADD_CHANNEL)
async def add_channel(request: web.Request) -> web.Response:
    p = partner_of(request)
    data = await json_body(request)
    type_ = _str(data, "type")
    config = data.get("config", {})
    if not isinstance(config, dict) or len(json.dumps(config)) > 8000:
        raise ApiError(400, "invalid_field", "config must be an object", "config")
    secret = _str(data, "secret")
    if type_ == "webhook" and not secret:
        secret = new_webhook_secret()
    box = request.app[BOX]
    ch = await _write(
        request,
        lambda c: store.add_channel(
            c,
            box,
            p.partner_id,
            type_,
            _str(data, "name", type_, limit=200),
            config,
            secret,
            time.time(),
            _str(data, "customer", limit=200),
        ),
    )
    out = ch.to_json()
    if type_ == "webhook":
        out["secret"] = secret
    return json_response(out, 201)


@documented(ops.REMOVE_CHANNEL)
async def remove_channel(request: web.Request) -> web.Response:
    p = partner_of(request)
    cid = request.match_info["channel_id"]
    await _write(request, lambda c: store.remove_channel(c, p.partner_id, cid, time.time()))
    return json_response({"removed": cid})


@documented(ops.ROTATE_SECRET)
async def rotate_secret(request: web.Request) -> web.Response:
    p = partner_of(request)
    cid = request.match_info["channel_id"]
    data = await json_body(request)
    secret = _str(data, "secret") or new_webhook_secret()
    overlap = _num(data, "overlap_s", 86400.0)
    box = request.app[BOX]
    await _write(
        request,
        lambda c: store.rotate_secret(c, box, p.partner_id, cid, secret, overlap, time.time()),
    )
    return json_response({"channel": cid, "secret": secret, "old_secret_valid_s": overlap})


@documented(ops.TEST_CHANNEL)
async def test_channel(request: web.Request) -> web.Response:
    p = partner_of(request)
    cid = request.match_info["channel_id"]
    try:
        await request.app[DB].read(lambda c: store.get_channel(c, p.partner_id, cid))
    except store.NotFound as exc:
        raise _refused(exc) from None
    outcome = await request.app[NOTIFIER].send_test(cid)
    return json_response(
        {
            "channel": cid,
            "ok": outcome.ok,
            "answer": outcome.answer,
            "latency_ms": outcome.latency_ms,
        }
    )


@documented(ops.DELIVERIES)
async def deliveries(request: web.Request) -> web.Response:
    p = partner_of(request)
    cid = request.match_info["channel_id"]
    limit = int_param(request, "limit", 100, high=MAX_PAGE)

    def read(c: Any) -> list[dict[str, Any]]:
        store.get_channel(c, p.partner_id, cid)
        return delivery.delivery_log(c, cid, limit)

    try:
        rows = await request.app[DB].read(read)
    except store.NotFound as exc:
        raise _refused(exc) from None
    return json_response({"channel": cid, "attempts": rows})


def _route_from(data: dict[str, Any], partner_id: int) -> store.Route:
    quiet = data.get("quiet_hours") or {}
    if not isinstance(quiet, dict):
        raise ApiError(
            400, "invalid_field", "quiet_hours is {from, until, timezone}", "quiet_hours"
        )
    kinds = data.get("kinds", ["*"])
    if isinstance(kinds, str):
        kinds = [kinds]
    if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds) or not kinds:
        raise ApiError(400, "invalid_field", "kinds is a list of event kinds (* matches)", "kinds")
    return store.Route(
        id=0,
        partner_id=partner_id,
        channel_id=_str(data, "channel"),
        kinds=",".join(k.strip() for k in kinds),
        min_severity=_str(data, "min_severity", "info"),
        customer=_str(data, "customer", limit=200),
        site=_str(data, "site", limit=200),
        group_wait_s=_num(data, "group_wait_s", 30.0),
        repeat_s=_num(data, "repeat_s", 4 * 3600.0),
        send_resolved=bool(data.get("send_resolved", True)),
        digest=bool(data.get("digest", False)),
        digest_hour=int(_num(data, "digest_hour", 8)),
        quiet_from=_str(quiet, "from"),
        quiet_until=_str(quiet, "until"),
        timezone=_str(quiet, "timezone", "UTC") or "UTC",
    )


@documented(ops.LIST_ROUTES)
async def list_routes(request: web.Request) -> web.Response:
    p = partner_of(request)
    routes = await request.app[DB].read(lambda c: store.list_routes(c, p.partner_id))
    return json_response({"routes": [r.to_json() for r in routes]})


@documented(ops.ADD_ROUTE)
async def add_route(request: web.Request) -> web.Response:
    p = partner_of(request)
    route = _route_from(await json_body(request), p.partner_id)
    made = await _write(request, lambda c: store.add_route(c, route, time.time()))
    return json_response(made.to_json(), 201)


@documented(ops.REMOVE_ROUTE)
async def remove_route(request: web.Request) -> web.Response:
    p = partner_of(request)
    try:
        rid = int(request.match_info["route_id"])
    except ValueError:
        raise ApiError(404, "not_found", "no such route") from None
    await _write(request, lambda c: store.remove_route(c, p.partner_id, rid))
    return json_response({"removed": rid})


@documented(ops.LIST_SILENCES)
async def list_silences(request: web.Request) -> web.Response:
    p = partner_of(request)
    rows = await request.app[DB].read(lambda c: store.list_silences(c, p.partner_id, time.time()))
    return json_response({"silences": rows})


@documented(ops.ADD_SILENCE)
async def add_silence(request: web.Request) -> web.Response:
    p = partner_of(request)
    data = await json_body(request)
    now = time.time()
    starts = _num(data, "starts_at", now)
    if "ends_at" in data:
        ends = _num(data, "ends_at", 0)
    elif "duration_s" in data:
        ends = starts + _num(data, "duration_s", 0)
    else:
        raise ApiError(400, "invalid_field", "a silence needs ends_at or duration_s", "ends_at")
    made = await _write(
        request,
        lambda c: store.add_silence(
            c,
            p.partner_id,
            _str(data, "scope"),
            _str(data, "value", limit=200),
            starts,
            ends,
            _str(data, "reason", limit=500),
            now,
        ),
    )
    return json_response(made, 201)


@documented(ops.END_SILENCE)
async def end_silence(request: web.Request) -> web.Response:
    p = partner_of(request)
    try:
        sid = int(request.match_info["silence_id"])
    except ValueError:
        raise ApiError(404, "not_found", "no such silence") from None
    await _write(request, lambda c: store.end_silence(c, p.partner_id, sid, time.time()))
    return json_response({"ended": sid})


@documented(ops.SET_LABELS)
async def set_labels(request: web.Request) -> web.Response:
    p = partner_of(request)
    sid = request.match_info["server_id"]
    data = await json_body(request)
    customer, site = _str(data, "customer", limit=200), _str(data, "site", limit=200)
    await _write(request, lambda c: store.set_labels(c, p.partner_id, sid, customer, site))
    return json_response({"server": sid, "customer": customer, "site": site})


@documented(ops.LIST_EVENTS)
async def list_events(request: web.Request) -> web.Response:
    p = partner_of(request)
    after = int_param(request, "after", 0)
    limit = int_param(request, "limit", 100, high=MAX_PAGE)
    rows = await request.app[DB].read(
        lambda c: events.event_log(c, p.partner_id, after, limit or 100)
    )
    return json_response({"events": rows})


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(paths.NOTIFY_CHANNELS, list_channels)
    r.add_post(paths.NOTIFY_CHANNELS, add_channel)
    r.add_delete(paths.NOTIFY_CHANNEL, remove_channel)
    r.add_post(paths.NOTIFY_CHANNEL_ROTATE_SECRET, rotate_secret)
    r.add_post(paths.NOTIFY_CHANNEL_TEST, test_channel)
    r.add_get(paths.NOTIFY_CHANNEL_DELIVERIES, deliveries)
    r.add_get(paths.NOTIFY_ROUTES, list_routes)
    r.add_post(paths.NOTIFY_ROUTES, add_route)
    r.add_delete(paths.NOTIFY_ROUTE, remove_route)
    r.add_get(paths.NOTIFY_SILENCES, list_silences)
    r.add_post(paths.NOTIFY_SILENCES, add_silence)
    r.add_delete(paths.NOTIFY_SILENCE, end_silence)
    r.add_put(paths.NOTIFY_SERVER_LABELS, set_labels)
    r.add_get(paths.NOTIFY_EVENTS, list_events)
