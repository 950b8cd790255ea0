"""The notification settings pages: channels (with their health, a test message and the
delivery log), routes and silences; and "silence this server" from the server and fleet
pages.

Everything a form changes goes through :mod:`collector.notify.store` and the notifier,
the same functions the CLI and the API use; this module only reads forms and answers
pages. A partner's admin manages channels and routes, its operators also create and end
silences, its viewers read (:mod:`collector.accounts.roles`); a customer's users do not
see these pages. A webhook's signing secret is shown once, on the page that answers its
creation. A channel, route, silence or server of another partner answers 404.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

from aiohttp import web

from collector.durations import parse_duration
from collector.health import servers
from collector.http import paths
from collector.http.appkeys import DB
from collector.http.auth import PartnerIdentity, owned_server
from collector.http.errors import ApiError
from collector.http.pages import checked_form, render, signed_in
from collector.notify import delivery, rules, store
from collector.notify.events import SEVERITIES
from collector.notify.notifier import BOX, NOTIFIER

BASE = paths.NOTIFY_PAGE
MAX_SILENCE_S = 366 * 86400.0
"""The longest silence a form sets (a forgotten maintenance window ends within a year)."""
_BACK = re.compile(r"^/(servers/[A-Za-z0-9_.:-]{1,100})?$")
"""Where a silence form may send the browser back to: the fleet or a server page."""
_CHANNEL_FIELDS = ("url", "secret", "host", "security", "username", "from", "to")


def _field(form: Any, name: str, limit: int = 200) -> str:
    return str(form.get(name, "")).strip()[:limit]


def _notify_data(conn: Any, identity: PartnerIdentity, now: float) -> dict[str, Any]:
    pid = identity.partner_id
    hosts = {r.id: r.hostname for r in servers.list_for(conn, pid)}
    return {
        "channels": store.list_channels(conn, pid),
        "routes": store.list_routes(conn, pid),
        "active": store.list_silences(conn, pid, now),
        "ended": store.ended_silences(conn, pid, now),
        "hosts": hosts,
        "labels": store.label_choices(conn, pid),
    }


async def _page(
    request: web.Request, identity: PartnerIdentity, status: int = 200, **extra: Any
) -> web.Response:
    now = time.time()
    data = await request.app[DB].read(lambda c: _notify_data(c, identity, now))
    resp = render(
        "notifications.html",
        request,
        tab="settings",
        admin=identity.role == "admin",
        operator=identity.role in ("admin", "operator"),
        types=store.CHANNEL_TYPES,
        severities=SEVERITIES,
        scopes=("server", "site", "customer", "partner"),
        now=now,
        **data,
        **extra,
    )
    resp.set_status(status)
    return resp


async def notifications_page(request: web.Request) -> web.Response:
    identity = signed_in(request)
    return await _page(request, identity, done=request.query.get("done", "")[:60])


async def _refusable(request: web.Request, fn: Any) -> Any:
    """``fn`` written; an object not found (or another partner's) answers 404, a refusal
    of the notify store 400, each with the store's words."""
    try:
        return await request.app[DB].write(fn)
    except store.NotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except store.NotifyError as exc:
        raise ApiError(400, "invalid_field", str(exc), exc.field) from None


# --- channels ---------------------------------------------------------------------------


async def add_channel(request: web.Request) -> web.Response:
    form = await checked_form(request)
    identity = signed_in(request)
    type_ = _field(form, "type", 20)
    fields: dict[str, Any] = {k: _field(form, k, 2000) for k in _CHANNEL_FIELDS}
    port = _field(form, "port", 10)
    if port and not (port.isascii() and port.isdigit()):
        return await _page(request, identity, 400, error="Channel: the port is a number")
    fields["port"] = int(port or 0)
    config, secret = store.channel_parts(type_, fields)
    box, now = request.app[BOX], time.time()
    name, customer = _field(form, "name") or type_, _field(form, "customer")
    try:
        ch = await request.app[DB].write(
            lambda c: store.add_channel(
                c, box, identity.partner_id, type_, name, config, secret, now, customer
            )
        )
    except store.NotifyError as exc:
        return await _page(request, identity, 400, error=f"Channel: {exc}")
    if type_ != "webhook":
        raise web.HTTPSeeOther(f"{BASE}?done=channel+{ch.id}+added")
    return await _page(
        request,
        identity,
        201,
        done=f"channel {ch.id} added",
        new_secret=secret,
        new_what=f"signing secret of {ch.name}",
    )


def _channel_id(request: web.Request) -> str:
    cid = request.match_info["channel_id"]
    if len(cid) > 40:
        raise ApiError(404, "not_found", "no such channel")
    return cid


async def channel_page(request: web.Request) -> web.Response:
    """One channel: its settings (never its secret), health and delivery log."""
    identity = signed_in(request)
    cid = _channel_id(request)

    def read(c: Any) -> tuple[store.Channel, list[dict[str, Any]]]:
        return store.get_channel(c, identity.partner_id, cid), delivery.delivery_log(c, cid, 100)

    try:
        channel, attempts = await request.app[DB].read(read)
    except store.NotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    return render(
        "channel.html",
        request,
        tab="settings",
        ch=channel,
        attempts=attempts,
        admin=identity.role == "admin",
        done=request.query.get("done", "")[:60],
    )


async def test_channel(request: web.Request) -> web.Response:
    """Send a test message now (the notifier's own test); its attempt is in the log."""
    await checked_form(request)
    identity = signed_in(request)
    cid = _channel_id(request)
    await _refusable(request, lambda c: store.get_channel(c, identity.partner_id, cid))
    outcome = await request.app[NOTIFIER].send_test(cid)
    word = "delivered" if outcome.ok else "failed"
    raise web.HTTPSeeOther(f"{BASE}/channels/{cid}?done=test+message+{word}")


async def remove_channel(request: web.Request) -> web.Response:
    await checked_form(request)
    identity = signed_in(request)
    cid, now = _channel_id(request), time.time()
    await _refusable(request, lambda c: store.remove_channel(c, identity.partner_id, cid, now))
    raise web.HTTPSeeOther(f"{BASE}?done=channel+{cid}+removed")


# --- routes -----------------------------------------------------------------------------


def _seconds(form: Any, name: str, default: str, label: str) -> float:
    raw = _field(form, name, 20) or default
    try:
        return parse_duration(raw)
    except ValueError:
        raise ValueError(f"{label} is a duration like 30s, 15m or 4h, not {raw!r}") from None


def route_from_form(form: Any, partner_id: int) -> store.Route:
    """The route a form describes (ValueError says what is wrong in words)."""
    hour = _field(form, "digest_hour", 4) or "8"
    if not (hour.isascii() and hour.isdigit()):
        raise ValueError("the digest hour is a whole number from 0 to 23")
    kinds = ",".join(k.strip() for k in _field(form, "kinds", 500).split(",") if k.strip())
    return store.Route(
        id=0,
        partner_id=partner_id,
        channel_id=_field(form, "channel", 40),
        kinds=kinds or "*",
        min_severity=_field(form, "min_severity", 20) or "info",
        customer=_field(form, "customer"),
        site=_field(form, "site"),
        group_wait_s=_seconds(form, "group_wait", "30s", "the group wait"),
        repeat_s=_seconds(form, "repeat", "4h", "the repeat interval"),
        send_resolved=bool(form.get("send_resolved")),
        digest=bool(form.get("digest")),
        digest_hour=int(hour),
        quiet_from=_field(form, "quiet_from", 5),
        quiet_until=_field(form, "quiet_until", 5),
        timezone=_field(form, "timezone", 60) or "UTC",
    )


async def add_route(request: web.Request) -> web.Response:
    form = await checked_form(request)
    identity = signed_in(request)
    now = time.time()
    try:
        route = route_from_form(form, identity.partner_id)
        made = await request.app[DB].write(lambda c: store.add_route(c, route, now))
    except (ValueError, store.NotFound) as exc:  # NotifyError is a ValueError
        return await _page(request, identity, 400, error=f"Route: {exc}")
    raise web.HTTPSeeOther(f"{BASE}?done=route+{made.id}+added")


def _number(request: web.Request, name: str, what: str) -> int:
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise ApiError(404, "not_found", f"no such {what}")
    return int(raw)


async def remove_route(request: web.Request) -> web.Response:
    await checked_form(request)
    identity = signed_in(request)
    rid = _number(request, "route_id", "route")
    await _refusable(request, lambda c: store.remove_route(c, identity.partner_id, rid))
    raise web.HTTPSeeOther(f"{BASE}?done=route+{rid}+removed")


# --- silences ---------------------------------------------------------------------------


def silence_end(form: Any, now: float) -> float:
    """When a silence the form describes ends: ``until`` (a UTC date and time) or
    ``duration`` (``2h``) from now; ValueError says what is wrong in words."""
    until = _field(form, "until", 40)
    if until:
        try:
            t = dt.datetime.fromisoformat(until)
        except ValueError:
            raise ValueError(f"the end time {until!r} is not a date and time") from None
        end = (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).timestamp()
        if end <= now:
            raise ValueError("the end time has passed already")
    else:
        raw = _field(form, "duration", 20)
        if not raw:
            raise ValueError("a silence needs an end: a duration (2h, 1d) or an end time")
        try:
            end = now + parse_duration(raw)
        except ValueError:
            raise ValueError(f"the duration is like 90m, 2h or 1d, not {raw!r}") from None
    if end - now > MAX_SILENCE_S:
        raise ValueError("a silence lasts at most a year")
    return end


async def add_silence(request: web.Request) -> web.Response:
    form = await checked_form(request)
    identity = signed_in(request)
    now = time.time()
    scope, value = _field(form, "scope", 20), _field(form, "value")
    if scope in ("site", "customer") and not value:
        return await _page(request, identity, 400, error=f"Silence: name the {scope}")
    try:
        end = silence_end(form, now)
        made = await request.app[DB].write(
            lambda c: store.add_silence(
                c, identity.partner_id, scope, value, now, end, _field(form, "reason", 500), now
            )
        )
    except (ValueError, store.NotFound) as exc:
        return await _page(request, identity, 400, error=f"Silence: {exc}")
    raise web.HTTPSeeOther(f"{BASE}?done=silence+{made['id']}+created#silences")


async def silence_server(request: web.Request) -> web.Response:
    """ "Silence this server" from its page or the fleet: back where the form was."""
    identity = signed_in(request)
    row = await owned_server(request, request.match_info["server_id"])
    form = await checked_form(request)
    now = time.time()
    try:
        end = silence_end(form, now)
    except ValueError as exc:
        raise ApiError(400, "invalid_field", f"Silence: {exc}.") from None
    reason = _field(form, "reason", 500)
    pid = identity.partner_id
    made = await _refusable(
        request, lambda c: store.add_silence(c, pid, "server", row.id, now, end, reason, now)
    )
    back = _field(form, "back", 120)
    back = back if _BACK.match(back) else paths.SERVER_PAGE.format(server_id=row.id)
    raise web.HTTPSeeOther(f"{back}?done=silence+{made['id']}+created")


async def end_silence(request: web.Request) -> web.Response:
    form = await checked_form(request)
    identity = signed_in(request)
    sid, now = _number(request, "silence_id", "silence"), time.time()
    await _refusable(request, lambda c: store.end_silence(c, identity.partner_id, sid, now))
    back = _field(form, "back", 120)
    target = back if _BACK.match(back) else f"{BASE}#silences"
    raise web.HTTPSeeOther(f"{target.split('#')[0]}?done=silence+{sid}+ended")


def server_silences(conn: Any, partner_id: int, server_id: str, now: float) -> list[dict[str, Any]]:
    """The silences covering a server now or later (its own, its site's, its customer's,
    the partner's), as the dispatcher matches them."""
    customer, site = store.labels_of(conn, server_id)
    return [
        s
        for s in store.list_silences(conn, partner_id, now)
        if rules.silenced([s], max(now, s["starts_at"]), server_id, customer, site) is not None
    ]


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get(BASE, notifications_page)
    r.add_post(paths.NOTIFY_PAGE_CHANNELS, add_channel)
    r.add_get(paths.NOTIFY_PAGE_CHANNEL, channel_page)
    r.add_post(paths.NOTIFY_PAGE_CHANNEL_TEST, test_channel)
    r.add_post(paths.NOTIFY_PAGE_CHANNEL_REMOVE, remove_channel)
    r.add_post(paths.NOTIFY_PAGE_ROUTES, add_route)
    r.add_post(paths.NOTIFY_PAGE_ROUTE_REMOVE, remove_route)
    r.add_post(paths.NOTIFY_PAGE_SILENCES, add_silence)
    r.add_post(paths.NOTIFY_PAGE_SILENCE_END, end_silence)
    r.add_post(paths.SERVER_PAGE_SILENCE, silence_server)
