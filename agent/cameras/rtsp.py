"""RTSP DESCRIBE, the read-only question "does this stream answer?".

Sends DESCRIBE, answers a Digest (or Basic) challenge with the camera's credentials, and
expects ``200`` with an SDP body. It never sends SETUP or PLAY: no media flows.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024


@dataclass
class DescribeResult:
    status: int
    reason: str
    content_type: str = ""
    sdp: str = ""

    @property
    def ok(self) -> bool:
        return (
            self.status == 200
            and self.content_type.startswith("application/sdp")
            and (self.sdp.startswith("v=0"))
        )

    def summary(self) -> str:
        if self.ok:
            media = [
                line[2:].split(" ")[0] for line in self.sdp.splitlines() if line.startswith("m=")
            ]
            return f"200 with SDP ({', '.join(media) or 'no media lines'})"
        if self.status == 200:
            return f"200 without an SDP (Content-Type {self.content_type or 'none'})"
        return f"{self.status} {self.reason}".strip()


class RtspError(Exception):
    """The RTSP exchange failed below the level of a status code."""


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _challenge_params(value: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for part in value.split(",")[0:]:
        key, sep, val = part.strip().partition("=")
        if sep:
            params[key.strip().lower()] = val.strip().strip('"')
    return params


def authorization(
    challenge: str, method: str, uri: str, username: str, password: str
) -> str | None:
    """The Authorization header answering ``challenge`` (a WWW-Authenticate value)."""
    scheme, _, rest = challenge.strip().partition(" ")
    if scheme.lower() == "basic":
        return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    if scheme.lower() != "digest":
        return None
    params = _challenge_params(rest)
    realm, nonce = params.get("realm", ""), params.get("nonce", "")
    ha1 = _md5(f"{username}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    fields = [
        f'username="{username}"',
        f'realm="{realm}"',
        f'nonce="{nonce}"',
        f'uri="{uri}"',
    ]
    qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
    if "auth" in qops:
        cnonce = os.urandom(8).hex()
        response = _md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
        fields += ["qop=auth", "nc=00000001", f'cnonce="{cnonce}"']
    else:
        response = _md5(f"{ha1}:{nonce}:{ha2}")
    fields.append(f'response="{response}"')
    if "opaque" in params:
        fields.append(f'opaque="{params["opaque"]}"')
    return "Digest " + ", ".join(fields)


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, str, dict[str, str], bytes]:
    writer.write(request)
    await writer.drain()
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise RtspError("RTSP response header too large") from None
    except asyncio.IncompleteReadError:
        raise RtspError("RTSP server closed the connection without answering") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("RTSP/") or not parts[1].isdigit():
        raise RtspError(f"not an RTSP response: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        if sep:
            headers.setdefault(key.strip().lower(), value.strip())
    length = int(headers.get("content-length", "0") or 0)
    if length > MAX_BODY:
        raise RtspError(f"RTSP body too large ({length} bytes)")
    body = await reader.readexactly(length) if length > 0 else b""
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers, body


async def describe(
    url: str, username: str, password: str, *, send_auth: bool = True
) -> DescribeResult:
    """DESCRIBE ``url`` (credentials in the URL win over the given ones; none are sent
    with ``send_auth=False``). Bound the call with ``asyncio.timeout``: this function has
    no timeout of its own."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("rtsp", "rtsps") or not parts.hostname:
        raise RtspError(f"not an rtsp:// URL: {url[:200]!r}")
    if parts.scheme.lower() == "rtsps":
        raise RtspError("rtsps:// (RTSP over TLS) is not probed")
    if parts.username and send_auth:
        username, password = unquote(parts.username), unquote(parts.password or "")
    host, port = parts.hostname, parts.port or 554
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    clean = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    reader, writer = await asyncio.open_connection(host, port, limit=MAX_HEAD)
    try:
        cseq = 1
        auth_header = ""
        for _ in range(2):
            request = (
                f"DESCRIBE {clean} RTSP/1.0\r\nCSeq: {cseq}\r\nAccept: application/sdp\r\n"
                f"User-Agent: vigil-agent\r\n{auth_header}\r\n"
            ).encode()
            status, reason, headers, body = await _exchange(reader, writer, request)
            if send_auth and status == 401 and not auth_header and "www-authenticate" in headers:
                answer = authorization(
                    headers["www-authenticate"], "DESCRIBE", clean, username, password
                )
                if answer is None:
                    return DescribeResult(status, reason)
                auth_header = f"Authorization: {answer}\r\n"
                cseq += 1
                continue
            return DescribeResult(
                status,
                reason,
                headers.get("content-type", ""),
                body.decode("utf-8", "replace"),
            )
        return DescribeResult(status, reason)
    finally:
        writer.close()
