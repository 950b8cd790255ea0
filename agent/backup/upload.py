"""The backup upload protocol, agent side (docs/protocol.md, "backups").

I/O only: each function is one exchange with the collector through a client that has the
``CollectorClient.request`` shape. Refusals (4xx with an ``error``) raise ``UploadRefused``;
network trouble and 5xx raise ``UploadUnavailable`` (worth retrying: the upload resumes).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

import msgspec

from protocol import request_auth as ra
from protocol import routes
from protocol.backup_messages import (
    BackupStored,
    ChunkAccepted,
    Reply,
    UnchangedStored,
    UploadOpened,
    UploadState,
)

R = TypeVar("R", bound=Reply)


class Response(Protocol):
    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def body(self) -> bytes: ...

    def json(self) -> Any: ...


class BackupClient(Protocol):
    """What the backup code needs from ``agent.client.CollectorClient``."""

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        content_type: str = "application/json",
        params: dict[str, Any] | None = None,
        body_digest: str | None = None,
    ) -> Response: ...


class UploadRefused(Exception):
    """The collector said no (4xx): ``error`` is its machine-readable reason."""

    def __init__(self, status: int, error: str, message: str, body: dict | None = None) -> None:
        self.status = status
        self.error = error
        self.message = message
        self.body = body or {}
        super().__init__(f"collector refused ({status} {error}): {message}")


class UploadUnavailable(Exception):
    """The collector could not be reached or failed (5xx); retrying may succeed."""


def _transient_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, TimeoutError]
    try:
        import aiohttp

        errors.append(aiohttp.ClientError)
    except ImportError:  # pragma: no cover - aiohttp is a dependency
        pass
    try:
        from agent.client import CollectorUnavailable  # the daemon's client, when present

        errors.append(CollectorUnavailable)
    except ImportError:
        pass
    return tuple(errors)


TRANSIENT = _transient_errors()


def _refusals() -> tuple[type[BaseException], ...]:
    try:
        from agent.client import Refused  # the daemon's client: 4xx while opening a session

        return (Refused,)
    except ImportError:
        return ()


REFUSED = _refusals()


async def _json(resp: Response) -> dict:
    try:
        data = resp.json()
        if inspect.isawaitable(data):
            data = await data
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


async def call(
    client: BackupClient,
    method: str,
    path: str,
    body: bytes = b"",
    content_type: str = "application/json",
    params: dict | None = None,
    ok: tuple[int, ...] = (200, 201),
    body_digest: str | None = None,
) -> tuple[int, dict]:
    try:
        if body_digest is None:
            resp = await client.request(method, path, body, content_type, params)
        else:
            resp = await client.request(
                method, path, body, content_type, params, body_digest=body_digest
            )
    except TRANSIENT as exc:
        raise UploadUnavailable(f"{method} {path}: {exc or type(exc).__name__}") from exc
    except REFUSED as exc:  # the client's own refusal (e.g. opening a session was refused)
        raise UploadRefused(
            int(getattr(exc, "status", 0)),
            str(getattr(exc, "code", "refused")),
            str(getattr(exc, "message", exc)),
        ) from exc
    data = await _json(resp)
    if resp.status in ok:
        return resp.status, data
    if resp.status >= 500 or resp.status == 429:
        raise UploadUnavailable(f"{method} {path}: HTTP {resp.status}")
    raise UploadRefused(
        resp.status,
        str(data.get("error", f"http_{resp.status}")),
        str(data.get("message", "")),
        data,
    )


def _reply(data: dict, type_: type[R]) -> R:
    """A reply as its message type (``msgspec.ValidationError`` when it is not one)."""
    return msgspec.convert(data, type_, strict=False)


async def start_upload(client: BackupClient, envelope: bytes) -> UploadOpened:
    """POST a full backup's signed envelope: a new or resumed upload."""
    _, data = await call(client, "POST", routes.BACKUPS, envelope)
    return _reply(data, UploadOpened)


async def record_unchanged(client: BackupClient, envelope: bytes) -> UnchangedStored:
    """POST an ``unchanged`` envelope: the collector stores the record."""
    _, data = await call(client, "POST", routes.BACKUPS, envelope)
    return _reply(data, UnchangedStored)


async def put_chunk(
    client: BackupClient,
    upload_id: str,
    offset: int,
    data: bytes | bytearray | memoryview,
    body_bound: bool = False,
) -> int:
    """Send bytes at ``offset``; returns the collector's new offset. An ``offset_mismatch``
    answer returns the collector's current offset instead (the caller continues there).
    ``body_bound``: the collector said ``chunk_body_bound`` (the HMAC leaves out the body's
    hash, ``request_auth.BODY_IN_ENVELOPE``)."""
    try:
        _, reply = await call(
            client,
            "PUT",
            routes.BACKUP_UPLOAD.format(upload_id=upload_id),
            data,  # type: ignore[arg-type]  # aiohttp sends any bytes-like body
            "application/octet-stream",
            {"offset": str(offset)},
            body_digest=ra.BODY_IN_ENVELOPE if body_bound else None,
        )
    except UploadRefused as exc:
        if exc.status == 409 and exc.error == "offset_mismatch" and "offset" in exc.body:
            return int(exc.body["offset"])
        raise
    return _reply(reply, ChunkAccepted).offset


async def upload_offset(client: BackupClient, upload_id: str) -> int:
    _, data = await call(client, "GET", routes.BACKUP_UPLOAD.format(upload_id=upload_id))
    return _reply(data, UploadState).offset


async def complete(
    client: BackupClient, upload_id: str, final_envelope: bytes = b""
) -> BackupStored:
    """Finish an upload; a streamed one sends its final signed envelope."""
    path = routes.BACKUP_UPLOAD_COMPLETE.format(upload_id=upload_id)
    _, data = await call(client, "POST", path, final_envelope)
    return _reply(data, BackupStored)


async def report_run(client: BackupClient, record: bytes) -> None:
    await call(client, "POST", routes.BACKUP_RUNS, record)
