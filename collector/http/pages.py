"""The fleet view in a browser: status at a glance, storage over time, cameras.

The partner signs in once with an API key; the cookie then holds a random sign-in id
(the collector keeps its SHA-256), never the key. A sign-in ends at its expiry
(``[pages] session_ttl_s``), at sign-out (a POST) and when its API key is revoked. Every
form carries a CSRF token: the sign-in form one from a cookie of its own (double
submit), the others one derived from the sign-in id. Every page shows only that
partner's servers, under a Content-Security-Policy that allows nothing but the
collector's own style sheet: charts are inline SVG drawn on the server, no script.
"""

from __future__ import annotations

import hmac
import secrets
import time
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import jinja2
from aiohttp import web

from collector import secrets_store
from collector.health import cameras
from collector.health.fleet import FleetView, status_counts, storage_history
from collector.health.refusals import clock_offsets
from collector.health.status import STATUSES, used_percent
from collector.http.appkeys import CONFIG, DB, METRICS
from collector.http.auth import (
    PARTNER_NAME,
    api_key_credential,
    limited_for,
    note_failure,
    owned_server,
    partner_of,
    set_partner,
)

COOKIE = "vigil_session"
CSRF_COOKIE = "vigil_csrf"
_CSRF = web.RequestKey("vigil.csrf", str)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
"""On every page (not on the JSON API, whose clients are programs)."""
_NOT_PAGES = ("/api/", "/metrics", "/healthz")
PAGE_SIZE = 100
"""Servers per page, the most urgent first; the tiles count them all."""
STATUSES_BY_URGENCY = ("critical", "offline", "warning", "pending", "unmonitored", "ok", "revoked")
_env = jinja2.Environment(
    loader=jinja2.PackageLoader("collector", "templates"), autoescape=True, trim_blocks=True
)


_env.filters["bar"] = lambda pct: f"w{max(0, min(100, int(pct)))}" + (" hot" if pct >= 90 else "")
"""The CSS classes of a fill bar (its width and colour come from the style sheet)."""
_CSS = resources.files("collector").joinpath("templates", "vigil.css").read_bytes()


def _render(name: str, request: web.Request | None = None, **ctx: Any) -> web.Response:
    csrf = request.get(_CSRF, "") if request is not None else ""
    return web.Response(
        text=_env.get_template(name).render(csrf=csrf, **ctx),
        content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the pages' security headers, errors and redirects included."""
    if request.path.startswith(_NOT_PAGES):
        return
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def _secure(request: web.Request) -> bool:
    return request.secure or request.app[CONFIG].pages.secure_cookies


def _set_cookie(request: web.Request, resp: web.StreamResponse, name: str, value: str) -> None:
    resp.set_cookie(
        name, value, httponly=True, samesite="Strict", secure=_secure(request), path="/"
    )


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
    sid = request.cookies.get(COOKIE, "")
    if not sid or len(sid) > 200:
        return False
    now = time.time()
    found = request.app[DB].read_now(lambda c: secrets_store.page_session(c, sid, now))
    if found is None:
        return False
    set_partner(request, found.partner.id, found.partner.name)
    request[PARTNER_NAME] = found.partner.name
    request[_CSRF] = found.csrf
    return True


def _same(given: object, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(str(given or "").encode(), expected.encode())


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
            y = 10 + (1 - used_percent(v["used"], v.get("free", 0)) / 100) * (height - 30)
            series.setdefault(v["mountpoint"], []).append(f"{x:.1f},{y:.1f}")
    colours = ("#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2")
    parts = [
        f'<svg width="{width}" height="{height}" role="img" aria-label="storage used over time">'
        f'<rect width="{width}" height="{height}" fill="#fff"/>'
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
            key=lambda vol: used_percent(vol.used, vol.free),
            default=None,
        )
        v["fullest"] = fullest and {
            "mountpoint": fullest.mountpoint,
            "pct": round(used_percent(fullest.used, fullest.free)),
        }
    return _render(
        "fleet.html",
        request,
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
                "pct": round(used_percent(v.get("used", 0), v.get("free", 0))) if total else 0,
                "total_text": _size(total),
                "free_text": _size(v.get("free")),
                "rate_text": "—" if rate is None else f"{_size(rate)}/day",
                "full_text": "not filling" if v.get("full_at") is None else _date(v["full_at"]),
            }
        )
    return _render(
        "server.html",
        request,
        partner=request[PARTNER_NAME],
        s=view,
        volumes=vols,
        cameras=cams,
        chart=storage_chart(points),
        last_seen_text=_ago(view["last_seen"], now),
    )


def _login_page(request: web.Request, status: int = 200, error: str | None = None) -> web.Response:
    """The sign-in form, with a fresh CSRF token in the form and in its cookie."""
    token = secrets.token_urlsafe(24)
    request[_CSRF] = token
    resp = _render("login.html", request, partner=None, error=error)
    resp.set_status(status)
    _set_cookie(request, resp, CSRF_COOKIE, token)
    return resp


async def login_form(request: web.Request) -> web.Response:
    return _login_page(request)


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    if not _same(form.get("csrf"), request.cookies.get(CSRF_COOKIE, "")):
        request.app[METRICS].rejected("csrf")
        return _login_page(request, 403, "The sign-in form expired; please try again.")
    key = str(form.get("api_key", "")).strip()
    credential = api_key_credential(key)
    wait = limited_for(request, credential)
    if wait is not None:
        request.app[METRICS].rejected("rate_limited")
        resp = _login_page(request, 429, f"Too many failed sign-ins. Try again in {wait} seconds.")
        resp.headers["Retry-After"] = str(wait)
        return resp
    ttl = request.app[CONFIG].pages.session_ttl_s
    sid = (
        await request.app[DB].write(lambda c: secrets_store.create_page_session(c, key, ttl))
        if key and len(key) <= 200
        else None
    )
    if sid is None:
        note_failure(request, credential)
        request.app[METRICS].rejected("unauthenticated")
        return _login_page(request, 401, "Unknown or revoked API key.")
    resp = web.HTTPFound("/")
    _set_cookie(request, resp, COOKIE, sid)
    resp.del_cookie(CSRF_COOKIE, path="/")
    raise resp


async def logout(request: web.Request) -> web.Response:
    """POST only, with the sign-in's CSRF token: a link elsewhere cannot sign anyone out."""
    if not _partner(request):
        raise web.HTTPFound("/login")
    form = await request.post()
    if not _same(form.get("csrf"), request.get(_CSRF, "")):
        request.app[METRICS].rejected("csrf")
        raise web.HTTPForbidden(reason="missing or wrong CSRF token")
    sid = request.cookies.get(COOKIE, "")
    await request.app[DB].write(lambda c: secrets_store.end_page_session(c, sid))
    resp = web.HTTPFound("/login")
    resp.del_cookie(COOKIE, path="/")
    raise resp


async def style_sheet(request: web.Request) -> web.Response:
    return web.Response(
        body=_CSS,
        content_type="text/css",
        headers={"Cache-Control": "public, max-age=3600"},
    )


def setup(app: web.Application) -> None:
    """The pages' routes, and security headers on every response of the app."""
    app.on_response_prepare.append(security_headers)
    app.router.add_get("/", fleet_page)
    app.router.add_get("/servers/{server_id}", server_page)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/static/vigil.css", style_sheet)
