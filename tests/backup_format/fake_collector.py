"""A fake collector for the backup tests: a real aiohttp server on 127.0.0.1 (port 0), in
its own thread, speaking the backup upload protocol and the partner endpoints.

Agent calls carry ``X-Server-Id`` instead of the real session authentication (the lead's
middleware); everything else follows the protocol: signature, sequence, size limit, resume,
hash check on complete. Fault knobs: ``drop_after`` (close the connection mid-chunk once the
upload has this many bytes), ``refuse`` (answer POST /backups with this error).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from protocol import backup_envelope

CHUNK = 1 << 20


@dataclass
class Upload:
    id: str
    server: str
    header: backup_envelope.BackupHeader
    envelope: bytes
    data: bytearray = field(default_factory=bytearray)


@dataclass
class Stored:
    id: str
    server: str
    header: backup_envelope.BackupHeader
    envelope: bytes
    obj: bytes | None
    stored_at: float

    def listing(self) -> dict[str, Any]:
        h = self.header
        return {
            "id": self.id,
            "seq": h.seq,
            "kind": h.kind,
            "created_at": h.created_at,
            "stored_at": self.stored_at,
            "size": h.ciphertext_size,
            "ciphertext_sha256": h.ciphertext_sha256,
            "base_seq": h.base_seq,
            "verified_at": self.stored_at,
            "status": "stored" if h.kind == "full" else "unchanged",
        }


def _err(status: int, error: str, message: str = "", **extra: Any) -> web.Response:
    return web.json_response({"error": error, "message": message, **extra}, status=status)


class FakeCollector:
    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}
        self.api_key = "partner-key"
        self.uploads: dict[str, Upload] = {}
        self.backups: list[Stored] = []
        self.last_seq: dict[str, int] = {}
        self.runs: list[dict[str, Any]] = []
        self.puts: list[tuple[int, int]] = []
        """(offset, bytes kept) for every PUT received."""
        self.drop_after: int | None = None
        self.refuse_final = False
        self.unavailable_completes = 0
        self.streamed: list[str] = []
        self.last_seq_hint = False
        """Name the last accepted seq in a sequence_replay refusal (a suggested addition)."""
        self.stall_after_puts: int | None = None
        """Hold every PUT after this many until the knob is cleared (to kill the agent)."""
        self.refuse: tuple[int, str, str] | None = None
        self.max_size = 4 << 30
        self.chunk_size = CHUNK
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> FakeCollector:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._serve())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    async def _serve(self) -> None:
        app = web.Application(client_max_size=64 << 20)
        r = app.router
        r.add_post("/api/v1/agent/backups", self.h_start)
        r.add_put("/api/v1/agent/backups/uploads/{uid}", self.h_put)
        r.add_get("/api/v1/agent/backups/uploads/{uid}", self.h_status)
        r.add_post("/api/v1/agent/backups/uploads/{uid}/complete", self.h_complete)
        r.add_post("/api/v1/agent/backup-runs", self.h_runs)
        r.add_get("/api/v1/servers/{sid}/backups", self.p_list)
        r.add_get("/api/v1/servers/{sid}/backups/{bid}/envelope", self.p_envelope)
        r.add_get("/api/v1/servers/{sid}/backups/{bid}/object", self.p_object)
        r.add_get("/api/v1/servers/{sid}/public-key", self.p_key)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.stall_after_puts = None
        if self._loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)  # type: ignore[union-attr]
        fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)  # type: ignore[union-attr]

    # --- agent side ----------------------------------------------------------------------

    async def h_start(self, request: web.Request) -> web.Response:
        server = request.headers["X-Server-Id"]
        body = await request.read()
        if self.refuse:
            status, error, message = self.refuse
            return _err(status, error, message)
        try:
            env = backup_envelope.decode(body)
            header = backup_envelope.verify(env, self.keys[server])
        except (backup_envelope.EnvelopeError, KeyError) as exc:
            return _err(400, "envelope_invalid", str(exc))
        if header.server_id != server:
            return _err(400, "envelope_invalid", "server_id is not the caller's")
        if header.kind == "full":
            for up in self.uploads.values():
                if up.server == server and up.header.seq == header.seq and up.header == header:
                    return web.json_response(
                        {"upload_id": up.id, "offset": len(up.data), "chunk_size": self.chunk_size}
                    )
        if header.seq <= self.last_seq.get(server, 0):
            extra = {"last_seq": self.last_seq[server]} if self.last_seq_hint else {}
            return _err(409, "sequence_replay", f"seq {header.seq} already used", **extra)
        if header.kind == "unchanged":
            base = [
                b
                for b in self.backups
                if b.server == server
                and b.header.seq == header.base_seq
                and b.header.kind == "full"
            ]
            if not base:
                return _err(400, "envelope_invalid", "base_seq is not a stored backup")
            st = Stored(uuid.uuid4().hex, server, header, body, None, time.time())
            self.backups.append(st)
            self.last_seq[server] = header.seq
            return web.json_response({"backup_id": st.id, "status": "unchanged"}, status=201)
        if (header.ciphertext_size or 0) > self.max_size:
            return _err(413, "too_large", "ciphertext_size above the limit")
        up = Upload(uuid.uuid4().hex, server, header, body)
        self.uploads[up.id] = up
        return web.json_response(
            {"upload_id": up.id, "offset": 0, "chunk_size": self.chunk_size}, status=201
        )

    async def h_put(self, request: web.Request) -> web.StreamResponse:
        up = self.uploads.get(request.match_info["uid"])
        if up is None:
            return _err(404, "not_found")
        offset = int(request.query["offset"])
        # polled: the knob is set from the test thread, not from this event loop
        while self.stall_after_puts is not None and len(self.puts) >= self.stall_after_puts:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        body = await request.read()
        if offset != len(up.data):
            return _err(409, "offset_mismatch", "", offset=len(up.data))
        if self.drop_after is not None and offset + len(body) > self.drop_after:
            keep = max(0, self.drop_after - offset)
            up.data += body[:keep]
            self.puts.append((offset, keep))
            self.drop_after = None
            assert request.transport is not None
            request.transport.close()  # the connection dies mid-chunk
            return web.Response(status=500)
        up.data += body
        self.puts.append((offset, len(body)))
        return web.json_response({"offset": len(up.data)})

    async def h_status(self, request: web.Request) -> web.Response:
        up = self.uploads.get(request.match_info["uid"])
        if up is None:
            return _err(404, "not_found")
        return web.json_response({"offset": len(up.data), "size": up.header.ciphertext_size})

    async def h_complete(self, request: web.Request) -> web.Response:
        up = self.uploads.get(request.match_info["uid"])
        if up is None:
            return _err(404, "not_found")
        if self.unavailable_completes > 0:
            self.unavailable_completes -= 1
            return _err(503, "storage_unavailable", "try again")
        if up.header.ciphertext_sha256 is None:  # streamed: the final envelope is the body
            body = await request.read()
            if self.refuse_final:
                return _err(400, "envelope_invalid", "refused by the test")
            try:
                final = backup_envelope.decode(body)
                header = backup_envelope.verify(final, self.keys[up.server])
            except (backup_envelope.EnvelopeError, KeyError) as exc:
                return _err(400, "envelope_invalid", str(exc))
            if (header.seq, header.created_at) != (up.header.seq, up.header.created_at):
                return _err(400, "envelope_invalid", "final header differs")
            up.header, up.envelope = header, body
            self.streamed.append(up.id)
        del self.uploads[up.id]
        if len(up.data) != up.header.ciphertext_size:
            return _err(422, "size_mismatch")
        if hashlib.sha256(up.data).hexdigest() != up.header.ciphertext_sha256:
            return _err(422, "hash_mismatch")
        st = Stored(
            uuid.uuid4().hex, up.server, up.header, up.envelope, bytes(up.data), time.time()
        )
        self.backups.append(st)
        self.last_seq[up.server] = max(self.last_seq.get(up.server, 0), up.header.seq)
        return web.json_response({"backup_id": st.id, "seq": up.header.seq}, status=201)

    async def h_runs(self, request: web.Request) -> web.Response:
        self.runs.append(await request.json())
        return web.json_response({}, status=201)

    # --- partner side --------------------------------------------------------------------

    def _partner(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            raise web.HTTPUnauthorized()
        if request.match_info["sid"] not in self.keys:
            raise web.HTTPNotFound()

    def _find(self, request: web.Request) -> Stored:
        self._partner(request)
        for b in self.backups:
            if b.id == request.match_info["bid"] and b.server == request.match_info["sid"]:
                return b
        raise web.HTTPNotFound()

    async def p_list(self, request: web.Request) -> web.Response:
        self._partner(request)
        sid = request.match_info["sid"]
        return web.json_response(
            {"backups": [b.listing() for b in self.backups if b.server == sid]}
        )

    async def p_envelope(self, request: web.Request) -> web.Response:
        return web.Response(body=self._find(request).envelope, content_type="application/json")

    async def p_object(self, request: web.Request) -> web.StreamResponse:
        b = self._find(request)
        if b.obj is None:
            raise web.HTTPNotFound()
        resp = web.StreamResponse()
        resp.content_type = "application/octet-stream"
        await resp.prepare(request)
        for i in range(0, len(b.obj), 256 << 10):
            await resp.write(b.obj[i : i + 256 << 10])
        await resp.write_eof()
        return resp

    async def p_key(self, request: web.Request) -> web.Response:
        self._partner(request)
        key = self.keys[request.match_info["sid"]]
        return web.json_response({"public_key": base64.b64encode(key).decode()})


class Resp:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        import json

        return json.loads(self.body or b"null")


class AgentClient:
    """The ``CollectorClient.request`` shape over plain aiohttp, with ``X-Server-Id``.

    ``fail_after_puts``: raise a connection error (as ``CollectorUnavailable`` would)
    on every PUT after this many, to stop a run mid-upload like a killed agent."""

    def __init__(self, url: str, server_id: str) -> None:
        self.url = url
        self.server_id = server_id
        self.fail_after_puts: int | None = None
        self.puts = 0

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        content_type: str = "application/json",
        params: dict | None = None,
    ) -> Resp:
        if method == "PUT":
            if self.fail_after_puts is not None and self.puts >= self.fail_after_puts:
                raise aiohttp.ClientConnectionError("agent killed (simulated)")
            self.puts += 1
        async with aiohttp.ClientSession() as s:
            async with s.request(
                method,
                self.url + path,
                data=body,
                params=params,
                headers={"Content-Type": content_type, "X-Server-Id": self.server_id},
            ) as r:
                return Resp(r.status, dict(r.headers), await r.read())
