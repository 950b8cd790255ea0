"""The incidents page: open incidents first with their response, resolution and follow-up
clocks (warning at 50 % and 75 % of a due time, breach past it), and the actions the
user's role allows: the partner's operators acknowledge, record a workaround (which stops
a "continuous effort until a workaround" resolution clock, P1 on the premium plan),
pause, resume, resolve and reopen; the customer's operators accept a resolution or
reopen it. Viewers read.

Actions are forms (POST with the sign-in's CSRF token) that work without script.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from aiohttp import web

from collector.accounts import vendor
from collector.contracts import repository as repo
from collector.contracts.calendar import business_calendar
from collector.contracts.incidents import (
    Action,
    TransitionError,
    apply,
    incident_to_json,
    replay,
)
from collector.health import servers
from collector.http import paths
from collector.http.appkeys import DB
from collector.http.auth import PartnerIdentity
from collector.http.errors import ApiError
from collector.http.pages import checked_form, render, signed_in

PARTNER_ACTIONS = {
    "open": ("acknowledge", "workaround", "pause", "resolve"),
    "acknowledged": ("workaround", "pause", "resolve"),
    "workaround": ("resolve",),
    "paused": ("resume", "resolve"),
    "resolved": ("reopen",),
    "closed": ("reopen",),
}
CUSTOMER_ACTIONS = {"resolved": ("accept", "reopen"), "closed": ("reopen",)}
_STATE_ORDER = {
    "open": 0,
    "acknowledged": 1,
    "workaround": 2,
    "paused": 3,
    "resolved": 4,
    "closed": 5,
}


def actions_for(identity: PartnerIdentity, state: str) -> tuple[str, ...]:
    """The actions this identity may take on an incident in ``state``."""
    if identity.role == "viewer" or identity.vendor:  # the vendor reads partners' incidents
        return ()
    table = CUSTOMER_ACTIONS if identity.customer is not None else PARTNER_ACTIONS
    return table.get(state, ())


PAGE_SIZE = 100
"""Incidents shown per page. The list is ordered over all of them by state (from the
events alone); the clocks, the costly part, are computed for the page shown."""


def incident_rows(
    conn: Any, identity: PartnerIdentity, state: str = "", page: int = 1
) -> tuple[list[dict[str, Any]], int, int, int]:
    """(the rows of ``page``, the page number, the number of pages, rows in all)."""
    now = dt.datetime.now(dt.UTC)
    seen = vendor.partners_read(conn, identity.vendor, identity.partner_id, identity.name)
    names = {sid: host for pid, _ in seen for sid, host in servers.hostnames(conn, pid).items()}
    keyed = []
    owner: dict[int, str] = {}
    for partner, inc in ((name, i) for _, name in seen for i in repo.list_incidents(conn, name)):
        if not identity.sees_incident(inc.server_id, inc.contract_id):
            continue
        owner[id(inc)] = partner
        st = replay(inc, until=now).state.value
        if state == "open" and st == "closed":  # resolved waits for acceptance
            continue
        opened = business_calendar(inc.calendar).to_local(inc.opened_at).isoformat()
        keyed.append(((_STATE_ORDER.get(st, 9), opened), inc))
    keyed.sort(key=lambda k: k[0])
    pages = max(1, -(-len(keyed) // PAGE_SIZE))
    page = max(1, min(page, pages))
    rows = []
    for _, inc in keyed[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]:
        j = incident_to_json(inc, now)
        j["hostname"] = names.get(inc.server_id or "", "")
        j["partner"] = owner[id(inc)]
        j["actions"] = actions_for(identity, str(j["state"]))
        rows.append(j)
    return rows, page, pages, len(keyed)


async def incidents_page(request: web.Request) -> web.Response:
    identity = signed_in(request)
    state = request.query.get("state", "open")
    if state not in ("open", "all"):
        state = "open"
    try:
        page = max(1, int(request.query.get("page", "1")[:6]))
    except ValueError:
        page = 1
    rows, page, pages, total = await request.app[DB].read(
        lambda c: incident_rows(c, identity, state, page)
    )
    return render(
        "incidents.html",
        request,
        tab="incidents",
        incidents=rows,
        state=state,
        page=page,
        pages=pages,
        total=total,
        customer_view=identity.customer is not None,
        vendor_view=identity.vendor,
        done=request.query.get("done", "")[:40],
    )


async def incident_form(request: web.Request) -> web.Response:
    """POST /incidents/{id}/{action}: one action, then back to the list (303)."""
    form = await checked_form(request)
    identity = signed_in(request)
    iid = request.match_info["incident_id"]
    name = request.match_info["action"]
    note = str(form.get("note", ""))[:4000]

    def write(conn: Any) -> None:
        got = repo.get_incident(conn, iid)
        if (
            got is None
            or got[1] != identity.name
            or not identity.sees_incident(got[0].server_id, got[0].contract_id)
        ):
            raise ApiError(404, "not_found", f"no incident {iid[:40]!r}")
        state = incident_to_json(got[0], dt.datetime.now(dt.UTC))["state"]
        if name not in actions_for(identity, str(state)):
            raise ApiError(409, "invalid_transition", f"cannot {name[:20]} this incident now")
        try:
            new = apply(got[0], Action(name), dt.datetime.now(dt.UTC), by=identity.actor, note=note)
        except TransitionError as exc:
            raise ApiError(409, "invalid_transition", str(exc)) from None
        repo.save_incident(conn, new, time.time())

    await request.app[DB].write(write)
    raise web.HTTPSeeOther(f"{paths.INCIDENTS_PAGE}?done={name}#{iid}")


def setup(app: web.Application) -> None:
    app.router.add_get(paths.INCIDENTS_PAGE, incidents_page)
    app.router.add_post(paths.INCIDENT_FORM, incident_form)
