"""Enrolled servers and their sessions: repository functions over a connection."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from collector.accounts import partners


@dataclass(frozen=True)
class ServerRow:
    id: str
    partner_id: int
    hostname: str
    machine_id: str
    licence_id: str | None
    public_key: bytes
    enrolled_at: float
    revoked_at: float | None
    last_seen: float | None
    report_interval_s: int | None
    agent_version: str
    os: str
    last_seq: int
    reports_received: int
    dropped_reports: int
    missing_reports: int
    state: str
    told_interval_s: int | None = None
    """The report interval sent in the acknowledgement of the newest report."""
    told_grace_s: int = 0
    """One told interval when that report's told interval differed from the one before."""

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> ServerRow:
        """From a row selected with ``_COLUMNS`` (same order as the fields)."""
        return cls(*r)


_COLUMNS = (
    "id, partner_id, hostname, machine_id, licence_id, public_key, enrolled_at, revoked_at, "
    "last_seen, report_interval_s, agent_version, os, last_seq, reports_received, "
    "dropped_reports, missing_reports, state, told_interval_s, told_grace_s"
)


class ReenrollRefused(Exception):
    """The machine is already enrolled with this partner and nobody consented to re-keying it."""

    def __init__(self, server_id: str, revoked: bool) -> None:
        super().__init__(server_id)
        self.server_id = server_id
        self.revoked = revoked


@dataclass(frozen=True)
class Enrolled:
    server_id: str
    reenrolled: bool
    """True when an existing server was re-keyed (with consent)."""
    consent: str
    """``token`` or ``server`` for a re-enrollment, empty for a new server."""


def register(
    conn: sqlite3.Connection,
    partner_id: int,
    *,
    hostname: str,
    machine_id: str,
    licence_id: str | None,
    public_key: bytes,
    agent_version: str,
    os: str,
    now: float,
    token_allows_reenroll: bool = False,
) -> Enrolled:
    """Register a server, or re-key the partner's server with the same machine identity.

    Re-enrolling a machine (a reinstalled agent, a lost state directory) keeps its server
    id and history, but only with the operator's consent: a token made to allow it, or
    ``server allow-reenroll`` for that server (used once). Otherwise anyone holding one of
    the partner's tokens and a machine id could take the server over. The old key stops
    working at once, and so do its sessions. A revoked server stays revoked: with consent
    the machine is enrolled as a new server; without, it is refused like any other.
    """
    row = conn.execute(
        "SELECT id, revoked_at, reenroll_allowed_until FROM servers "
        "WHERE partner_id = ? AND machine_id = ? ORDER BY enrolled_at DESC",
        (partner_id, machine_id),
    ).fetchone()
    if row is not None:
        until = row["reenroll_allowed_until"]
        by_server = until is not None and until > now
        consent = "token" if token_allows_reenroll else "server" if by_server else ""
        if not consent:
            raise ReenrollRefused(row["id"], row["revoked_at"] is not None)
        if row["revoked_at"] is None:
            server_id = row["id"]
            conn.execute(
                "UPDATE servers SET public_key = ?, hostname = ?, licence_id = ?, "
                "agent_version = ?, os = ?, enrolled_at = ?, reenroll_allowed_until = NULL "
                "WHERE id = ?",
                (public_key, hostname, licence_id, agent_version, os, now, server_id),
            )
            conn.execute("DELETE FROM sessions WHERE server_id = ?", (server_id,))
            return Enrolled(server_id, True, consent)
    server_id = "srv_" + secrets.token_hex(8)
    conn.execute(
        "INSERT INTO servers (id, partner_id, hostname, machine_id, licence_id, public_key, "
        "agent_version, os, enrolled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            server_id,
            partner_id,
            hostname,
            machine_id,
            licence_id,
            public_key,
            agent_version,
            os,
            now,
        ),
    )
    return Enrolled(server_id, False, "")


def allow_reenroll(conn: sqlite3.Connection, server_id: str, until: float) -> str:
    """Consent to one re-enrollment of ``server_id`` before ``until``.

    Returns ``ok``, ``unknown`` or ``revoked`` (a revoked server is never re-keyed).
    """
    row = conn.execute("SELECT revoked_at FROM servers WHERE id = ?", (server_id,)).fetchone()
    if row is None:
        return "unknown"
    if row["revoked_at"] is not None:
        return "revoked"
    conn.execute("UPDATE servers SET reenroll_allowed_until = ? WHERE id = ?", (until, server_id))
    return "ok"


def get(conn: sqlite3.Connection, server_id: str) -> ServerRow | None:
    r = conn.execute(f"SELECT {_COLUMNS} FROM servers WHERE id = ?", (server_id,)).fetchone()
    return None if r is None else ServerRow.from_row(r)


def list_for(conn: sqlite3.Connection, partner_id: int | None) -> list[ServerRow]:
    if partner_id is None:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM servers ORDER BY hostname, id")
    else:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM servers WHERE partner_id = ? ORDER BY hostname, id",
            (partner_id,),
        )
    return [ServerRow.from_row(r) for r in rows]


def revoke(conn: sqlite3.Connection, server_id: str, now: float) -> bool:
    cur = conn.execute(
        "UPDATE servers SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now, server_id)
    )
    # Sessions stay: every request checks revoked_at, and answers 403 "revoked".
    return cur.rowcount > 0


def set_report_interval(conn: sqlite3.Connection, server_id: str, seconds: int | None) -> bool:
    cur = conn.execute(
        "UPDATE servers SET report_interval_s = ? WHERE id = ?", (seconds, server_id)
    )
    return cur.rowcount > 0


def effective_report_interval(conn: sqlite3.Connection, server: ServerRow, default: int) -> int:
    if server.report_interval_s:
        return server.report_interval_s
    return partners.report_interval(conn, server.partner_id) or default


# --- what other features read and write of a server ----------------------------------------


def brief(conn: sqlite3.Connection, server_id: str) -> sqlite3.Row | None:
    """The server's id, partner_id, public_key, enrolled_at and revoked_at (a row)."""
    return conn.execute(
        "SELECT id, partner_id, public_key, enrolled_at, revoked_at FROM servers WHERE id = ?",
        (server_id,),
    ).fetchone()


def partner_id_of(conn: sqlite3.Connection, server_id: str) -> int | None:
    row = conn.execute("SELECT partner_id FROM servers WHERE id = ?", (server_id,)).fetchone()
    return None if row is None else int(row[0])


def hostname_of(conn: sqlite3.Connection, server_id: str) -> str | None:
    row = conn.execute("SELECT hostname FROM servers WHERE id = ?", (server_id,)).fetchone()
    return None if row is None else row[0]


def owned_by(conn: sqlite3.Connection, server_id: str, partner_id: int) -> bool:
    """Is ``server_id`` one of ``partner_id``'s servers (revoked or not)?"""
    return (
        conn.execute(
            "SELECT 1 FROM servers WHERE id = ? AND partner_id = ?", (server_id, partner_id)
        ).fetchone()
        is not None
    )


def active_ids(conn: sqlite3.Connection, partner_id: int) -> list[str]:
    """The partner's servers not revoked, by id."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT id FROM servers WHERE partner_id = ? AND revoked_at IS NULL ORDER BY id",
            (partner_id,),
        ).fetchall()
    ]


def active_licences(conn: sqlite3.Connection, partner_id: int) -> list[tuple[str, str, str | None]]:
    """(id, hostname, licence id) of the partner's servers not revoked."""
    return [
        (r[0], r[1], r[2])
        for r in conn.execute(
            "SELECT id, hostname, licence_id FROM servers "
            "WHERE partner_id = ? AND revoked_at IS NULL",
            (partner_id,),
        ).fetchall()
    ]


LICENCES_PER_QUERY = 500
"""Licence ids bound into one ``IN (…)`` (well below every backend's parameter limit)."""


def ids_with_licences(
    conn: sqlite3.Connection, partner_id: int, licences: Iterable[str]
) -> frozenset[str]:
    """The partner's servers (revoked or not) enrolled with one of ``licences``."""
    wanted = sorted(licences)
    found: set[str] = set()
    for i in range(0, len(wanted), LICENCES_PER_QUERY):
        chunk = wanted[i : i + LICENCES_PER_QUERY]
        marks = ", ".join("?" for _ in chunk)
        found.update(
            r[0]
            for r in conn.execute(
                f"SELECT id FROM servers WHERE partner_id = ? AND licence_id IN ({marks})",
                (partner_id, *chunk),
            )
        )
    return frozenset(found)


def hostnames(conn: sqlite3.Connection, partner_id: int) -> dict[str, str]:
    """server id -> host name, every server of the partner (revoked or not)."""
    return {
        r[0]: r[1]
        for r in conn.execute(
            "SELECT id, hostname FROM servers WHERE partner_id = ?", (partner_id,)
        )
    }


def partner_and_state(conn: sqlite3.Connection, server_id: str) -> tuple[int, str] | None:
    """The server's partner id and its latest reported state (JSON text)."""
    r = conn.execute("SELECT partner_id, state FROM servers WHERE id = ?", (server_id,)).fetchone()
    return None if r is None else (r[0], r[1])


def set_cameras_digest(conn: sqlite3.Connection, server_id: str, digest: str) -> None:
    conn.execute("UPDATE servers SET cameras_digest = ? WHERE id = ?", (digest, server_id))


def report_position(conn: sqlite3.Connection, server_id: str) -> tuple[int, str | None, str | None]:
    """(sequence number of the newest report stored, camera digest stored or None, the
    stored state's JSON or None)."""
    row = conn.execute(
        "SELECT last_seq, cameras_digest, state FROM servers WHERE id = ?", (server_id,)
    ).fetchone()
    return (int(row[0]), row[1], row[2]) if row else (0, None, None)


@dataclass
class ReportPosition:
    """Where a server's reports stand, as a report batch's write reads (and moves) it."""

    last_seq: int = 0
    digest: str | None = None
    """The camera digest stored, or None."""
    state: str | None = None
    """The stored state's JSON, or None."""
    conditions: bool = False
    """The server may have active notification conditions (ended by a newer report): set
    by the caller, from the notifications' own table."""


def report_positions(
    conn: sqlite3.Connection, server_ids: Sequence[str]
) -> dict[str, ReportPosition]:
    """:class:`ReportPosition` of each of ``server_ids`` that exists, in one query."""
    ids = list(dict.fromkeys(server_ids))
    marks = ", ".join("?" for _ in ids)
    rows = conn.execute(
        f"SELECT id, last_seq, cameras_digest, state FROM servers WHERE id IN ({marks})", ids
    ).fetchall()
    return {r[0]: ReportPosition(int(r[1]), r[2], r[3]) for r in rows}


def count_late_report(conn: sqlite3.Connection, server_id: str) -> None:
    """A report older than the newest stored: counted, the state stays."""
    conn.execute(
        "UPDATE servers SET reports_received = reports_received + 1 WHERE id = ?", (server_id,)
    )


@dataclass(frozen=True)
class ReportedState:
    """What the newest report says of its server."""

    seq: int
    gap: int
    dropped_reports: int
    hostname: str
    agent_version: str
    os: str
    state: str


_RECORD_REPORT = (
    "UPDATE servers SET last_seen = ?, last_seq = ?, "
    "reports_received = reports_received + 1, "
    "missing_reports = missing_reports + ?, dropped_reports = ?, hostname = ?, "
    "agent_version = ?, os = ?, state = ?, "
    "told_grace_s = CASE WHEN told_interval_s IS NOT NULL AND told_interval_s <> ? "
    "THEN ? ELSE 0 END, told_interval_s = COALESCE(?, told_interval_s) WHERE id = ?"
)


def record_report(
    conn: sqlite3.Connection,
    server_id: str,
    received_at: float,
    reported: ReportedState,
    told_interval_s: int | None,
) -> None:
    """Move the server's state forward to its newest report; ``told_interval_s`` is the
    report interval the acknowledgement tells (a change owes one interval of grace)."""
    conn.execute(_RECORD_REPORT, record_params(server_id, received_at, reported, told_interval_s))


def record_reports(conn: sqlite3.Connection, params: list[tuple[Any, ...]]) -> None:
    """:func:`record_report` of several reports in one statement, in order
    (``params`` from :func:`record_params`)."""
    if params:
        conn.executemany(_RECORD_REPORT, params)


def record_params(
    server_id: str, received_at: float, reported: ReportedState, told_interval_s: int | None
) -> tuple[Any, ...]:
    """The parameters of :func:`record_report`'s statement."""
    return (
        received_at,
        reported.seq,
        reported.gap,
        reported.dropped_reports,
        reported.hostname,
        reported.agent_version,
        reported.os,
        reported.state,
        told_interval_s,
        told_interval_s or 0,
        told_interval_s,
        server_id,
    )


# --- what the contract checks and reports read of the fleet ---------------------------------


def licence_and_partner(conn: sqlite3.Connection, server_id: str) -> tuple[str | None, str] | None:
    """``(licence id, partner name)`` of an enrolled server (revoked or not), or None."""
    r = conn.execute(
        "SELECT licence_id, partner_id FROM servers WHERE id = ?", (server_id,)
    ).fetchone()
    name = None if r is None else partners.name_of(conn, int(r[1]))
    return None if r is None or name is None else (r[0], name)


def first_enrollment(
    conn: sqlite3.Connection, partner: str, licence_ids: Sequence[str]
) -> float | None:
    """When the first of ``partner``'s servers (not revoked) with one of ``licence_ids``
    enrolled, or None."""
    partner_id = partners.id_by_name(conn, partner)
    if partner_id is None:
        return None
    marks = ", ".join("?" for _ in licence_ids)
    row = conn.execute(
        "SELECT MIN(enrolled_at) FROM servers "
        f"WHERE partner_id = ? AND revoked_at IS NULL AND licence_id IN ({marks})",
        (partner_id, *licence_ids),
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def first_enrollments(conn: sqlite3.Connection, partner: str) -> dict[str, float]:
    """Licence id -> when the first of ``partner``'s servers (not revoked) with it enrolled."""
    partner_id = partners.id_by_name(conn, partner)
    if partner_id is None:
        return {}
    return {
        lic: float(at)
        for lic, at in conn.execute(
            "SELECT licence_id, MIN(enrolled_at) FROM servers "
            "WHERE partner_id = ? AND revoked_at IS NULL "
            "AND licence_id IS NOT NULL GROUP BY licence_id",
            (partner_id,),
        )
    }


def _named(
    conn: sqlite3.Connection, partner: str | None
) -> tuple[dict[int, str], int | None] | None:
    """(partner id -> name, the id of ``partner`` if named); None when ``partner`` is named
    and unknown."""
    names = partners.names_by_id(conn)
    if partner is None:
        return names, None
    pid = next((i for i, n in names.items() if n == partner), None)
    return None if pid is None else (names, pid)


def active_with_partner(conn: sqlite3.Connection, partner: str | None) -> list[Sequence[Any]]:
    """Every server not revoked (``partner``'s only, when named) as ``(id, machine_id,
    licence_id, last_seen, enrolled_at, reports_received, state, partner name, partner_id)``."""
    named = _named(conn, partner)
    if named is None:
        return []
    names, pid = named
    sql = (
        "SELECT id, machine_id, licence_id, last_seen, enrolled_at, reports_received, state, "
        "partner_id FROM servers WHERE revoked_at IS NULL"
    )
    rows = (
        conn.execute(sql).fetchall()
        if pid is None
        else conn.execute(sql + " AND partner_id = ?", (pid,)).fetchall()
    )
    return [(*r[:7], names[r[7]], r[7]) for r in rows if r[7] in names]


def active_licences_with_partner(
    conn: sqlite3.Connection, partner: str | None
) -> list[tuple[str, str | None, str]]:
    """``(id, licence id, partner name)`` of every server not revoked (``partner``'s only,
    when named)."""
    named = _named(conn, partner)
    if named is None:
        return []
    names, pid = named
    sql = "SELECT id, licence_id, partner_id FROM servers WHERE revoked_at IS NULL"
    rows = (
        conn.execute(sql + " AND partner_id = ?", (pid,)).fetchall()
        if pid is not None
        else conn.execute(sql).fetchall()
    )
    return [(r[0], r[1], names[r[2]]) for r in rows if r[2] in names]


def active_counts_by_partner(conn: sqlite3.Connection) -> dict[int, int]:
    """Partner id -> how many servers it has that are not revoked."""
    rows = conn.execute(
        "SELECT partner_id, count(*) FROM servers WHERE revoked_at IS NULL GROUP BY partner_id"
    ).fetchall()
    return {int(r[0]): int(r[1]) for r in rows}


def licensed_machines(conn: sqlite3.Connection) -> Iterable[Sequence[Any]]:
    """``(partner_id, licence_id, machine_id, enrolled_at)`` of every server with a licence
    id, revoked or not (the machine a licence was first bound to is among them)."""
    return conn.execute(
        "SELECT partner_id, licence_id, machine_id, enrolled_at FROM servers "
        "WHERE licence_id IS NOT NULL"
    )


def ids_of_partner_named(conn: sqlite3.Connection, partner: str) -> list[str]:
    """Every server id of the partner called ``partner``, revoked or not."""
    partner_id = partners.id_by_name(conn, partner)
    if partner_id is None:
        return []
    return [
        r[0]
        for r in conn.execute(
            "SELECT id FROM servers WHERE partner_id = ?", (partner_id,)
        ).fetchall()
    ]


def report_inputs(conn: sqlite3.Connection, seen_since: float, partner_id: int | None) -> list[Any]:
    """Each server (of ``partner_id``, or of every partner) as the monthly report reads
    it: ``(id, partner_id, machine_id, licence_id, enrolled_at, revoked_at, seen,
    state)``, ``seen`` 1 when it has reported and was last seen at ``seen_since`` or
    later, else 0."""
    sql = (
        "SELECT s.id, s.partner_id, s.machine_id, s.licence_id, s.enrolled_at, s.revoked_at, "
        "CASE WHEN s.reports_received > 0 AND s.last_seen >= ? THEN 1 ELSE 0 END, s.state "
        "FROM servers s"
    )
    if partner_id is None:
        return conn.execute(sql, (seen_since,)).fetchall()
    return conn.execute(sql + " WHERE s.partner_id = ?", (seen_since, partner_id)).fetchall()


# --- sessions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    id: str
    server_id: str
    partner_id: int
    key: bytes
    """As stored: sealed under the running process's key (:mod:`collector.http.session_keys`)."""
    expires_at: float


def new_session_id() -> str:
    return "ses_" + secrets.token_hex(12)


def store_session(conn: sqlite3.Connection, session: Session, now: float) -> None:
    conn.execute("DELETE FROM sessions WHERE expires_at < ?", (now,))
    conn.execute(
        "INSERT INTO sessions (id, server_id, key, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        (session.id, session.server_id, session.key, now, session.expires_at),
    )


def session_with_server(
    conn: sqlite3.Connection, session_id: str
) -> tuple[Session, float | None, bytes] | None:
    """The session, its server's revocation time (None = not revoked) and public key."""
    r = conn.execute(
        "SELECT s.id, s.server_id, s.key, s.expires_at, v.partner_id, v.revoked_at, v.public_key "
        "FROM sessions s JOIN servers v ON v.id = s.server_id WHERE s.id = ?",
        (session_id,),
    ).fetchone()
    if r is None:
        return None
    session = Session(r["id"], r["server_id"], r["partner_id"], bytes(r["key"]), r["expires_at"])
    return session, r["revoked_at"], bytes(r["public_key"])
