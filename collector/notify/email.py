"""E-mail over SMTP: plain text and HTML, STARTTLS or TLS, with or without a login.

A channel's config names ``host``, ``port``, ``security`` (``starttls``, ``tls`` or
``none``), ``username``, ``from`` and ``to`` (comma-separated); the password is the
channel's sealed secret. Sending runs in a thread (``smtplib``), off the event loop.
"""

from __future__ import annotations

import asyncio
import html
import smtplib
import ssl
import time
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any

from collector.notify.delivery import Outcome, decode
from collector.notify.store import Channel

TIMEOUT_S = 20.0


def subject(body: dict[str, Any]) -> str:
    d = body["data"]
    flag = "RESOLVED" if d["status"] == "resolved" else d["severity"].upper()
    return f"[Vigil {flag}] {d['summary']}"


def _lines(body: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(server, what changed, since, link) per event."""
    out = []
    for e in body["data"]["events"]:
        server = (e.get("server") or {}).get("hostname") or (e.get("server") or {}).get("id") or ""
        what = e["subject"] + (" (resolved)" if e["status"] == "resolved" else "")
        if e.get("repeat"):
            what += " (still so)"
        out.append((server, what, e.get("since") or e["at"], e.get("link") or ""))
    return out


def text(body: dict[str, Any]) -> str:
    d = body["data"]
    parts = [d["summary"], ""]
    for server, what, since, link in _lines(body):
        parts.append(f"- Server: {server or '-'}")
        parts.append(f"  What changed: {what}")
        parts.append(f"  Since: {since}")
        if link:
            parts.append(f"  Link: {link}")
    parts += ["", f"What to do: {d['what_to_do']}"]
    if d.get("link"):
        parts.append(f"Open: {d['link']}")
    who = ", ".join(x for x in (d.get("partner"), d.get("customer"), d.get("site")) if x)
    if who:
        parts.append(f"For: {who}")
    return "\n".join(parts) + "\n"


def html_body(body: dict[str, Any]) -> str:
    d = body["data"]
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(server)}</td><td>{e(what)}</td><td>{e(since)}</td>"
        f"<td>{_anchor(link)}</td></tr>"
        for server, what, since, link in _lines(body)
    )
    return (
        f"<html><body><h2>{e(d['summary'])}</h2>"
        "<table border='1' cellpadding='4' cellspacing='0'>"
        "<tr><th>Server</th><th>What changed</th><th>Since</th><th>Link</th></tr>"
        f"{rows}</table><p><b>What to do:</b> {e(d['what_to_do'])}</p></body></html>"
    )


def _anchor(link: str) -> str:
    return f'<a href="{html.escape(link)}">open</a>' if link else ""


def build(channel: Channel, msg_id: str, body: dict[str, Any]) -> EmailMessage:
    cfg = channel.config
    msg = EmailMessage()
    msg["Subject"] = subject(body)
    msg["From"] = cfg["from"]
    msg["To"] = cfg["to"]
    msg["Message-ID"] = f"<{msg_id}@{cfg.get('host', 'vigil')}>"
    msg.set_content(text(body))
    msg.add_alternative(html_body(body), subtype="html")
    return msg


def deliver(cfg: Mapping[str, Any], password: str, msg: EmailMessage) -> None:
    """Send ``msg`` through the SMTP server ``cfg`` describes (``host``, ``port``,
    ``security``, ``username``, ``cafile``), blocking: run it in a thread. Shared by the
    e-mail channels and the collector's own mail (:mod:`collector.accounts.mail`)."""
    host, security = cfg["host"], cfg.get("security", "starttls")
    port = int(cfg.get("port") or (465 if security == "tls" else 587))
    context = ssl.create_default_context()
    if cfg.get("cafile"):
        context.load_verify_locations(cfg["cafile"])
    smtp: smtplib.SMTP
    if security == "tls":
        smtp = smtplib.SMTP_SSL(host, port, timeout=TIMEOUT_S, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=TIMEOUT_S)
    with smtp:
        if security == "starttls":
            smtp.starttls(context=context)
        if cfg.get("username"):
            smtp.login(cfg["username"], password)
        smtp.send_message(msg)


def _send_sync(channel: Channel, msg: EmailMessage) -> None:
    deliver(channel.config, channel.secret, msg)


async def send(channel: Channel, msg_id: str, body: bytes, now: float) -> Outcome:
    msg = build(channel, msg_id, decode(body.decode()))
    started = time.perf_counter()
    try:
        await asyncio.get_running_loop().run_in_executor(None, _send_sync, channel, msg)
    except (smtplib.SMTPException, OSError, ssl.SSLError, ValueError) as exc:
        ms = (time.perf_counter() - started) * 1000
        return Outcome(False, f"{type(exc).__name__}: {exc}"[:300], ms)
    return Outcome(True, "250 accepted", (time.perf_counter() - started) * 1000)
