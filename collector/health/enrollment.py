"""Enrollment (one-time token → per-agent key) and sessions (signed → HMAC key)."""

from __future__ import annotations

import functools
import logging
import sqlite3
import time

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from collector import secrets_store
from collector.accounts import partners
from collector.health import servers
from collector.health.agent_settings import settings_for
from collector.health.refusals import clear_offset, note_offset, refused
from collector.http import openapi
from collector.http.appkeys import CONFIG, DB, METRICS, NONCES, SEALER
from collector.http.auth import check_limit, note_failure
from collector.http.bodies import parse
from collector.http.errors import ApiError
from collector.http.ratelimit import credential_key, source_of
from collector.http.session_cache import SESSIONS
from protocol import limits, routes
from protocol import request_auth as ra
from protocol.messages import EnrollRequest, EnrollResponse, SessionRequest, SessionResponse, encode
from protocol.version import PROTOCOL_VERSION

log = logging.getLogger("vigil.collector.enrollment")


def _public_key(text: str, field: str) -> bytes:
    try:
        raw = ra.unb64(text)
        if len(raw) != 32:
            raise ValueError
    except ValueError:
        raise ApiError(
            400, "invalid_field", "expected a raw 32-byte key in base64", field=field
        ) from None
    return raw


@openapi.documented(
    openapi.operation(
        "Enroll an agent with a one-time token",
        body="EnrollRequest",
        response="EnrollResponse",
        auth=None,
    )
)
async def post_enroll(request: web.Request) -> web.Response:
    req = parse(await request.read(), EnrollRequest, limits.MAX_ENROLL_BYTES)
    credential = (credential_key("enroll", req.token),)
    check_limit(request, credential)
    public_key = _ed25519_key(req.public_key)
    now = time.time()
    write = functools.partial(_register, req=req, public_key=public_key, now=now)
    try:
        enrolled, partner = await request.app[DB].write(write)
    except secrets_store.TokenRefused as exc:
        note_failure(request, credential)
        request.app[METRICS].rejected("enrollment_token")
        raise ApiError(403, "token_refused", exc.reason) from None
    except servers.ReenrollRefused as exc:
        request.app[METRICS].rejected("reenroll_refused")
        log.warning(
            "refused re-enrollment of %s (machine %r) from %s: no consent%s",
            exc.server_id,
            req.machine_id,
            source_of(request),
            " (server revoked)" if exc.revoked else "",
        )
        raise ApiError(409, "already_enrolled", _reenroll_message(exc)) from None
    server_id = enrolled.server_id
    if enrolled.reenrolled:
        request.app[SESSIONS].forget_server(server_id)  # its sessions were ended
        log.warning(
            "server %s re-enrolled with a new key (machine %r, from %s, consent by %s)",
            server_id,
            req.machine_id,
            source_of(request),
            "the token" if enrolled.consent == "token" else "server allow-reenroll",
        )
    request.app[METRICS].enrollments.inc()
    settings = await settings_for(request.app, server_id, fresh=True)
    resp = EnrollResponse(
        protocol=PROTOCOL_VERSION, server_id=server_id, partner=partner, settings=settings
    )
    return web.Response(status=201, body=encode(resp), content_type="application/json")


def _ed25519_key(text: str) -> bytes:
    public_key = _public_key(text, "$.public_key")
    try:
        Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError:
        raise ApiError(
            400, "invalid_field", "not an Ed25519 public key", field="$.public_key"
        ) from None
    return public_key


def _register(
    conn: sqlite3.Connection, *, req: EnrollRequest, public_key: bytes, now: float
) -> tuple[servers.Enrolled, str]:
    """Spend the token and register (or re-key) the server; its partner's name."""
    grant = secrets_store.consume_token(conn, req.token, now)
    partner_id = grant.partner_id
    enrolled = servers.register(
        conn,
        partner_id,
        hostname=req.hostname,
        machine_id=req.machine_id,
        licence_id=req.licence_id,
        public_key=public_key,
        agent_version=req.agent_version,
        os=req.os,
        now=now,
        token_allows_reenroll=grant.allow_reenroll,
    )
    name = partners.name_of(conn, partner_id)
    assert name is not None  # the token named it in this transaction
    return enrolled, name


def _reenroll_message(exc: servers.ReenrollRefused) -> str:
    if exc.revoked:
        return (
            f"this machine was enrolled as server {exc.server_id}, which is revoked and stays "
            "revoked; to enroll the machine again as a new server, the operator makes a token "
            "with 'vigil-collector token create --partner P --allow-reenroll'"
        )
    return (
        f"this machine is already enrolled as server {exc.server_id}; re-enrolling it replaces "
        f"its key and needs the operator's consent: 'vigil-collector server allow-reenroll "
        f"{exc.server_id}', or a token made with 'vigil-collector token create --partner P "
        "--allow-reenroll'"
    )


def _shown(server_id: str) -> str:
    return repr(server_id if len(server_id) <= 40 else server_id[:40] + "…")


async def _note_skew(request: web.Request, server_id: str, body: bytes, offset: float) -> None:
    """Log a session refused for a stale clock; remember the offset for the partner only
    when the request is really the server's (its signature verifies)."""
    server = await request.app[DB].read(lambda c: servers.get(c, server_id))
    verified = False
    if server is not None and server.revoked_at is None:
        try:
            Ed25519PublicKey.from_public_bytes(server.public_key).verify(
                ra.unb64(request.headers.get(ra.H_SIGNATURE, "")), ra.session_signing_bytes(body)
            )
            verified = True
        except (InvalidSignature, ValueError):
            pass
    if verified:
        note_offset(request.app, server_id, offset)
    who = server_id if verified else _shown(server_id) + " (unverified)"
    refused(request, who, "clock_skew", f"its clock is {offset:+.0f} s from the collector's")


@openapi.documented(
    openapi.operation(
        "Open a session (Ed25519-signed body)",
        body="SessionRequest",
        response="SessionResponse",
        auth=None,
    )
)
async def post_session(request: web.Request) -> web.Response:
    body = await request.read()
    req = parse(body, SessionRequest, limits.MAX_ENROLL_BYTES)
    metrics = request.app[METRICS]
    cfg = request.app[CONFIG]
    credential = (credential_key("session", req.server_id),)
    check_limit(request, credential)
    now = time.time()
    if abs(now - req.timestamp) > cfg.max_clock_skew_s:
        metrics.rejected("clock_skew")
        await _note_skew(request, req.server_id, body, req.timestamp - now)
        raise ApiError(
            401,
            "clock_skew",
            f"agent clock is {req.timestamp - now:+.0f} s from the collector's (limit "
            f"{cfg.max_clock_skew_s} s): fix the server's clock (NTP)",
        )
    server = await request.app[DB].read(lambda c: servers.get(c, req.server_id))
    if server is None:
        note_failure(request, credential)
        metrics.rejected("unknown_server")
        refused(request, _shown(req.server_id), "unknown_server", "no enrolled server with this id")
        raise ApiError(401, "unknown_server", "no enrolled server with this id: enroll again")
    if server.revoked_at is not None:
        metrics.rejected("revoked")
        refused(request, server.id, "revoked", "its credentials were revoked")
        raise ApiError(403, "revoked", "this server's credentials were revoked")
    sig = request.headers.get(ra.H_SIGNATURE, "")
    try:
        Ed25519PublicKey.from_public_bytes(server.public_key).verify(
            ra.unb64(sig), ra.session_signing_bytes(body)
        )
    except (InvalidSignature, ValueError):
        note_failure(request, credential)
        metrics.rejected("bad_signature")
        refused(request, server.id, "bad_signature", "session request signature does not verify")
        raise ApiError(401, "bad_signature", "session request signature does not verify") from None
    if not await request.app[NONCES].check_and_add("s:" + req.nonce):
        metrics.rejected("replay")
        raise ApiError(401, "replay", "session request was already received (replayed nonce)")
    peer = _public_key(req.ephemeral_key, "$.ephemeral_key")
    own = X25519PrivateKey.generate()
    session_id = servers.new_session_id()
    key = ra.derive_session_key(own, peer, session_id, server.id)
    sealed = request.app[SEALER].seal(session_id, key)
    session = servers.Session(
        session_id, server.id, server.partner_id, sealed, now + cfg.session_ttl_s
    )
    await request.app[DB].write(lambda c: servers.store_session(c, session, now))
    clear_offset(request.app, server.id)
    settings = await settings_for(request.app, server.id, fresh=True)
    resp = SessionResponse(
        protocol=PROTOCOL_VERSION,
        session_id=session_id,
        ephemeral_key=ra.b64(own.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)),
        expires_at=session.expires_at,
        server_time=time.time(),
        settings=settings,
    )
    return web.Response(status=201, body=encode(resp), content_type="application/json")


def setup_routes(app: web.Application) -> None:
    app.router.add_post(routes.ENROLL, post_enroll)
    app.router.add_post(routes.SESSION, post_session)
