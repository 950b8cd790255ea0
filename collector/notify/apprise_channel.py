"""Chat and paging services through Apprise URLs (Slack, Teams, Telegram, PagerDuty,
Opsgenie, ``json://`` …): the partner configures a URL, which is the channel's sealed
secret since it usually holds a token. Apprise is imported on first use only."""

from __future__ import annotations

import asyncio
import time

from collector.notify import email
from collector.notify.delivery import Outcome, decode
from collector.notify.store import Channel

_TYPES = {"critical": "failure", "high": "failure", "warning": "warning", "info": "info"}


def _notify(url: str, title: str, text: str, severity: str, resolved: bool) -> bool:
    import apprise

    a = apprise.Apprise()
    if not a.add(url):
        raise ValueError("Apprise does not understand this URL")
    kind = "success" if resolved else _TYPES.get(severity, "warning")
    return bool(a.notify(body=text, title=title, notify_type=kind))


async def send(channel: Channel, msg_id: str, body: bytes, now: float) -> Outcome:
    doc = decode(body.decode())
    d = doc["data"]
    started = time.perf_counter()
    try:
        ok = await asyncio.get_running_loop().run_in_executor(
            None,
            _notify,
            channel.secret,
            email.subject(doc),
            email.text(doc),
            d["severity"],
            d["status"] == "resolved",
        )
    except (ValueError, OSError) as exc:
        return Outcome(False, f"{type(exc).__name__}: {exc}"[:300], 0.0)
    ms = (time.perf_counter() - started) * 1000
    return Outcome(ok, "sent" if ok else "Apprise reported a failure (see the collector log)", ms)
