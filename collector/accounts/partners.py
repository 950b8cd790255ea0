"""The partners table: every read and write of a partner (an organisation whose servers
the collector watches) goes through these functions, so a second database backend
changes this module alone for it."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass


class NotFound(LookupError):
    pass


@dataclass(frozen=True)
class Partner:
    id: int
    name: str


def add_partner(conn: sqlite3.Connection, name: str, *, vendor: bool = False) -> Partner:
    """A partner, or with ``vendor`` the vendor organisation: its users see every
    partner's fleet, incidents and contracts (:mod:`collector.accounts.vendor`)."""
    row = conn.execute(
        "INSERT INTO partners (name, created_at, vendor) VALUES (?, ?, ?) RETURNING id",
        (name, time.time(), int(vendor)),
    ).fetchone()
    return Partner(int(row[0]), name)


def partner_by_name(conn: sqlite3.Connection, name: str) -> Partner:
    row = conn.execute("SELECT id, name FROM partners WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no partner named {name!r}")
    return Partner(row["id"], row["name"])


def list_partners(conn: sqlite3.Connection) -> list[Partner]:
    return [
        Partner(r["id"], r["name"])
        for r in conn.execute("SELECT id, name FROM partners ORDER BY name")
    ]


def names_by_id(conn: sqlite3.Connection) -> dict[int, str]:
    """partner id -> name, every partner (rows read by position: plain tuples do too)."""
    return {int(r[0]): r[1] for r in conn.execute("SELECT id, name FROM partners")}


def names(conn: sqlite3.Connection) -> list[str]:
    """Every partner's name, in order (rows read by position: plain tuples do too)."""
    return [r[0] for r in conn.execute("SELECT name FROM partners ORDER BY name")]


def partner_by_id(conn: sqlite3.Connection, partner_id: int) -> Partner | None:
    row = conn.execute("SELECT id, name FROM partners WHERE id = ?", (partner_id,)).fetchone()
    return None if row is None else Partner(row[0], row[1])


def id_by_name(conn: sqlite3.Connection, name: str) -> int | None:
    """The id of the partner called ``name``, or None."""
    row = conn.execute("SELECT id FROM partners WHERE name = ?", (name,)).fetchone()
    return None if row is None else int(row[0])


def name_of(conn: sqlite3.Connection, partner_id: int) -> str | None:
    """The name of partner ``partner_id``, or None."""
    row = conn.execute("SELECT name FROM partners WHERE id = ?", (partner_id,)).fetchone()
    return None if row is None else row[0]


def is_vendor(conn: sqlite3.Connection, partner_id: int) -> bool:
    """Is partner ``partner_id`` the vendor organisation (which has no customers)?"""
    row = conn.execute("SELECT vendor FROM partners WHERE id = ?", (partner_id,)).fetchone()
    return row is not None and bool(row[0])


def customer_partners(conn: sqlite3.Connection) -> list[Partner]:
    """Every partner but the vendor organisation(s): whose fleets the vendor sees."""
    return [
        Partner(r[0], r[1])
        for r in conn.execute("SELECT id, name FROM partners WHERE vendor = 0 ORDER BY name")
    ]


def names_and_intervals(conn: sqlite3.Connection) -> list[tuple[int, str, int | None]]:
    """Every partner's (id, name, report interval override)."""
    return [
        (r[0], r[1], r[2]) for r in conn.execute("SELECT id, name, report_interval_s FROM partners")
    ]


def set_report_interval(conn: sqlite3.Connection, partner_id: int, seconds: int | None) -> None:
    """Override the report interval of every server of the partner without its own."""
    conn.execute("UPDATE partners SET report_interval_s = ? WHERE id = ?", (seconds, partner_id))


def report_interval(conn: sqlite3.Connection, partner_id: int) -> int | None:
    """The partner's report interval override, or None."""
    r = conn.execute(
        "SELECT report_interval_s FROM partners WHERE id = ?", (partner_id,)
    ).fetchone()
    return int(r[0]) if r is not None and r[0] else None
