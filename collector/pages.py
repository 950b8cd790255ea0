"""The fleet view in a browser: status at a glance, storage over time, cameras.

Pages authenticate with the partner's API key, given once on the sign-in form and kept in
an HttpOnly, SameSite=Strict cookie; every page shows only that partner's servers.
Charts are inline SVG drawn on the server: no script, nothing fetched from elsewhere.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import jinja2
from aiohttp import web

from collector import cameras, secrets_store
from collector.appkeys import CONFIG, DB
from collector.auth import PARTNER_NAME, owned_server, partner_of, set_partner
from collector.fleet import FleetView, status_counts, storage_history
from collector.refusals import clock_offsets
from collector.status import STATUSES

COOKIE = "vigil_key"
PAGE_SIZE = 100
"""Servers per page, the most urgent first; the tiles count them all."""
STATUSES_BY_URGENCY = ("critical", "offline", "warning", "pending", "unmonitored", "ok", "revoked")
_env = jinja2.Environment(
    loader=jinja2.PackageLoader("collector", "templates"), autoescape=True, trim_blocks=True
)


def _render(name: str, **ctx: Any) -> web.Response:
    return web.Response(text=_env.get_template(name).render(**ctx), content_type="text/html")


def _size(n: float | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _ago(t: float | None, now: float) -> str:
    if t is None:
        return "never"
    s = int(now - t)
    if s < 120:
        return f"{s} s ago"
    if s < 7200:
        return f"{s // 60} min ago"
    if s < 172800:
        return f"{s // 3600} h ago"
    return f"{s // 86400} days ago"


def _date(t: float | None) -> str:
    return "—" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


def _partner(request: web.Request) -> bool:
    key = request.cookies.get(COOKIE, "")
    if not key:
        return False
    partner = request.app[DB].read_now(lambda c: secrets_store.partner_for_api_key(c, key))
    if partner is None:
        return False
    set_partner(request, partner.id, partner.name)
    request[PARTNER_NAME] = partner.name
    return True


def storage_chart(points: list[dict[str, Any]], width: int = 720, height: int = 180) -> str:
    """Used share of each volume over time, as an SVG line chart."""
    if len(points) < 2:
        return ""
    t0, t1 = points[0]["at"], points[-1]["at"]
    span = max(t1 - t0, 1.0)
    series: dict[str, list[str]] = {}
    for p in points:
        x = 40 + (p["at"] - t0) / span * (width - 50)
        for v in p["volumes"]:
            if not v["total"]:
                continue
            y = 10 + (1 - v["used"] / v["total"]) * (height - 30)
            series.setdefault(v["mountpoint"], []).append(f"{x:.1f},{y:.1f}")
    colours = ("#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2")
    parts = [
        f'<svg width="{width}" height="{height}" role="img" aria-label="storage used over time" '
        f'style="background:#fff">'
    ]
    for pct in (0, 50, 100):
        y = 10 + (1 - pct / 100) * (height - 30)
        parts.append(
            f'<line x1="40" x2="{width - 10}" y1="{y}" y2="{y}" stroke="#e3e6ea"/>'
            f'<text x="2" y="{y + 4}" font-size="10">{pct}%</text>'
        )
    for i, (name, pts) in enumerate(sorted(series.items())):
        c = colours[i % len(colours)]
        parts.append(
            f'<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{" ".join(pts)}"/>'
        )
        parts.append(
            f'<text x="{50 + i * 120}" y="{height - 4}" font-size="11" fill="{c}">'
            f"{jinja2.utils.markupsafe.escape(name)}</text>"
        )
    parts.append(
        f'<text x="{width - 150}" y="{height - 4}" font-size="10">{_date(t0)} – {_date(t1)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


async def fleet_page(request: web.Request) -> web.Response:
    if not _partner(request):
        raise web.HTTPFound("/login")
    cfg = request.app[CONFIG]
    partner_id = partner_of(request).partner_id
    now = time.time()
    offsets = clock_offsets(request.app)
    views = await request.app[DB].read(
        lambda c: FleetView(c, cfg.report_interval_s, cfg.offline_after_intervals, offsets).all(
            partner_id, now
        )
    )
    counts = status_counts(views)
    wanted = request.query.get("status")
    order = {s: i for i, s in enumerate(STATUSES_BY_URGENCY)}
    matching = sorted(
        (v for v in views if not wanted or v["status"] == wanted),
        key=lambda v: (order.get(v["status"], 9), v["hostname"]),
    )
    try:
        page = max(1, int(request.query.get("page", "1")))
    except ValueError:
        page = 1
    pages = max(1, -(-len(matching) // PAGE_SIZE))
    page = min(page, pages)
    shown = matching[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    for v in shown:
        v["last_seen_text"] = _ago(v["last_seen"], now)
        if v.get("backup"):
            v["backup"]["last_success_text"] = _ago(v["backup"]["last_success"], now)
        fullest = max(
            (vol for vol in v["volumes"] if vol.total),
            key=lambda vol: vol.used / vol.total,
            default=None,
        )
        v["fullest"] = fullest and {
            "mountpoint": fullest.mountpoint,
            "pct": round(100 * fullest.used / fullest.total),
        }
    return _render(
        "fleet.html",
        partner=request[PARTNER_NAME],
        servers=shown,
        counts=counts,
        statuses=STATUSES,
        total=len(views),
        page=page,
        pages=pages,
        wanted=wanted or "",
    )


async def server_page(request: web.Request) -> web.Response:
    if not _partner(request):
        raise web.HTTPFound("/login")
    row = await owned_server(request, request.match_info["server_id"])
    cfg = request.app[CONFIG]
    now = time.time()
    offsets = clock_offsets(request.app)

    def load(c: Any) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
        view = FleetView(c, cfg.report_interval_s, cfg.offline_after_intervals, offsets).view(
            row, now, detail=True
        )
        return (
            view,
            cameras.list_cameras(c, row.id, now),
            storage_history(c, row.id, now - 30 * 86400),
        )

    view, cams, points = await request.app[DB].read(load)
    vols = []
    for v in view["volumes"]:
        total = v.get("total") or 0
        rate = v.get("fill_rate_bytes_per_day")
        vols.append(
            {
                **v,
                "pct": round(100 * v.get("used", 0) / total) if total else 0,
                "total_text": _size(total),
                "free_text": _size(v.get("free")),
                "rate_text": "—" if rate is None else f"{_size(rate)}/day",
                "full_text": "not filling" if v.get("full_at") is None else _date(v["full_at"]),
            }
        )
    return _render(
        "server.html",
        partner=request[PARTNER_NAME],
        s=view,
        volumes=vols,
        cameras=cams,
        chart=storage_chart(points),
        last_seen_text=_ago(view["last_seen"], now),
    )


async def login_form(request: web.Request) -> web.Response:
    return _render("login.html", partner=None, error=None)


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    key = str(form.get("api_key", "")).strip()
    partner = (
        request.app[DB].read_now(lambda c: secrets_store.partner_for_api_key(c, key))
        if key
        else None
    )
    if partner is None:
        resp = _render("login.html", partner=None, error="Unknown or revoked API key.")
        resp.set_status(401)
        return resp
    resp = web.HTTPFound("/")
    resp.set_cookie(COOKIE, key, httponly=True, samesite="Strict", secure=request.secure, path="/")
    raise resp


async def logout(request: web.Request) -> web.Response:
    resp = web.HTTPFound("/login")
    resp.del_cookie(COOKIE, path="/")
    raise resp


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", fleet_page)
    app.router.add_get("/servers/{server_id}", server_page)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_get("/logout", logout)
