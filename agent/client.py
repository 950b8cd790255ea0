"""Talking to the collector: enrollment, sessions, and signed requests.

``CollectorClient.request`` signs every request with the current session key and opens
(or reopens) the session when the collector says it is unknown or expired. Network
failures raise :class:`CollectorUnavailable`; deciding when to retry is the caller's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from multidict import CIMultiDictProxy

from agent.agent_key import AgentKey, EphemeralX25519
from agent.collector_url import explain_connection_error
from protocol import request_auth as ra
from protocol import routes
from protocol.messages import (
    AgentSettings,
    EnrollRequest,
    EnrollResponse,
    SessionRequest,
    SessionResponse,
    decode,
    encode,
)
from protocol.version import HEADER, PROTOCOL_VERSION

log = logging.getLogger("vigil.agent.client")

DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)
SEND_SLICE = 1 << 20
"""A body larger than this goes to the socket a slice of this size at a time."""


class CollectorUnavailable(Exception):
    """The collector could not be reached, or answered 5xx/429."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Refused(Exception):
    """The collector refused the request for good (4xx); ``code`` is its error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class Revoked(Refused):
    pass


@dataclass
class Response:
    status: int
    headers: CIMultiDictProxy[str] | dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def error(self) -> tuple[str, str]:
        try:
            data = self.json()
            return str(data.get("error", "")), str(data.get("message", ""))
        except (ValueError, AttributeError):
            return "", self.body[:200].decode(errors="replace")


def retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


async def _post_json(
    http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> Response:
    try:
        async with http.post(url, data=body, headers=headers) as r:
            return Response(r.status, r.headers, await r.read())
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        hint = explain_connection_error(url, exc)
        raise CollectorUnavailable(
            hint or f"cannot reach {url}: {exc or type(exc).__name__}"
        ) from None


async def enroll(
    collector_url: str, request: EnrollRequest, proxy: str | None = None
) -> EnrollResponse:
    """Register this agent with a one-time token (no session yet), through ``proxy`` when
    one is configured for the collector link."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30), proxy=proxy) as http:
        r = await _post_json(
            http,
            collector_url.rstrip("/") + routes.ENROLL,
            encode(request),
            {"Content-Type": "application/json", HEADER: str(PROTOCOL_VERSION)},
        )
    if r.status != 201:
        code, msg = r.error()
        raise Refused(r.status, code, msg)
    return decode(r.body, EnrollResponse)


@dataclass
class _Session:
    id: str
    key: bytes
    expires_at: float


@dataclass
class CollectorClient:
    base_url: str
    server_id: str
    signing_key: AgentKey
    on_settings: Callable[[AgentSettings], None] | None = None
    timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT
    clock_offset: float | None = None
    """Collector time minus ours, as seen when the last session opened."""
    proxy: str | None = None
    """``[collector] proxy``: an HTTP(S) proxy for this link only (cameras stay direct;
    the environment's ``HTTP_PROXY`` is not used)."""
    _http: aiohttp.ClientSession | None = field(default=None, repr=False)
    _session: _Session | None = field(default=None, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")

    async def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=self.timeout, proxy=self.proxy)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def open_session(self) -> None:
        """Sign a session request with the agent key; derive the session key (X25519)."""
        eph = EphemeralX25519()
        req = SessionRequest(
            protocol=PROTOCOL_VERSION,
            server_id=self.server_id,
            timestamp=time.time(),
            nonce=ra.new_nonce(),
            ephemeral_key=ra.b64(eph.public_bytes_raw()),
        )
        body = encode(req)
        sig = ra.b64(self.signing_key.sign(ra.session_signing_bytes(body)))
        sent = time.time()
        r = await _post_json(
            await self._client(),
            self.base_url + routes.SESSION,
            body,
            {
                "Content-Type": "application/json",
                HEADER: str(PROTOCOL_VERSION),
                ra.H_SIGNATURE: sig,
            },
        )
        if r.status != 201:
            self._raise(r)
        resp = decode(r.body, SessionResponse)
        shared = eph.exchange(ra.unb64(resp.ephemeral_key))
        key = ra.session_key(shared, resp.session_id, self.server_id)
        self._session = _Session(resp.session_id, key, resp.expires_at)
        self.clock_offset = resp.server_time - (sent + time.time()) / 2
        if self.on_settings is not None:
            self.on_settings(resp.settings)

    def _raise(self, r: Response) -> None:
        code, msg = r.error()
        if r.status in (429, 503) or r.status >= 500:
            raise CollectorUnavailable(
                f"collector answered {r.status} {code}: {msg}", retry_after(r.headers)
            )
        if r.status == 403 and code == "revoked":
            raise Revoked(r.status, code, msg)
        raise Refused(r.status, code, msg)

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        content_type: str = "application/json",
        params: dict[str, Any] | None = None,
        body_digest: str | None = None,
    ) -> Response:
        """A signed request. Returns any response but 401-session (handled) and network
        errors (raised); callers look at ``status``. ``body_digest`` stands for the body's
        SHA-256 in the signature (``request_auth.BODY_IN_ENVELOPE`` for upload chunks)."""
        path_qs = path + ("?" + urlencode(params) if params else "")
        for attempt in (1, 2):
            async with self._lock:
                if self._session is None or self._session.expires_at - time.time() < 60:
                    await self.open_session()
                session = self._session
            assert session is not None
            ts = f"{time.time():.3f}"
            nonce = ra.new_nonce()
            headers = {
                "Content-Type": content_type,
                HEADER: str(PROTOCOL_VERSION),
                ra.H_SESSION: session.id,
                ra.H_TIMESTAMP: ts,
                ra.H_NONCE: nonce,
                ra.H_SIGNATURE: ra.sign_request(
                    session.key, method, path_qs, ts, nonce, body, body_digest
                ),
            }
            http = await self._client()
            data = _SlicedBody(body) if len(body) > SEND_SLICE else body
            try:
                async with http.request(
                    method, self.base_url + path_qs, data=data, headers=headers
                ) as r:
                    resp = Response(r.status, r.headers, await r.read())
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                raise CollectorUnavailable(
                    f"cannot reach {self.base_url}: {exc or type(exc).__name__}"
                ) from None
            if (
                resp.status == 401
                and resp.error()[0] in ("session_unknown", "session_expired")
                and attempt == 1
            ):
                self._session = None
                continue
            if resp.status == 403 and resp.error()[0] == "revoked":
                raise Revoked(403, "revoked", resp.error()[1])
            return resp
        return resp

    async def health(self) -> tuple[float, float]:
        """``GET /healthz``: (round-trip seconds, collector time minus ours)."""
        http = await self._client()
        began = time.time()
        try:
            async with http.get(self.base_url + routes.HEALTHZ) as r:
                data = await r.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            raise CollectorUnavailable(
                f"cannot reach {self.base_url}: {exc or type(exc).__name__}"
            ) from None
        end = time.time()
        return end - began, float(data.get("time", end)) - (began + end) / 2


class _SlicedBody(aiohttp.payload.BytesPayload):
    """A large body (a backup chunk) written to the connection a slice at a time.

    Written whole, the HTTP client joins it with the headers into one new bytes object
    (Python 3.11's transports take no list of buffers), and what the socket does not take
    at once is copied again into the transport's buffer: two copies of every 8 MiB chunk
    in the event loop's thread, each holding the GIL the backup's own thread waits for.
    A slice at a time, only the first is joined with the headers and the socket takes
    most of each of the others straight from the caller's buffer."""

    async def write(self, writer: aiohttp.abc.AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: aiohttp.abc.AbstractStreamWriter, content_length: int | None
    ) -> None:
        view = memoryview(self._value).cast("B")
        end = len(view) if content_length is None else min(content_length, len(view))
        for at in range(0, end, SEND_SLICE):
            await writer.write(view[at : min(at + SEND_SLICE, end)])
