"""The pages' common ground: sign-in and sign-out, sessions, CSRF, rendering, error pages.

A user signs in with an e-mail address and password (or one of its API keys); the
cookie then holds a random sign-in id (the collector keeps its SHA-256), never a
secret the user knows. A sign-in ends at its expiry (``[pages] session_ttl_s``), at
sign-out (a POST), when its user is disabled or its role changed, and when the API key
it was made with is revoked. Every form carries a CSRF token: the sign-in form one from
a cookie of its own (double submit), the others one derived from the sign-in id. Every
page shows only what the user's organisation may see (its partner's, or its customer's),
under a Content-Security-Policy that allows only the collector's own style sheet and
script: charts are inline SVG drawn on the server, and every page works without script
(the script only refreshes the fleet in place). The pages themselves live in
``page_fleet``, ``page_incidents``, ``page_contracts``, ``page_settings``,
``page_notify`` and (password reset, for someone not signed in) ``page_reset``.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
import urllib.parse
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import jinja2
from aiohttp import web

from collector.accounts import passwords, store, totp
from collector.http import paths
from collector.http.appkeys import CONFIG, DB, METRICS
from collector.http.auth import (
    PARTNER_NAME,
    PartnerIdentity,
    api_key_credential,
    check_role,
    identity_for,
    limited_for,
    note_failure,
    partner_of,
    set_partner,
)
from collector.http.ratelimit import credential_key
from protocol import routes

COOKIE = "vigil_session"
CSRF_COOKIE = "vigil_csrf"
_CSRF = web.RequestKey("vigil.csrf", str)
USER = web.RequestKey("vigil.user", store.User)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; "
        "connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
"""On every page (not on the JSON API, whose clients are programs)."""
_NOT_PAGES = (paths.API_PREFIX, paths.METRICS, routes.HEALTHZ)
_env = jinja2.Environment(
    loader=jinja2.PackageLoader("collector", "templates"), autoescape=True, trim_blocks=True
)


def page_path(route: str, /, **parts: object) -> str:
    """The path of ``route`` (the name of a constant of :mod:`collector.http.paths`) with its
    ``{part}``s filled in and quoted: the templates spell no path of their own."""
    pattern: str = getattr(paths, route)
    return pattern.format(**{k: urllib.parse.quote(str(v), safe="") for k, v in parts.items()})


_env.globals["path"] = page_path
_env.filters["size"] = lambda n: size_text(n)
_env.filters["day"] = lambda t: date_text(t)
_env.filters["when"] = lambda t: (
    "—" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")
)
_env.filters["iso"] = lambda text: (
    "—" if not text else f"{text[:10]} {text[11:16]} {text[-6:] if text[-6] in '+-' else 'UTC'}"
)
"""An ISO 8601 time with its offset as "2026-12-04 08:55 +01:00" (local to its calendar)."""
_BAR_COLOURS = {"ok": "", "warning": " warm", "critical": " hot"}
_env.filters["bar"] = lambda pct, level: f"w{max(0, min(100, int(pct)))}" + _BAR_COLOURS[level]
"""The CSS classes of a fill bar: its width, and its colour from the volume's level (the
worst of fill and forecast: :func:`collector.health.status.volume_level`); both from the
style sheet."""
_STATIC = {
    name: (resources.files("collector").joinpath("templates", name).read_bytes(), ctype)
    for name, ctype in (("vigil.css", "text/css"), ("vigil.js", "text/javascript"))
}


def render(name: str, request: web.Request | None = None, **ctx: Any) -> web.Response:
    """A page: the template with the signed-in user, its CSRF token and the active tab."""
    csrf = request.get(_CSRF, "") if request is not None else ""
    me = request.get(USER) if request is not None else None
    return web.Response(
        text=_env.get_template(name).render(csrf=csrf, me=me, **ctx),
        content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )


def is_page(request: web.Request) -> bool:
    """Does a browser ask (a page, not the JSON API): errors then answer in HTML."""
    return not request.path.startswith(_NOT_PAGES)


_TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "Conflict",
    413: "Too large",
    429: "Too many requests",
}


def error_page(
    request: web.Request,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    code: str = "",
) -> web.Response:
    """The HTML page of a refusal, for browsers (the API answers JSON); ``code`` is the
    machine-readable reason the JSON would carry."""
    resp = render(
        "error.html",
        request,
        status=status,
        code=code,
        title=_TITLES.get(status, "Something went wrong"),
        message=message,
    )
    resp.set_status(status)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


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


def size_text(n: float | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def ago(t: float | None, now: float) -> str:
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


def date_text(t: float | None) -> str:
    return "—" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


def _partner(request: web.Request) -> bool:
    """Signed in? Sets the request's identity; 403 when its role may not do this."""
    sid = request.cookies.get(COOKIE, "")
    if not sid or len(sid) > 200:
        return False
    now = time.time()

    def lookup(c: Any) -> tuple[store.SignIn, PartnerIdentity] | None:
        found = store.session_user(c, sid, now)
        return None if found is None else (found, identity_for(c, found.user))

    found = request.app[DB].read_now(lookup)
    if found is None:
        return False
    sign_in, identity = found
    set_partner(request, identity)
    request[PARTNER_NAME] = identity.customer or identity.name
    request[USER] = sign_in.user
    request[_CSRF] = sign_in.csrf
    check_role(request, identity)
    return True


def signed_in(request: web.Request) -> PartnerIdentity:
    """The signed-in identity; a browser that is not signed in is sent to the sign-in form."""
    if not _partner(request):
        raise web.HTTPFound(paths.LOGIN)
    return partner_of(request)


async def checked_form(request: web.Request) -> Any:
    """A signed-in POST's form, refused (403) without the sign-in's CSRF token."""
    signed_in(request)
    form = await request.post()
    if not _same(form.get("csrf"), request.get(_CSRF, "")):
        request.app[METRICS].rejected("csrf")
        raise web.HTTPForbidden(reason="missing or wrong CSRF token")
    return form


def _same(given: object, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(str(given or "").encode(), expected.encode())


def open_form(request: web.Request, template: str, status: int = 200, **ctx: Any) -> web.Response:
    """A form for someone not signed in (sign-in, password reset), with a fresh CSRF
    token in the form and in its cookie (double submit: :func:`open_form_ok`)."""
    token = secrets.token_urlsafe(24)
    request[_CSRF] = token
    resp = render(template, request, **ctx)
    resp.set_status(status)
    _set_cookie(request, resp, CSRF_COOKIE, token)
    return resp


def open_form_ok(request: web.Request, form: Any) -> bool:
    """Did a form of :func:`open_form` come back with its cookie's token?"""
    if _same(form.get("csrf"), request.cookies.get(CSRF_COOKIE, "")):
        return True
    request.app[METRICS].rejected("csrf")
    return False


def _login_page(request: web.Request, status: int = 200, error: str | None = None) -> web.Response:
    """The sign-in form (with a password-reset link when the collector sends mail)."""
    reset = request.app[CONFIG].mail.enabled
    return open_form(request, "login.html", status, partner=None, error=error, reset=reset)


async def login_form(request: web.Request) -> web.Response:
    return _login_page(request)


def _key_sign_in(conn: Any, key: str, ttl: float) -> str | None:
    owner = store.key_owner(conn, key)
    if owner is None:
        return None
    return store.create_session(conn, owner.user.id, ttl, api_key_id=owner.key_id)


async def _password_sign_in(
    request: web.Request, email: str, password: str, code: str, ttl: float
) -> str | None:
    """A new sign-in id, or None: unknown address, wrong password, disabled, or (with the
    second factor on) a missing, wrong or already used code."""
    found = await request.app[DB].read(lambda c: store.user_by_email(c, email))
    user, stored = found if found is not None else (None, None)
    ok = await asyncio.to_thread(passwords.verify, stored, password)
    if not ok or user is None or user.disabled_at is not None or user.service:
        return None
    now = time.time()

    def write(c: Any) -> str | None:
        secret, last_step = store.totp_of(c, user.id)
        if secret is not None:
            step = totp.accepted_step(secret, code, last_step, now)
            if step is None or not store.use_totp_step(c, user.id, step):
                return None
        store.note_login(c, user.id, now)
        return store.create_session(c, user.id, ttl)

    return await request.app[DB].write(write)


async def login(request: web.Request) -> web.Response:
    """Sign in with an e-mail address and password, or (programs, old habits) an API key."""
    form = await request.post()
    if not open_form_ok(request, form):
        return _login_page(request, 403, "The sign-in form expired; please try again.")
    key = str(form.get("api_key", "")).strip()
    email = str(form.get("email", "")).strip().lower()[:254]
    password = str(form.get("password", ""))
    code = str(form.get("code", ""))[:12]
    credential = api_key_credential(key) if key else (credential_key("user", email or "(none)"),)
    wait = limited_for(request, credential)
    if wait is not None:
        request.app[METRICS].rejected("rate_limited")
        resp = _login_page(request, 429, f"Too many failed sign-ins. Try again in {wait} seconds.")
        resp.headers["Retry-After"] = str(wait)
        return resp
    ttl = request.app[CONFIG].pages.session_ttl_s
    if key:
        sid = (
            await request.app[DB].write(lambda c: _key_sign_in(c, key, ttl))
            if len(key) <= 200
            else None
        )
    elif email and password:
        sid = await _password_sign_in(request, email, password, code, ttl)
    else:
        sid = None
    if sid is None:
        note_failure(request, credential)
        request.app[METRICS].rejected("unauthenticated")
        what = "API key" if key else "e-mail address, password or one-time code"
        return _login_page(request, 401, f"Unknown {what}, or the account is disabled.")
    resp = web.HTTPFound("/")
    _set_cookie(request, resp, COOKIE, sid)
    resp.del_cookie(CSRF_COOKIE, path="/")
    raise resp


async def logout(request: web.Request) -> web.Response:
    """POST only, with the sign-in's CSRF token: a link elsewhere cannot sign anyone out."""
    await checked_form(request)
    sid = request.cookies.get(COOKIE, "")
    await request.app[DB].write(lambda c: store.end_session(c, sid))
    resp = web.HTTPFound(paths.LOGIN)
    resp.del_cookie(COOKIE, path="/")
    raise resp


async def static_file(request: web.Request) -> web.Response:
    found = _STATIC.get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound(reason="no such file")
    return web.Response(
        body=found[0], content_type=found[1], headers={"Cache-Control": "public, max-age=3600"}
    )


async def _compile_templates(app: web.Application) -> None:
    """Every template compiled at start, not by the first request that renders it."""
    for name in _env.list_templates(extensions=["html"]):
        _env.get_template(name)


def setup(app: web.Application) -> None:
    """The pages' routes, and security headers on every response of the app."""
    from collector.http import (
        page_contracts,
        page_fleet,
        page_incidents,
        page_notify,
        page_reset,
        page_settings,
    )

    app.on_response_prepare.append(security_headers)
    app.on_startup.append(_compile_templates)
    app.router.add_get(paths.LOGIN, login_form)
    app.router.add_post(paths.LOGIN, login)
    app.router.add_post(paths.LOGOUT, logout)
    app.router.add_get(paths.STATIC, static_file)
    for module in (
        page_fleet,
        page_incidents,
        page_contracts,
        page_settings,
        page_notify,
        page_reset,
    ):
        module.setup(app)
