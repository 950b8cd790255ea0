"""A minimal RTSP server: answers OPTIONS and DESCRIBE (with Digest), enough for a health
probe. It never streams media."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sim import digest

if TYPE_CHECKING:
    from sim.fleet import SimulatedCamera

MAX_HEADER = 16 * 1024


def sdp_for(camera: SimulatedCamera) -> bytes:
    ident = camera.identity
    return (
        "v=0\r\n"
        f"o=- {camera.index + 1} 1 IN IP4 {camera.host}\r\n"
        f"s={ident.manufacturer} {ident.model}\r\n"
        "t=0 0\r\n"
        "a=control:*\r\n"
        f"m=video 0 RTP/AVP 96\r\na=rtpmap:96 {ident.encoding}/90000\r\n"
        f"a=framerate:{ident.fps:g}\r\na=control:trackID=1\r\n"
    ).encode()


def make_handler(
    camera: SimulatedCamera,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonces: set[str] = set()
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, _, rest = lines[0].partition(" ")
                uri = rest.rsplit(" ", 1)[0]
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    key, sep, value = line.partition(":")
                    if sep:
                        headers[key.strip().lower()] = value.strip()
                cseq = headers.get("cseq", "0")
                camera.requests[f"RTSP {method}"] += 1
                if camera.faults.slow_s:
                    await asyncio.sleep(camera.faults.slow_s)
                extra = ""
                body = b""
                if method == "OPTIONS":
                    status, extra = "200 OK", "Public: OPTIONS, DESCRIBE\r\n"
                elif method != "DESCRIBE":
                    status = "405 Method Not Allowed"
                elif camera.faults.stream_down:
                    status = "503 Service Unavailable"
                elif not digest.verify(
                    headers.get("authorization"),
                    "DESCRIBE",
                    camera.username,
                    camera.real_password,
                    camera.realm,
                    nonces,
                ):
                    nonce, value = digest.challenge(camera.realm, qop=False)
                    nonces.add(nonce)
                    status, extra = "401 Unauthorized", f"WWW-Authenticate: {value}\r\n"
                elif not uri.startswith(camera.rtsp_base):
                    status = "404 Not Found"
                else:
                    status = "200 OK"
                    body = sdp_for(camera)
                    extra = f"Content-Type: application/sdp\r\nContent-Base: {uri}/\r\n"
                writer.write(
                    f"RTSP/1.0 {status}\r\nCSeq: {cseq}\r\nServer: vigil-sim\r\n{extra}"
                    f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (ConnectionError, OSError):
            return
        finally:
            writer.close()

    return handle
