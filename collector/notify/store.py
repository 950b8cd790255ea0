"""Channels, routes, silences and server labels: their rows, for the API, CLI and sender.

Every function takes the partner it acts for; a channel, route or silence of another
partner is not found. Secrets are sealed here (:class:`SecretBox`) and never read back
out by anything but the sender.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from collector.health import servers
from collector.notify import alerts
from collector.notify.channel_secrets import SecretBox, new_webhook_secret
from collector.notify.events import SEVERITIES

CHANNEL_TYPES = ("webhook", "smtp", "apprise")
UNHEALTHY_AFTER = 3
"""Failed attempts in a row after which a channel is shown unhealthy."""


class NotifyError(ValueError):
    """A request this module refuses; ``field`` names what is wrong."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(LookupError):
    pass


@dataclass
class Channel:
    id: str
    partner_id: int
    customer: str
    type: str
    name: str
    config: dict[str, Any]
    created_at: float
    failures: int = 0
    last_error: str = ""
    last_ok_at: float | None = None
    last_failed_at: float | None = None
    secret: str = field(default="", repr=False)
    old_secret: str = field(default="", repr=False)
    old_secret_until: float | None = None

    @property
    def healthy(self) -> bool:
        return self.failures < UNHEALTHY_AFTER

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "name": self.name,
            "customer": self.customer or None,
            "config": self.config,
            "created_at": self.created_at,
            "healthy": self.healthy,
            "failures_in_a_row": self.failures,
            "last_error": self.last_error or None,
            "last_ok_at": self.last_ok_at,
            "last_failed_at": self.last_failed_at,
            "secret_rotating_until": self.old_secret_until,
        }


_CHANNEL_COLS = (
    "id, partner_id, customer, type, name, config, created_at, failures, last_error, "
    "last_ok_at, last_failed_at, secret, old_secret, old_secret_until"
)


def _channel(r: Any, box: SecretBox | None) -> Channel:
    ch = Channel(
        id=r[0],
        partner_id=int(r[1]),
        customer=r[2],
        type=r[3],
        name=r[4],
        config=json.loads(r[5]),
        created_at=r[6],
        failures=int(r[7]),
        last_error=r[8],
        last_ok_at=r[9],
        last_failed_at=r[10],
        old_secret_until=r[13],
    )
    if box is not None:
        ch.secret = box.open(ch.id, r[11])
        ch.old_secret = box.open(ch.id, r[12]) if r[12] else ""
    return ch


def check_channel(type_: str, config: dict[str, Any], secret: str) -> None:
    """Refuse a channel that cannot work, naming the field."""
    if type_ not in CHANNEL_TYPES:
        raise NotifyError(f"channel type must be one of {', '.join(CHANNEL_TYPES)}", "type")
    if type_ == "webhook":
        url = str(config.get("url", ""))
        if not url.startswith(("http://", "https://")):
            raise NotifyError("a webhook needs an http:// or https:// url", "url")
        if secret and not secret.startswith("whsec_"):
            raise NotifyError("a webhook secret starts with whsec_", "secret")
    elif type_ == "smtp":
        for key in ("host", "to", "from"):
            if not config.get(key):
                raise NotifyError(f"an e-mail channel needs {key!r}", key)
        port = config.get("port", 0)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise NotifyError("port is a number from 1 to 65535 (0: the default)", "port")
        if config.get("security", "starttls") not in ("starttls", "tls", "none"):
            raise NotifyError("security must be starttls, tls or none", "security")
    elif type_ == "apprise" and not secret:
        raise NotifyError("an Apprise channel needs its URL", "url")


def channel_parts(type_: str, fields: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A channel's config and secret from flat fields (the CLI's options, a page's form):
    ``url`` (webhook or Apprise URL), ``secret`` (webhook secret, made if absent; SMTP
    password), ``host``, ``port``, ``security``, ``username``, ``from``, ``to``."""
    secret = str(fields.get("secret") or "")
    if type_ == "webhook":
        return {"url": str(fields.get("url") or "")}, secret or new_webhook_secret()
    if type_ == "smtp":
        config = {
            "host": str(fields.get("host") or ""),
            "port": fields.get("port") or 0,
            "security": str(fields.get("security") or "starttls"),
            "username": str(fields.get("username") or ""),
            "from": str(fields.get("from") or ""),
            "to": str(fields.get("to") or ""),
        }
        return config, secret
    return {}, str(fields.get("url") or "")


def add_channel(
    conn: sqlite3.Connection,
    box: SecretBox,
    partner_id: int,
    type_: str,
    name: str,
    config: dict[str, Any],
    secret: str,
    now: float,
    customer: str = "",
) -> Channel:
    """Store a channel; ``secret`` is the webhook secret, SMTP password or Apprise URL."""
    check_channel(type_, config, secret)
    cid = "ch_" + secrets.token_hex(6)
    conn.execute(
        "INSERT INTO notify_channels (id, partner_id, customer, type, name, config, secret, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (cid, partner_id, customer, type_, name, json.dumps(config), box.seal(cid, secret), now),
    )
    return get_channel(conn, partner_id, cid)


def get_channel(
    conn: sqlite3.Connection, partner_id: int | None, channel_id: str, box: SecretBox | None = None
) -> Channel:
    sql = f"SELECT {_CHANNEL_COLS} FROM notify_channels WHERE id = ? AND removed_at IS NULL"
    args: tuple[Any, ...] = (channel_id,)
    if partner_id is not None:
        sql += " AND partner_id = ?"
        args += (partner_id,)
    r = conn.execute(sql, args).fetchone()
    if r is None:
        raise NotFound(f"no channel {channel_id!r}")
    return _channel(r, box)


def list_channels(
    conn: sqlite3.Connection, partner_id: int | None, box: SecretBox | None = None
) -> list[Channel]:
    sql = f"SELECT {_CHANNEL_COLS} FROM notify_channels WHERE removed_at IS NULL"
    args: tuple[Any, ...] = ()
    if partner_id is not None:
        sql += " AND partner_id = ?"
        args = (partner_id,)
    return [_channel(r, box) for r in conn.execute(sql + " ORDER BY created_at, id", args)]


def sealed_secrets(conn: sqlite3.Connection, limit: int = 20) -> list[tuple[str, bytes]]:
    """Up to ``limit`` channels' sealed secrets (id, ciphertext), to tell at start whether
    this process's key is the one they were sealed under."""
    rows = conn.execute(
        "SELECT id, secret FROM notify_channels WHERE removed_at IS NULL AND secret IS NOT NULL"
        " ORDER BY created_at DESC, id LIMIT ?",
        (limit,),
    ).fetchall()
    return [(r[0], bytes(r[1])) for r in rows if r[1]]


def remove_channel(conn: sqlite3.Connection, partner_id: int, channel_id: str, now: float) -> None:
    get_channel(conn, partner_id, channel_id)
    conn.execute("UPDATE notify_channels SET removed_at = ? WHERE id = ?", (now, channel_id))
    conn.execute("DELETE FROM notify_routes WHERE channel_id = ?", (channel_id,))
    # Imported here: the sender reads channels from this module.
    from collector.notify import delivery

    delivery.drop_pending(conn, channel_id)


def rotate_secret(
    conn: sqlite3.Connection,
    box: SecretBox,
    partner_id: int,
    channel_id: str,
    new_secret: str,
    overlap_s: float,
    now: float,
) -> None:
    """A new webhook secret; the old one keeps signing beside it for ``overlap_s``."""
    ch = get_channel(conn, partner_id, channel_id, box)
    if ch.type != "webhook":
        raise NotifyError("only webhook secrets rotate", "channel")
    check_channel(ch.type, ch.config, new_secret)
    conn.execute(
        "UPDATE notify_channels SET secret = ?, old_secret = ?, old_secret_until = ? WHERE id = ?",
        (box.seal(ch.id, new_secret), box.seal(ch.id, ch.secret), now + overlap_s, ch.id),
    )


def note_attempt(
    conn: sqlite3.Connection, channel_id: str, ok: bool, answer: str, now: float
) -> None:
    """The channel's health after a delivery attempt: failures in a row, last error."""
    if ok:
        conn.execute(
            "UPDATE notify_channels SET failures = 0, last_ok_at = ? WHERE id = ?",
            (now, channel_id),
        )
    else:
        conn.execute(
            "UPDATE notify_channels SET failures = failures + 1, last_error = ?, "
            "last_failed_at = ? WHERE id = ?",
            (answer, now, channel_id),
        )


def channel_customers(conn: sqlite3.Connection) -> dict[str, str]:
    """channel id -> the customer it is reserved for ("" for none), every live channel."""
    return {
        r[0]: r[1]
        for r in conn.execute("SELECT id, customer FROM notify_channels WHERE removed_at IS NULL")
    }


# --- routes ---------------------------------------------------------------------------


@dataclass
class Route:
    id: int
    partner_id: int
    channel_id: str
    kinds: str = "*"
    min_severity: str = "info"
    customer: str = ""
    site: str = ""
    group_wait_s: float = 30.0
    repeat_s: float = 4 * 3600.0
    send_resolved: bool = True
    digest: bool = False
    digest_hour: int = 8
    quiet_from: str = ""
    quiet_until: str = ""
    timezone: str = "UTC"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel": self.channel_id,
            "kinds": self.kinds.split(","),
            "min_severity": self.min_severity,
            "customer": self.customer or None,
            "site": self.site or None,
            "group_wait_s": self.group_wait_s,
            "repeat_s": self.repeat_s,
            "send_resolved": self.send_resolved,
            "digest": self.digest,
            "digest_hour": self.digest_hour,
            "quiet_hours": (
                None
                if not self.quiet_from
                else {"from": self.quiet_from, "until": self.quiet_until, "timezone": self.timezone}
            ),
        }


_ROUTE_COLS = (
    "id, partner_id, channel_id, kinds, min_severity, customer, site, group_wait_s, repeat_s, "
    "send_resolved, digest, digest_hour, quiet_from, quiet_until, timezone"
)


def _route(r: Any) -> Route:
    return Route(
        int(r[0]),
        int(r[1]),
        r[2],
        r[3],
        r[4],
        r[5],
        r[6],
        float(r[7]),
        float(r[8]),
        bool(r[9]),
        bool(r[10]),
        int(r[11]),
        r[12],
        r[13],
        r[14],
    )


def _check_route(route: Route) -> None:
    if route.min_severity not in SEVERITIES:
        raise NotifyError(f"severity must be one of {', '.join(SEVERITIES)}", "min_severity")
    if route.group_wait_s < 0 or route.repeat_s < 60:
        raise NotifyError("group wait >= 0 s and repeat interval >= 60 s", "repeat_s")
    if not 0 <= route.digest_hour <= 23:
        raise NotifyError("the digest hour is 0 to 23", "digest_hour")
    if bool(route.quiet_from) != bool(route.quiet_until):
        raise NotifyError("quiet hours need both from and until (HH:MM)", "quiet_hours")
    for t in (route.quiet_from, route.quiet_until):
        if t and not _hhmm(t):
            raise NotifyError("quiet hours are HH:MM", "quiet_hours")
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(route.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise NotifyError(f"unknown time zone {route.timezone!r}", "timezone") from exc


def _hhmm(t: str) -> bool:
    h, sep, m = t.partition(":")
    digits = (h + m).isascii() and h.isdigit() and m.isdigit()
    return bool(sep) and digits and int(h) < 24 and int(m) < 60


def add_route(conn: sqlite3.Connection, route: Route, now: float) -> Route:
    _check_route(route)
    ch = get_channel(conn, route.partner_id, route.channel_id)
    if ch.customer and route.customer not in ("", ch.customer):
        raise NotifyError(f"channel {ch.id} is only for customer {ch.customer!r}", "customer")
    cur = conn.execute(
        "INSERT INTO notify_routes (partner_id, channel_id, kinds, min_severity, customer, site, "
        "group_wait_s, repeat_s, send_resolved, digest, digest_hour, quiet_from, quiet_until, "
        "timezone, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            route.partner_id,
            route.channel_id,
            route.kinds,
            route.min_severity,
            route.customer,
            route.site,
            route.group_wait_s,
            route.repeat_s,
            int(route.send_resolved),
            int(route.digest),
            route.digest_hour,
            route.quiet_from,
            route.quiet_until,
            route.timezone,
            now,
        ),
    )
    route.id = int(cur.fetchone()[0])
    return route


def list_routes(conn: sqlite3.Connection, partner_id: int | None) -> list[Route]:
    sql = f"SELECT {_ROUTE_COLS} FROM notify_routes"
    args: tuple[Any, ...] = ()
    if partner_id is not None:
        sql += " WHERE partner_id = ?"
        args = (partner_id,)
    return [_route(r) for r in conn.execute(sql + " ORDER BY id", args)]


def digest_base(conn: sqlite3.Connection, route_id: int) -> float:
    """When the route's last digest left (its creation if none has)."""
    row = conn.execute(
        "SELECT last_digest_at, created_at FROM notify_routes WHERE id = ?", (route_id,)
    ).fetchone()
    return row[0] if row[0] is not None else row[1]


def set_digest_sent(conn: sqlite3.Connection, route_id: int, now: float) -> None:
    conn.execute("UPDATE notify_routes SET last_digest_at = ? WHERE id = ?", (now, route_id))


def remove_route(conn: sqlite3.Connection, partner_id: int, route_id: int) -> None:
    n = conn.execute(
        "DELETE FROM notify_routes WHERE id = ? AND partner_id = ?", (route_id, partner_id)
    ).rowcount
    if not n:
        raise NotFound(f"no route {route_id}")
    alerts.forget_route(conn, route_id)


# --- silences and labels ------------------------------------------------------------------

SILENCE_SCOPES = ("server", "site", "customer", "partner")


def add_silence(
    conn: sqlite3.Connection,
    partner_id: int,
    scope: str,
    value: str,
    starts_at: float,
    ends_at: float,
    reason: str,
    now: float,
) -> dict[str, Any]:
    if scope not in SILENCE_SCOPES:
        raise NotifyError(f"scope must be one of {', '.join(SILENCE_SCOPES)}", "scope")
    if ends_at <= starts_at:
        raise NotifyError("a silence ends after it starts", "ends_at")
    if scope == "server":
        if not servers.owned_by(conn, value, partner_id):
            raise NotFound(f"no server {value!r}")
    cur = conn.execute(
        "INSERT INTO notify_silences (partner_id, scope, value, starts_at, ends_at, reason, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (partner_id, scope, value, starts_at, ends_at, reason, now),
    )
    return _silence_json(int(cur.fetchone()[0]), scope, value, starts_at, ends_at, reason)


def _silence_json(
    sid: int, scope: str, value: str, starts_at: float, ends_at: float, reason: str
) -> dict[str, Any]:
    return {
        "id": sid,
        "scope": scope,
        "value": value,
        "starts_at": starts_at,
        "ends_at": ends_at,
        "reason": reason,
    }


def list_silences(
    conn: sqlite3.Connection, partner_id: int | None, now: float
) -> list[dict[str, Any]]:
    sql = (
        "SELECT id, scope, value, starts_at, ends_at, reason FROM notify_silences WHERE ends_at > ?"
    )
    args: tuple[Any, ...] = (now,)
    if partner_id is not None:
        sql += " AND partner_id = ?"
        args += (partner_id,)
    return [_silence_json(*r) for r in conn.execute(sql + " ORDER BY ends_at", args)]


def ended_silences(
    conn: sqlite3.Connection, partner_id: int, now: float, limit: int = 50
) -> list[dict[str, Any]]:
    """The partner's silences that have ended (ran out or were ended early), latest first."""
    return [
        _silence_json(*r)
        for r in conn.execute(
            "SELECT id, scope, value, starts_at, ends_at, reason FROM notify_silences "
            "WHERE ends_at <= ? AND partner_id = ? ORDER BY ends_at DESC, id DESC LIMIT ?",
            (now, partner_id, limit),
        )
    ]


def silences_since(conn: sqlite3.Connection, partner_id: int, since: float) -> list[dict[str, Any]]:
    """The partner's silences ending after ``since`` (id, scope, value, starts_at, ends_at)."""
    return [
        {"id": r[0], "scope": r[1], "value": r[2], "starts_at": r[3], "ends_at": r[4]}
        for r in conn.execute(
            "SELECT id, scope, value, starts_at, ends_at FROM notify_silences "
            "WHERE partner_id = ? AND ends_at > ?",
            (partner_id, since),
        )
    ]


def end_silence(conn: sqlite3.Connection, partner_id: int, silence_id: int, now: float) -> None:
    n = conn.execute(
        "UPDATE notify_silences SET ends_at = ? WHERE id = ? AND partner_id = ? AND ends_at > ?",
        (now, silence_id, partner_id, now),
    ).rowcount
    if not n:
        raise NotFound(f"no active silence {silence_id}")


def set_labels(
    conn: sqlite3.Connection, partner_id: int, server_id: str, customer: str, site: str
) -> None:
    if not servers.owned_by(conn, server_id, partner_id):
        raise NotFound(f"no server {server_id!r}")
    conn.execute(
        "INSERT INTO notify_server_labels (server_id, customer, site) VALUES (?, ?, ?) "
        "ON CONFLICT (server_id) DO UPDATE SET customer = excluded.customer, site = excluded.site",
        (server_id, customer, site),
    )


def labels_of(conn: sqlite3.Connection, server_id: str) -> tuple[str, str]:
    """A server's (customer, site) labels; empty when it has none."""
    row = conn.execute(
        "SELECT customer, site FROM notify_server_labels WHERE server_id = ?", (server_id,)
    ).fetchone()
    return ("", "") if row is None else (row[0], row[1])


def label_choices(conn: sqlite3.Connection, partner_id: int) -> dict[str, list[str]]:
    """The customers and sites the partner's servers are labelled with (for a form)."""
    rows = conn.execute(
        "SELECT DISTINCT l.customer, l.site FROM notify_server_labels l "
        "JOIN servers s ON s.id = l.server_id WHERE s.partner_id = ?",
        (partner_id,),
    ).fetchall()
    return {
        "customers": sorted({r[0] for r in rows if r[0]}),
        "sites": sorted({r[1] for r in rows if r[1]}),
    }


def unhealthy_channels(conn: sqlite3.Connection, partner_id: int | None) -> list[dict[str, Any]]:
    """Channels whose last attempts failed: what the fleet view shows above the servers."""
    return [
        {
            "id": ch.id,
            "type": ch.type,
            "name": ch.name,
            "last_error": ch.last_error,
            "failures_in_a_row": ch.failures,
            "last_ok_at": ch.last_ok_at,
        }
        for ch in list_channels(conn, partner_id)
        if not ch.healthy
    ]
