"""Who is asking: agents by per-session HMAC, partners by API key.

``auth_middleware`` authenticates every request before its handler runs, by path:

- ``/api/v1/agent/enroll`` and ``/api/v1/agent/session`` prove themselves in their body
  (a one-time token; an Ed25519 signature) and are checked by their handlers;
- every other ``/api/v1/agent/…`` request carries a session id, timestamp, nonce and
  HMAC (``protocol.request_auth``); a stale timestamp, a seen nonce, an unknown or
  expired session or a revoked server is refused before the handler runs (a handler
  that takes the nonce in its own write, :mod:`collector.http.replay`, refuses a seen
  one there, before anything of it is kept);
- every other ``/api/v1/…`` request needs ``Authorization: Bearer <API key>``: the key
  belongs to a user (a person or a partner's service account) and carries that user's
  role and organisation; :mod:`collector.accounts.roles` decides whether the role may
  make the request (403 if not), and a customer's user sees only its customer's servers
  and incidents (another's answer 404, as if they did not exist);
- ``/healthz``, ``/api/v1/openapi.json`` and the pages' own login are open; ``/metrics``
  checks its own token when one is configured.

Failed enrollments, session requests, API keys and sign-ins are counted per source
address and per credential (:mod:`collector.http.ratelimit`); past the limit those endpoints
answer 429 with ``Retry-After`` before looking at the credential.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

from aiohttp import web

from collector import secrets_store
from collector.accounts import roles, store
from collector.health import servers
from collector.health.refusals import refused
from collector.http import paths, replay
from collector.http.appkeys import CONFIG, DB, LIMITS, METRICS, NONCES, SEALER
from collector.http.errors import ApiError
from collector.http.ratelimit import credential_key, source_of
from collector.http.request_limits import Handler, read_in_time
from collector.http.session_cache import SESSIONS
from collector.storage import storage_errors
from protocol import request_auth as ra
from protocol import routes

AGENT_PREFIX = routes.AGENT_PREFIX
OPEN_AGENT_PATHS = frozenset({routes.ENROLL, routes.SESSION})
OPEN_PATHS = frozenset({routes.HEALTHZ, paths.METRICS, paths.OPENAPI})


@dataclass(frozen=True)
class AgentIdentity:
    server_id: str
    partner_id: int
    public_key: bytes
    session_id: str


@dataclass(frozen=True)
class PartnerIdentity:
    """Who asks on behalf of a partner: a user of it or of one of its customers."""

    partner_id: int
    name: str
    user_id: int = 0
    email: str = ""
    role: str = "admin"
    customer: str | None = None
    servers: frozenset[str] | None = None
    """The server ids a customer's user sees (None: all of the partner's)."""
    contracts: frozenset[str] | None = None
    """The contract ids a customer's user sees (None: all of the partner's)."""
    vendor: bool = False
    """A user of the vendor organisation: reads every partner's fleet, incidents and
    contracts (:mod:`collector.accounts.vendor`); its own objects are the vendor's."""

    def sees_server(self, server_id: str | None) -> bool:
        return self.servers is None or (server_id is not None and server_id in self.servers)

    def sees_incident(self, server_id: str | None, contract_id: str | None) -> bool:
        if self.customer is None:
            return True
        return (server_id is not None and self.sees_server(server_id)) or (
            server_id is None and contract_id is not None and contract_id in (self.contracts or ())
        )

    def sees_partner(self, partner_id: int) -> bool:
        """Are objects of ``partner_id`` this identity's to read?"""
        return self.vendor or partner_id == self.partner_id

    def reading_for(self, partner_id: int, name: str) -> PartnerIdentity:
        """The identity a vendor user reads partner ``partner_id``'s objects with (its
        own role); anyone else's identity is returned as it is."""
        if not self.vendor or partner_id == self.partner_id:
            return self
        return dataclasses.replace(self, partner_id=partner_id, name=name)

    @property
    def actor(self) -> str:
        """The name an incident's events record for this user's actions."""
        return self.email if self.user_id and not self.email.endswith(".invalid") else self.name


_AGENT = web.RequestKey("vigil.agent", AgentIdentity)
_PARTNER = web.RequestKey("vigil.partner", PartnerIdentity)
_BODY = web.RequestKey("vigil.body", bytes)
_CHUNK = web.RequestKey("vigil.chunk", bytearray)
PARTNER_NAME = web.RequestKey("vigil.partner_name", str)


def agent_of(request: web.Request) -> AgentIdentity:
    ident = request.get(_AGENT)
    if ident is None:
        raise ApiError(401, "unauthenticated", "this endpoint needs an agent session")
    return ident


def partner_of(request: web.Request) -> PartnerIdentity:
    ident = request.get(_PARTNER)
    if ident is None:
        raise ApiError(401, "unauthenticated", "this endpoint needs a partner API key")
    return ident


async def body_of(request: web.Request) -> bytes:
    """The request body (already read by the middleware for agent requests)."""
    body = request.get(_BODY)
    if body is None:
        chunk = request.get(_CHUNK)
        body = bytes(chunk) if chunk is not None else await request.read()
    return body


async def chunk_body_of(request: web.Request) -> bytes | bytearray:
    """An upload chunk's body as the middleware read it, without another copy."""
    chunk = request.get(_CHUNK)
    return chunk if chunk is not None else await body_of(request)


async def _read_chunk(request: web.Request) -> bytearray:
    """An upload chunk's body, copied once into a buffer of its declared length as it
    arrives. ``request.read()`` grows a bytearray piece by piece and copies it into bytes
    at the end: two copies of every uploaded byte, the second into memory just mapped."""
    length = request.content_length
    if length is None:  # a chunked transfer: no length to allocate up front
        return bytearray(await request.read())
    buf = bytearray(length)
    view = memoryview(buf)
    got = 0
    while piece := await request.content.readany():
        end = got + len(piece)
        if end > length:  # aiohttp's framing stops at the length: cannot happen
            raise web.HTTPBadRequest(reason="body longer than its Content-Length")
        view[got:end] = piece
        got = end
    if got != length:
        raise web.HTTPBadRequest(reason="connection closed while reading the body")
    return buf


async def owned_server(request: web.Request, server_id: str) -> servers.ServerRow:
    """The partner's server ``server_id``; 404 for anyone else's, as if it did not exist."""
    partner = partner_of(request)
    row = await request.app[DB].read(lambda c: servers.get(c, server_id))
    if row is None or not partner.sees_partner(row.partner_id) or not partner.sees_server(row.id):
        shown = server_id if len(server_id) <= 40 else server_id[:40] + "…"
        raise ApiError(404, "not_found", f"no server {shown!r}")
    return row


def limited_for(request: web.Request, credentials: tuple[str, ...] = ()) -> int | None:
    """Seconds the client must wait before trying these credentials again, or None."""
    return request.app[LIMITS].retry_after(source_of(request), credentials)


def check_limit(request: web.Request, credentials: tuple[str, ...] = ()) -> None:
    """Raise 429 ``rate_limited`` when the address or a credential has failed too often."""
    wait = limited_for(request, credentials)
    if wait is not None:
        request.app[METRICS].rejected("rate_limited")
        raise ApiError(
            429,
            "rate_limited",
            f"too many failed attempts from this address or with this credential; "
            f"retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )


def note_failure(request: web.Request, credentials: tuple[str, ...] = ()) -> None:
    """Count an authentication failure against the address and the credentials."""
    request.app[LIMITS].failed(source_of(request), credentials)


def api_key_credential(key: str) -> tuple[str, ...]:
    """The rate-limit key of an API key: its printed prefix, which revocation also uses."""
    return (credential_key("apikey", key[: len(secrets_store.APIKEY_PREFIX) + 6]),)


def _refuse(request: web.Request, status: int, code: str, message: str, who: str = "") -> ApiError:
    request.app[METRICS].rejected(code)
    if who:
        refused(request, who, code, message)
    return ApiError(status, code, message)


def _signed_headers(request: web.Request, now: float) -> tuple[str, str, str, str]:
    """(session id, timestamp, nonce, signature) of an agent request whose timestamp is
    within the clock skew allowed; else the refusal."""
    h = request.headers
    session_id = h.get(ra.H_SESSION)
    ts = h.get(ra.H_TIMESTAMP)
    nonce = h.get(ra.H_NONCE)
    sig = h.get(ra.H_SIGNATURE)
    if not (session_id and ts and nonce and sig):
        raise _refuse(
            request, 401, "unauthenticated", "agent request without session signature headers"
        )
    try:
        ts_f = float(ts)
    except ValueError:
        ts_f = math.nan
    if not math.isfinite(ts_f):  # "nan" would pass any skew comparison
        raise _refuse(request, 401, "unauthenticated", f"{ra.H_TIMESTAMP} is not a finite number")
    skew = request.app[CONFIG].max_clock_skew_s
    if abs(now - ts_f) > skew:
        raise _refuse(
            request,
            401,
            "clock_skew",
            f"request time is {now - ts_f:+.0f} s from the collector's clock (limit {skew} s): "
            "fix the server's clock (NTP)",
            who=f"session {session_id[:24]!r}",
        )
    return session_id, ts, nonce, sig


class OpenSession(NamedTuple):
    """What a known, open session of a server not revoked lets a request use."""

    key: bytes
    """The session's HMAC key, opened."""
    identity: AgentIdentity
    expires_at: float
    revoked_at: float | None


def _open_session(request: web.Request, session_id: str, now: float) -> OpenSession:
    """The session, with its HMAC key and the agent's identity, of a session that is
    known, open and of a server not revoked; else the refusal. What the database said
    is kept for ``session_cache_s`` (:mod:`collector.http.session_cache`)."""
    app = request.app
    cache = app[SESSIONS]
    found = cache.get(session_id)
    if found is None:
        found = _look_up_session(request, session_id)
        cache.put(session_id, found.identity.server_id, found, app[CONFIG].session_cache_s)
    if found.revoked_at is not None:
        raise _refuse(
            request,
            403,
            "revoked",
            "this server's credentials were revoked",
            found.identity.server_id,
        )
    if found.expires_at <= now:
        raise _refuse(request, 401, "session_expired", "session expired: open a new one")
    return found


def _look_up_session(request: web.Request, session_id: str) -> OpenSession:
    found = request.app[DB].read_now(lambda c: servers.session_with_server(c, session_id))
    if found is None:
        raise _refuse(
            request,
            401,
            "session_unknown",
            "unknown session: open a new one",
            who=f"session {session_id[:24]!r}",
        )
    session, revoked_at, public_key = found
    key = request.app[SEALER].open(session.id, session.key)
    if key is None:  # sealed by an earlier collector process: the agent opens a new one
        raise _refuse(request, 401, "session_unknown", "unknown session: open a new one")
    identity = AgentIdentity(session.server_id, session.partner_id, public_key, session.id)
    return OpenSession(key, identity, session.expires_at, revoked_at)


async def _authenticate_agent(request: web.Request) -> None:
    now = time.time()
    session_id, ts, nonce, sig = _signed_headers(request, now)
    session = _open_session(request, session_id, now)
    key = session.key
    chunk = _is_upload_chunk(request)
    body: bytes | bytearray
    try:
        body = await read_in_time(request, partial(_read_chunk, request) if chunk else request.read)
    except ConnectionResetError:
        raise web.HTTPBadRequest(reason="connection closed while reading the body") from None
    if not _signature_verifies(request, key, ts, nonce, body, sig):
        raise _refuse(
            request,
            401,
            "bad_signature",
            "request signature does not verify",
            session.identity.server_id,
        )
    if replay.takes_nonce_in_write(request):
        replay.defer(request, nonce)
    elif not await request.app[NONCES].check_and_add(nonce):
        raise _replayed(request)
    if isinstance(body, bytearray):
        request[_CHUNK] = body
    else:
        request[_BODY] = body
    request[_AGENT] = session.identity


def _replayed(request: web.Request) -> ApiError:
    return _refuse(request, 401, "replay", "request was already received (replayed nonce)")


async def _taking_nonce_in_write(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run a handler that takes the request's nonce in its own write; however it ends
    without that write, the nonce is taken after it (a replay is refused then)."""
    try:
        response = await handler(request)
    except replay.Replayed:
        raise _replayed(request) from None
    except asyncio.CancelledError:
        await asyncio.shield(replay.settle(request))
        raise
    except Exception:
        if not await replay.settle(request):
            raise _replayed(request) from None
        raise
    if not await replay.settle(request):
        raise _replayed(request)
    return response


def _is_upload_chunk(request: web.Request) -> bool:
    resource = request.match_info.route.resource
    return (
        request.method == "PUT"
        and resource is not None
        and resource.canonical == routes.BACKUP_UPLOAD
    )


def _signature_verifies(
    request: web.Request, key: bytes, ts: str, nonce: str, body: bytes | bytearray, sig: str
) -> bool:
    """The HMAC over the request. An upload chunk may be signed with
    ``BODY_IN_ENVELOPE`` for its body (the staged bytes are checked against the signed
    SHA-256 before anything is stored); tried first there, as it costs no pass over the
    body. Any request may be signed over its body's SHA-256 (older agents)."""
    method, path_qs = request.method, request.path_qs
    if _is_upload_chunk(request) and ra.verify_request(
        key, method, path_qs, ts, nonce, body, sig, body_digest=ra.BODY_IN_ENVELOPE
    ):
        return True
    return ra.verify_request(key, method, path_qs, ts, nonce, body, sig)


KEY_USE_RESOLUTION_S = 60.0
"""An API key's "last used" time is written at most this often (a read is not a write)."""


def identity_for(conn: Any, user: store.User) -> PartnerIdentity:
    """A user's identity, with its customer's servers and contracts when it has one."""
    servers_seen = contracts_seen = None
    if user.customer is not None:
        servers_seen, contracts_seen = store.customer_scope(
            conn, user.partner_id, user.partner, user.customer
        )
    return PartnerIdentity(
        user.partner_id,
        user.partner,
        user.id,
        user.email,
        user.role,
        user.customer,
        servers_seen,
        contracts_seen,
        user.vendor,
    )


def check_role(request: web.Request, identity: PartnerIdentity) -> None:
    """403 ``forbidden`` when the identity's role may not make this request."""
    if not roles.allowed(
        identity.role,
        identity.customer is not None,
        request.method,
        request.path,
        vendor=identity.vendor,
    ):
        request.app[METRICS].rejected("forbidden")
        raise ApiError(403, "forbidden", f"the {identity.role} role may not do this")


async def _authenticate_partner(request: web.Request) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise _refuse(
            request, 401, "unauthenticated", "send a partner API key: Authorization: Bearer <key>"
        )
    key = key.strip()
    credential = api_key_credential(key)
    check_limit(request, credential)

    def lookup(conn: Any) -> tuple[store.KeyOwner, PartnerIdentity] | None:
        owner = store.key_owner(conn, key)
        return None if owner is None else (owner, identity_for(conn, owner.user))

    found = request.app[DB].read_now(lookup)
    if found is None:
        note_failure(request, credential)
        raise _refuse(request, 401, "unauthenticated", "unknown or revoked API key")
    owner, identity = found
    now = time.time()
    if owner.last_used_at is None or now - owner.last_used_at >= KEY_USE_RESOLUTION_S:
        try:
            await request.app[DB].write(lambda c: store.note_key_used(c, owner.key_id, now))
        except storage_errors():  # storage trouble must not refuse a read; the time is a hint
            pass
    request[_PARTNER] = identity
    check_role(request, identity)


def set_partner(request: web.Request, identity: PartnerIdentity) -> None:
    """For the web pages, which authenticate by their own session cookie."""
    request[_PARTNER] = identity


def is_signed_agent_path(path: str) -> bool:
    """An agent's request that must carry a session signature."""
    return path.startswith(AGENT_PREFIX) and path not in OPEN_AGENT_PATHS


async def agent_request(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate an agent's signed request, then run its handler."""
    await _authenticate_agent(request)
    if replay.takes_nonce_in_write(request):
        return await _taking_nonce_in_write(request, handler)
    return await handler(request)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if path.startswith(AGENT_PREFIX):
        if path not in OPEN_AGENT_PATHS:
            return await agent_request(request, handler)
    elif path.startswith(paths.API_V1_PREFIX) and path not in OPEN_PATHS:
        await _authenticate_partner(request)
    return await handler(request)
