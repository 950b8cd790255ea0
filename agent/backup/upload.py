"""The backup upload protocol, agent side (docs/protocol.md, "backups").

I/O only: each function is one exchange with the collector through a client that has the
``CollectorClient.request`` shape. Refusals (4xx with an ``error``) raise ``UploadRefused``;
network trouble and 5xx raise ``UploadUnavailable`` (worth retrying: the upload resumes).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Protocol

BACKUPS = "/api/v1/agent/backups"
RUNS = "/api/v1/agent/backup-runs"


class Response(Protocol):
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any: ...


class BackupClient(Protocol):
    """What the backup code needs from ``agent.client.CollectorClient``."""

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        content_type: str = "application/json",
        params: dict | None = None,
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
        from agent.client import CollectorUnavailable  # the lead's client, when present

        errors.append(CollectorUnavailable)
    except ImportError:
        pass
    return tuple(errors)


TRANSIENT = _transient_errors()


def _refusals() -> tuple[type[BaseException], ...]:
    try:
        from agent.client import Refused  # the lead's client: 4xx while opening a session

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
) -> tuple[int, dict]:
    try:
        resp = await client.request(method, path, body, content_type, params)
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


async def start(client: BackupClient, envelope: bytes) -> dict:
    """POST the signed envelope: a new or resumed upload (full) or the stored record
    (unchanged)."""
    _, data = await call(client, "POST", BACKUPS, envelope)
    return data


async def put_chunk(client: BackupClient, upload_id: str, offset: int, data: bytes) -> int:
    """Send bytes at ``offset``; returns the collector's new offset. An ``offset_mismatch``
    answer returns the collector's current offset instead (the caller continues there)."""
    try:
        _, reply = await call(
            client,
            "PUT",
            f"{BACKUPS}/uploads/{upload_id}",
            data,
            "application/octet-stream",
            {"offset": str(offset)},
        )
    except UploadRefused as exc:
        if exc.status == 409 and exc.error == "offset_mismatch" and "offset" in exc.body:
            return int(exc.body["offset"])
        raise
    return int(reply["offset"])


async def upload_offset(client: BackupClient, upload_id: str) -> int:
    _, data = await call(client, "GET", f"{BACKUPS}/uploads/{upload_id}")
    return int(data["offset"])


async def complete(client: BackupClient, upload_id: str, final_envelope: bytes = b"") -> dict:
    """Finish an upload; a streamed one sends its final signed envelope."""
    _, data = await call(client, "POST", f"{BACKUPS}/uploads/{upload_id}/complete", final_envelope)
    return data


async def report_run(client: BackupClient, record: bytes) -> None:
    await call(client, "POST", RUNS, record)
