"""The fleet page (counts, attention first, search, filters, paging, live refresh) and the
server page (storage chart with forecast, cameras, backups and the restore command,
contract, incidents with their due times).

A customer's user sees its customer's servers only; anyone else's server answers 404.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from collector.accounts import partners, vendor
from collector.backups import catalog
from collector.backups.status import backup_status
from collector.contracts import repository as repo
from collector.contracts.covering import covering_contract
from collector.contracts.incidents import State, incident_to_json, status
from collector.contracts.views import contract_view
from collector.health import cameras
from collector.health.fleet import FleetView, status_counts, storage_history
from collector.health.fleet_cache import FLEET_CACHE
from collector.health.refusals import clock_offsets
from collector.health.status import STATUSES, VolumeSummary, used_percent, volume_level
from collector.http import fleet_filters as ff
from collector.http import paths
from collector.http.appkeys import CONFIG, DB
from collector.http.auth import PartnerIdentity, owned_server
from collector.http.charts import availability_strip, storage_chart
from collector.http.page_notify import server_silences
from collector.http.pages import ago, date_text, render, signed_in, size_text
from collector.notify import store as notify_store

LEGEND = {
    "critical": "needs action now (disk nearly full, cameras down, backup failing)",
    "offline": "has not reported for several intervals",
    "warning": "something to look at soon",
    "pending": "enrolled, no report yet",
    "unmonitored": "reports, but no contract covers monitoring",
    "ok": "all checks pass",
    "revoked": "shut out by the operator",
}
"""What each status means, shown under the tiles."""
AT_RISK = frozenset({"warning_75", "breached"})
OPEN_STATES = frozenset({State.OPEN, State.ACKNOWLEDGED, State.PAUSED})


def sla_at_risk(conn: Any, identity: PartnerIdentity, only: set[str] | None = None) -> set[str]:
    """Servers (of ``only``, when given) with an incident not yet resolved that is past
    75 % of a due time or past it. Only incidents stored as open, acknowledged or paused
    are evaluated, once each: their clocks are the expensive part."""
    now = dt.datetime.now(dt.UTC)
    risky = set()
    seen = vendor.partners_read(conn, identity.vendor, identity.partner_id, identity.name)
    for state, (_, name) in itertools.product(OPEN_STATES, seen):
        for i in repo.list_incidents(conn, name, state=state.value):
            if not i.server_id or not identity.sees_incident(i.server_id, i.contract_id):
                continue
            if only is not None and i.server_id not in only:
                continue
            s = status(i, now)
            if {s.response.status.value, s.resolution.status.value} & AT_RISK:
                risky.add(i.server_id)
    return risky


@dataclass(frozen=True)
class FleetRows:
    views: list[dict[str, Any]]
    at_risk: set[str]
    """Servers with an SLA at risk, when the filter asks for them (else found later for
    the shown page only)."""
    counts: dict[str, int]
    choices: dict[str, list[str]]
    by_urgency: list[dict[str, Any]]
    """``views`` most urgent first, with no server marked at risk."""


def _summary(views: list[dict[str, Any]]) -> tuple[dict[str, int], dict[str, list[str]], list[int]]:
    """What the page shows of the whole fleet: tiles, filter choices, the order (indexes)."""
    order = sorted(range(len(views)), key=lambda i: ff.urgency(views[i], set()))
    return status_counts(views), ff.choices(views), order


def fleet_rows(
    conn: Any, request: web.Request, identity: PartnerIdentity, now: float, risk: bool
) -> FleetRows:
    """The identity's servers' views with the fleet's tiles, choices and order."""
    cfg = request.app[CONFIG]
    fleet = FleetView(
        conn, cfg.report_interval_s, cfg.offline_after_intervals, clock_offsets(request.app)
    )
    cache = request.app[FLEET_CACHE]
    scope = None if identity.vendor else identity.partner_id  # the vendor: every partner
    views = cache.views(fleet, scope, now)
    if identity.servers is not None:
        views = [v for v in views if v["id"] in identity.servers]
        counts, choices, order = _summary(views)
    else:
        counts, choices, order = cache.derived(scope, "page", views, _summary)
    at_risk = sla_at_risk(conn, identity) if risk else set()
    return FleetRows(views, at_risk, counts, choices, [views[i] for i in order])


def unhealthy_channels(conn: Any, identity: PartnerIdentity) -> list[dict[str, Any]]:
    """The partner's failing notification channels, shown above its fleet (not to a
    customer's users, whose partner's channels are not theirs to see)."""
    if identity.customer is not None or identity.vendor:
        return []
    return notify_store.unhealthy_channels(conn, identity.partner_id)


def _decorate(v: dict[str, Any], now: float, at_risk: set[str]) -> None:
    v["last_seen_text"] = ago(v["last_seen"], now)
    v["sla_at_risk"] = v["id"] in at_risk
    if v.get("backup"):
        # A copy: the fleet views are shared with their cache (collector.health.fleet_cache).
        v["backup"] = {**v["backup"], "last_success_text": ago(v["backup"]["last_success"], now)}
    v["fullest"] = _most_urgent_volume(v["volumes"], now)


_LEVELS = {"ok": 0, "warning": 1, "critical": 2}


def _most_urgent_volume(volumes: list[VolumeSummary], now: float) -> dict[str, Any] | None:
    """The volume the fleet list shows: the one in the worst state (fill level or
    forecast), then the fullest; its bar takes that state's colour, and a forecast that
    makes it worse than its fill is named beside it."""
    best: tuple[int, float, VolumeSummary, str] | None = None
    for vol in volumes:
        if not vol.total:
            continue
        level = volume_level(vol, now)
        key = (_LEVELS[level], used_percent(vol.used, vol.free), vol, level)
        if best is None or key[:2] > best[:2]:
            best = key
    if best is None:
        return None
    _, pct, vol, level = best
    fill_only = volume_level(VolumeSummary(total=vol.total, used=vol.used, free=vol.free), now)
    soon = level != fill_only and vol.recording and not vol.error and vol.full_at is not None
    return {
        "mountpoint": vol.mountpoint,
        "pct": round(pct),
        "level": level,
        "full_text": f"full {date_text(vol.full_at)}" if soon else "",
    }


async def fleet_page(request: web.Request) -> web.Response:
    identity = signed_in(request)
    now = time.time()
    fq = ff.parse(request.query)
    rows = await request.app[DB].read(
        lambda c: fleet_rows(c, request, identity, now, fq.sla_at_risk)
    )
    views, at_risk = rows.views, rows.at_risk
    shown, page, pages, matching = ff.select(views, fq, at_risk, rows.by_urgency)
    if not fq.sla_at_risk:
        ids = {v["id"] for v in shown}
        at_risk = await request.app[DB].read(lambda c: sla_at_risk(c, identity, ids))
    failing = await request.app[DB].read(lambda c: unhealthy_channels(c, identity))
    try:
        refresh = max(2, min(int(request.query.get("refresh", "30")[:4]), 600))
    except ValueError:
        refresh = 30
    counts, counted = rows.counts, len(views)
    if ff.filtered(fq):  # the tiles count what the filter selects (any status)
        counts, counted = ff.tile_counts(views, fq, rows.at_risk)
    shown = [dict(v) for v in shown]  # the fleet views are shared: decorated copies
    for v in shown:
        _decorate(v, now, at_risk)

    def link(**changes: object) -> str:
        return "?" + urllib.parse.urlencode(fq.params(**changes))

    return render(
        "fleet.html",
        request,
        tab="fleet",
        servers=shown,
        counts=counts,
        counted=counted,
        filtered=ff.filtered(fq),
        statuses=STATUSES,
        legend=LEGEND,
        total=len(views),
        matching=matching,
        page=page,
        pages=pages,
        fq=fq,
        link=link,
        choices=rows.choices,
        customer_view=identity.customer is not None,
        vendor_view=identity.vendor,
        may_silence=identity.customer is None and identity.role != "viewer" and not identity.vendor,
        done=request.query.get("done", "")[:60],
        failing=failing,
        refresh=refresh,
        refreshed=dt.datetime.fromtimestamp(now, dt.UTC).strftime("%H:%M:%S UTC"),
    )


def _volumes(view: dict[str, Any], now: float) -> list[dict[str, Any]]:
    vols = []
    for v in view["volumes"]:
        total = v.get("total") or 0
        rate = v.get("fill_rate_bytes_per_day")
        summary = VolumeSummary(
            total=total,
            used=v.get("used") or 0,
            free=v.get("free") or 0,
            full_at=v.get("full_at"),
            recording=bool(v.get("recording")),
            error=str(v.get("error") or ""),
        )
        vols.append(
            {
                **v,
                "pct": round(used_percent(v.get("used", 0), v.get("free", 0))) if total else 0,
                "level": volume_level(summary, now),
                "total_text": size_text(total),
                "free_text": size_text(v.get("free")),
                "rate_text": "—" if rate is None else f"{size_text(rate)}/day",
                "full_text": "not filling" if v.get("full_at") is None else date_text(v["full_at"]),
            }
        )
    return vols


CLOCK_WARN_S = 5.0
"""A camera clock further off than this is marked on the server page: the agent's default
``[cameras] clock_threshold_s``, past which it calls the camera degraded."""

BACKUP_STATE_WORDS = {
    "ok": ("stored and verified", "ok"),
    "new": ("new: the first backup is not due yet", ""),
    "overdue": ("overdue", "breach"),
    "not_entitled": ("not entitled", ""),
    "off": ("off", ""),
}
"""``backup_status`` state -> (words on the server page, pill style)."""


def _server_data(
    conn: Any, request: web.Request, identity: PartnerIdentity, row: Any, now: float
) -> dict[str, Any]:
    cfg = request.app[CONFIG]
    offsets = clock_offsets(request.app)
    fleet = FleetView(conn, cfg.report_interval_s, cfg.offline_after_intervals, offsets)
    view = fleet.view(row, now, detail=True)
    contract = None
    if row.licence_id:
        covering = covering_contract(conn, identity.name, row.licence_id, now)
        if covering is not None:
            contract = contract_view(covering.contract)
            try:
                contract["entitlements"] = [
                    (f.name.replace("_", " "), getattr(covering.plan.entitlements, f.name))
                    for f in dataclasses.fields(covering.plan.entitlements)
                ]
            except KeyError:  # a plan this collector does not know
                contract["entitlements"] = []
    findings = [f for f in repo.list_findings(conn, identity.name) if f.get("server_id") == row.id]
    incidents = [
        incident_to_json(i, dt.datetime.now(dt.UTC))
        for i in repo.list_incidents(conn, identity.name)
        if i.server_id == row.id
    ]
    backups = list(reversed(catalog.list_backups(conn, row.id)))[:30]
    return {
        "silences": server_silences(conn, identity.partner_id, row.id, now),
        "view": view,
        "contract": contract,
        "findings": findings,
        "incidents": incidents,
        "cameras": cameras.list_cameras(conn, row.id, now),
        "points": storage_history(conn, row.id, now - 30 * 86400),
        "backups": [b.public() for b in backups],
        "backup_status": backup_status(conn, row.id, now),
    }


async def server_page(request: web.Request) -> web.Response:
    identity = signed_in(request)
    row = await owned_server(request, request.match_info["server_id"])
    now = time.time()
    if identity.vendor:  # reads the server's partner's contract, incidents and silences
        name = await request.app[DB].read(lambda c: partners.name_of(c, row.partner_id))
        identity = identity.reading_for(row.partner_id, name or "")
    data = await request.app[DB].read(lambda c: _server_data(c, request, identity, row, now))
    view = data["view"]
    vols = _volumes(view, now)
    origin = f"{request.scheme}://{request.host}"
    restore = (
        f"VIGIL_COLLECTOR={origin} VIGIL_API_KEY=<your API key> "
        f"vigil-backup restore --server {row.id} --identity recovery.key --to ./restored"
    )
    for cam in data["cameras"]:
        cam["strips"] = {
            w: availability_strip(cam["availability"].get(w)) for w in ("24h", "7d", "30d")
        }
        offset = cam.get("clock_offset_s")
        cam["clock_warn"] = offset is not None and abs(float(offset)) > CLOCK_WARN_S
    state = data["backup_status"]["state"]
    backup_words, backup_style = BACKUP_STATE_WORDS.get(state, (state, ""))
    return render(
        "server.html",
        request,
        tab="fleet",
        s=view,
        contract=data["contract"],
        findings=data["findings"],
        incidents=data["incidents"],
        volumes=vols,
        cameras=data["cameras"],
        chart=storage_chart(data["points"], vols),
        backups=data["backups"],
        backup_status=data["backup_status"],
        backup_words=backup_words,
        backup_style=backup_style,
        clock_warn_s=CLOCK_WARN_S,
        restore=restore,
        last_seen_text=ago(view["last_seen"], now),
        customer_view=identity.customer is not None,
        silences=data["silences"],
        may_silence=identity.customer is None and identity.role != "viewer" and not identity.vendor,
        done=request.query.get("done", "")[:60],
    )


def setup(app: web.Application) -> None:
    app.router.add_get(paths.FLEET_PAGE, fleet_page)
    app.router.add_get(paths.SERVER_PAGE, server_page)
