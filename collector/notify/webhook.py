"""Webhooks per the Standard Webhooks specification.

The body is the message's JSON, sent as is; ``webhook-id`` is the message's id (the same
on every retry, so a receiver drops a repeat), ``webhook-timestamp`` the sending time in
seconds, and ``webhook-signature`` ``v1,<base64 HMAC-SHA256 of id.timestamp.body>`` under
the channel's ``whsec_`` secret. While a rotated secret overlaps, the header carries both
signatures, separated by a space, so a receiver with either secret accepts the message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import aiohttp

from collector.notify.delivery import Outcome
from collector.notify.store import Channel
from collector.notify.targets import TargetRefused

TIMEOUT_S = 15.0


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def headers(channel: Channel, msg_id: str, body: bytes, now: float) -> dict[str, str]:
    ts = int(time.time())
    sigs = [sign(channel.secret, msg_id, ts, body)] if channel.secret else []
    if channel.old_secret and (channel.old_secret_until or 0) > now:
        sigs.append(sign(channel.old_secret, msg_id, ts, body))
    out = {
        "content-type": "application/json",
        "user-agent": "vigil-collector",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
    }
    if sigs:
        out["webhook-signature"] = " ".join(sigs)
    return out


async def send(
    session: aiohttp.ClientSession, channel: Channel, msg_id: str, body: bytes, now: float
) -> Outcome:
    url = str(channel.config["url"])
    started = time.perf_counter()
    try:
        async with session.post(
            url,
            data=body,
            headers=headers(channel, msg_id, body, now),
            timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
            allow_redirects=False,
        ) as resp:
            text = (await resp.content.read(300)).decode(errors="replace")
            ms = (time.perf_counter() - started) * 1000
            answer = f"HTTP {resp.status}" + (f": {text.strip()[:200]}" if text.strip() else "")
            return Outcome(200 <= resp.status < 300, answer, ms)
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        ms = (time.perf_counter() - started) * 1000
        if isinstance(exc.__cause__, TargetRefused):  # our resolver said no
            return Outcome(False, str(exc.__cause__), ms)
        return Outcome(False, f"{type(exc).__name__}: {exc}"[:300], ms)
