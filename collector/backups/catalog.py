"""SQL of the backup catalog: small functions that take a connection.

Callers run them inside ``Database.read`` / ``Database.write`` (one write = one
transaction piece), so a check and the change it guards happen atomically.
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from collector.backups.policy import BackupPolicy, effective
from collector.backups.retention import Snapshot
from collector.health import servers
from collector.storage import windows

Conn = Any
"""A DB-API connection as ``Database.read``/``write`` hand it over (rows by name and index)."""

LISTED_STATUSES = ("verified", "corrupt")
"""What partners see; ``pruning`` rows are on their way out, partial uploads never appear."""


def new_id() -> str:
    return secrets.token_hex(12)


# --- sequence -------------------------------------------------------------------------------


def last_seq(conn: Conn, server_id: str) -> int:
    row = conn.execute(
        "SELECT last_seq FROM backup_sequences WHERE server_id = ?", (server_id,)
    ).fetchone()
    return 0 if row is None else int(row[0])


def accept_seq(conn: Conn, server_id: str, seq: int, now: float) -> None:
    conn.execute(
        "INSERT INTO backup_sequences (server_id, last_seq, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT (server_id) DO UPDATE SET last_seq = excluded.last_seq, "
        "updated_at = excluded.updated_at",
        (server_id, seq, now),
    )


# --- uploads --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    id: str
    server_id: str
    seq: int
    backup_id: str
    header: str
    envelope: str
    size: int
    sha256: str
    received: int
    created_at: float
    updated_at: float


_UPLOAD_COLS = (
    "id, server_id, seq, backup_id, header, envelope, size, sha256, received, created_at, "
    "updated_at"
)


def _upload(row: Any) -> Upload | None:
    if row is None:
        return None
    return Upload(*(row[i] for i in range(11)))


def get_upload(conn: Conn, upload_id: str) -> Upload | None:
    return _upload(
        conn.execute(
            f"SELECT {_UPLOAD_COLS} FROM backup_uploads WHERE id = ?", (upload_id,)
        ).fetchone()
    )


def upload_for_seq(conn: Conn, server_id: str, seq: int) -> Upload | None:
    return _upload(
        conn.execute(
            f"SELECT {_UPLOAD_COLS} FROM backup_uploads WHERE server_id = ? AND seq = ?",
            (server_id, seq),
        ).fetchone()
    )


def uploads_of(conn: Conn, server_id: str) -> list[Upload]:
    rows = conn.execute(
        f"SELECT {_UPLOAD_COLS} FROM backup_uploads WHERE server_id = ? ORDER BY seq",
        (server_id,),
    ).fetchall()
    return [u for u in map(_upload, rows) if u is not None]


def insert_upload(conn: Conn, up: Upload) -> None:
    conn.execute(
        f"INSERT INTO backup_uploads ({_UPLOAD_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            up.id,
            up.server_id,
            up.seq,
            up.backup_id,
            up.header,
            up.envelope,
            up.size,
            up.sha256,
            up.received,
            up.created_at,
            up.updated_at,
        ),
    )


def set_received(conn: Conn, upload_id: str, expected: int, received: int, now: float) -> bool:
    """Move the acknowledged offset from ``expected`` to ``received``; False when another
    writer (a second collector process) moved it first."""
    cur = conn.execute(
        "UPDATE backup_uploads SET received = ?, updated_at = ? WHERE id = ? AND received = ?",
        (received, now, upload_id, expected),
    )
    return bool(cur.rowcount)


def delete_upload(conn: Conn, upload_id: str) -> None:
    conn.execute("DELETE FROM backup_upload_chunks WHERE upload_id = ?", (upload_id,))
    conn.execute("DELETE FROM backup_uploads WHERE id = ?", (upload_id,))


@dataclass(frozen=True)
class StagedChunk:
    """One acknowledged chunk of an upload staged in the object store."""

    offset: int
    size: int
    object_key: str


def record_chunk(conn: Conn, upload_id: str, chunk: StagedChunk) -> None:
    """Record an acknowledged chunk (called in the write that moves ``received``); rows
    at or past its offset (never completed, or from before a rewind) are replaced."""
    conn.execute(
        "DELETE FROM backup_upload_chunks WHERE upload_id = ? AND chunk_offset >= ?",
        (upload_id, chunk.offset),
    )
    conn.execute(
        "INSERT INTO backup_upload_chunks (upload_id, chunk_offset, size, object_key) "
        "VALUES (?, ?, ?, ?)",
        (upload_id, chunk.offset, chunk.size, chunk.object_key),
    )


def upload_chunks(conn: Conn, upload_id: str) -> list[StagedChunk]:
    rows = conn.execute(
        "SELECT chunk_offset, size, object_key FROM backup_upload_chunks "
        "WHERE upload_id = ? ORDER BY chunk_offset",
        (upload_id,),
    ).fetchall()
    return [StagedChunk(int(r[0]), int(r[1]), str(r[2])) for r in rows]


def staged_chunk_keys(conn: Conn) -> set[str]:
    rows = conn.execute("SELECT object_key FROM backup_upload_chunks").fetchall()
    return {str(r[0]) for r in rows}


def stale_uploads(conn: Conn, before: float) -> list[Upload]:
    rows = conn.execute(
        f"SELECT {_UPLOAD_COLS} FROM backup_uploads WHERE updated_at < ?", (before,)
    ).fetchall()
    return [u for u in map(_upload, rows) if u is not None]


def staged_bytes(conn: Conn) -> int:
    """Bytes held by every half-finished upload together (what the staging quota bounds)."""
    return int(conn.execute("SELECT COALESCE(SUM(received), 0) FROM backup_uploads").fetchone()[0])


def upload_ids(conn: Conn) -> set[str]:
    return {r[0] for r in conn.execute("SELECT id FROM backup_uploads").fetchall()}


# --- backups --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backup:
    id: str
    server_id: str
    seq: int
    kind: str
    created_at: float
    stored_at: float
    size: int
    sha256: str | None
    base_seq: int | None
    content_digest: str | None
    envelope: str
    object_key: str | None
    envelope_key: str | None
    verified_at: float | None
    checked_at: float | None
    status: str
    status_reason: str

    def snapshot(self) -> Snapshot:
        return Snapshot(
            id=self.id,
            seq=self.seq,
            created_at=self.created_at,
            kind="unchanged" if self.kind == "unchanged" else "full",
            status=self.status,
            base_seq=self.base_seq,
        )

    def public(self) -> dict[str, Any]:
        """What the partner API shows."""
        return {
            "id": self.id,
            "seq": self.seq,
            "kind": self.kind,
            "created_at": self.created_at,
            "stored_at": self.stored_at,
            "size": self.size,
            "ciphertext_sha256": self.sha256,
            "base_seq": self.base_seq,
            "verified_at": self.verified_at,
            "status": self.status,
        }


_BACKUP_COLS = (
    "id, server_id, seq, kind, created_at, stored_at, size, sha256, base_seq, content_digest, "
    "envelope, object_key, envelope_key, verified_at, checked_at, status, status_reason"
)


def _backup(row: Any) -> Backup | None:
    if row is None:
        return None
    return Backup(*(row[i] for i in range(17)))


def insert_backup(conn: Conn, b: Backup) -> None:
    conn.execute(
        f"INSERT INTO backups ({_BACKUP_COLS}) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            b.id,
            b.server_id,
            b.seq,
            b.kind,
            b.created_at,
            b.stored_at,
            b.size,
            b.sha256,
            b.base_seq,
            b.content_digest,
            b.envelope,
            b.object_key,
            b.envelope_key,
            b.verified_at,
            b.checked_at,
            b.status,
            b.status_reason,
        ),
    )
    note_stored(conn, b.server_id, b.stored_at)
    conn.execute(
        "INSERT INTO backup_stored_times (server_id, seq, stored_at) VALUES (?, ?, ?) "
        "ON CONFLICT (server_id, seq) DO NOTHING",
        (b.server_id, b.seq, b.stored_at),
    )


def get_backup(conn: Conn, server_id: str, backup_id: str) -> Backup | None:
    return _backup(
        conn.execute(
            f"SELECT {_BACKUP_COLS} FROM backups WHERE server_id = ? AND id = ?",
            (server_id, backup_id),
        ).fetchone()
    )


def backup_by_seq(conn: Conn, server_id: str, seq: int) -> Backup | None:
    return _backup(
        conn.execute(
            f"SELECT {_BACKUP_COLS} FROM backups WHERE server_id = ? AND seq = ?",
            (server_id, seq),
        ).fetchone()
    )


def list_backups(
    conn: Conn, server_id: str, statuses: tuple[str, ...] = LISTED_STATUSES
) -> list[Backup]:
    marks = ", ".join("?" for _ in statuses)
    rows = conn.execute(
        f"SELECT {_BACKUP_COLS} FROM backups WHERE server_id = ? AND status IN ({marks}) "
        "ORDER BY seq",
        (server_id, *statuses),
    ).fetchall()
    return [b for b in map(_backup, rows) if b is not None]


def all_backups(conn: Conn, statuses: tuple[str, ...]) -> list[Backup]:
    marks = ", ".join("?" for _ in statuses)
    rows = conn.execute(
        f"SELECT {_BACKUP_COLS} FROM backups WHERE status IN ({marks}) ORDER BY server_id, seq",
        statuses,
    ).fetchall()
    return [b for b in map(_backup, rows) if b is not None]


def servers_with_backups(conn: Conn) -> list[str]:
    return [r[0] for r in conn.execute("SELECT DISTINCT server_id FROM backups ORDER BY 1")]


def set_status(
    conn: Conn, backup_id: str, status: str, reason: str = "", checked_at: float | None = None
) -> None:
    conn.execute(
        "UPDATE backups SET status = ?, status_reason = ?, checked_at = COALESCE(?, checked_at) "
        "WHERE id = ?",
        (status, reason, checked_at, backup_id),
    )


def delete_backup(conn: Conn, backup_id: str) -> None:
    conn.execute("DELETE FROM backups WHERE id = ?", (backup_id,))


def last_stored(conn: Conn, server_id: str) -> float | None:
    row = conn.execute(
        "SELECT MAX(stored_at) FROM backups WHERE server_id = ? AND status <> 'pruning'",
        (server_id,),
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


# --- runs -----------------------------------------------------------------------------------


def attempted_in_window(
    conn: Conn, scope: Sequence[str] | None, since: float, now: float
) -> set[str]:
    """Servers (of ``scope``, or all) that ran a backup in the window, stored or not."""
    # No ORDER BY: SQLite would sort a month of runs for the whole fleet.
    select = "SELECT DISTINCT server_id FROM backup_runs"
    return {r[0] for r in windows.in_window(conn, select, "finished_at", scope, since, now)}


def stored_times_in_window(conn: Conn, since: float, now: float) -> dict[str, list[float]]:
    """server id -> the times backups were stored in the window, sorted. A backup counts
    when the collector stored and verified it, whatever the agent said."""
    made: dict[str, list[float]] = defaultdict(list)
    select = "SELECT server_id, stored_at FROM backup_stored_times"
    for sid, stored in windows.in_window(conn, select, "stored_at", None, since, now):
        made[sid].append(float(stored))
    for times in made.values():
        times.sort()  # each server's few dozen times, not the fleet's month in SQL
    return made


def verified_times(conn: Conn, now: float) -> dict[str, list[float]]:
    """server id -> creation times of its verified backups kept now, sorted."""
    kept: dict[str, list[float]] = defaultdict(list)
    for sid, created in conn.execute(
        "SELECT server_id, created_at FROM backups WHERE status = 'verified' AND created_at <= ?",
        (now,),
    ):
        kept[sid].append(float(created))
    for times in kept.values():
        times.sort()
    return kept


def insert_run(conn: Conn, server_id: str, run: dict[str, Any], now: float) -> str:
    run_id = new_id()
    conn.execute(
        "INSERT INTO backup_runs (id, server_id, outcome, reason, started_at, finished_at, "
        "received_at, seq, backup_id, files, bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            run_id,
            server_id,
            run["outcome"],
            run.get("reason", ""),
            run["started_at"],
            run["finished_at"],
            now,
            run.get("seq"),
            run.get("backup_id"),
            run.get("files"),
            run.get("bytes"),
        ),
    )
    note_run(conn, server_id, run["outcome"], run["finished_at"], run.get("reason", ""), now)
    return run_id


def _newer(col: str) -> str:
    """``col`` becomes the excluded value when that is newer (portable: no GREATEST/MAX)."""
    return (
        f"{col} = CASE WHEN backup_status.{col} IS NULL OR excluded.{col} > backup_status.{col} "
        f"THEN excluded.{col} ELSE backup_status.{col} END"
    )


def note_stored(conn: Conn, server_id: str, at: float) -> None:
    conn.execute(
        "INSERT INTO backup_status (server_id, last_stored_at, updated_at) VALUES (?, ?, ?) "
        f"ON CONFLICT (server_id) DO UPDATE SET {_newer('last_stored_at')}, "
        "updated_at = excluded.updated_at",
        (server_id, at, at),
    )


def note_run(conn: Conn, server_id: str, outcome: str, at: float, reason: str, now: float) -> None:
    if outcome == "failed":
        conn.execute(
            "INSERT INTO backup_status (server_id, last_failed_at, last_failed_reason, "
            "updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (server_id) DO UPDATE SET "
            "last_failed_reason = CASE WHEN backup_status.last_failed_at IS NULL OR "
            "excluded.last_failed_at >= backup_status.last_failed_at "
            "THEN excluded.last_failed_reason ELSE backup_status.last_failed_reason END, "
            f"{_newer('last_failed_at')}, updated_at = excluded.updated_at",
            (server_id, at, reason, now),
        )
    else:
        conn.execute(
            "INSERT INTO backup_status (server_id, last_ok_at, updated_at) VALUES (?, ?, ?) "
            f"ON CONFLICT (server_id) DO UPDATE SET {_newer('last_ok_at')}, "
            "updated_at = excluded.updated_at",
            (server_id, at, now),
        )


def status_row(conn: Conn, server_id: str) -> Any:
    return conn.execute(
        "SELECT last_stored_at, last_ok_at, last_failed_at, last_failed_reason "
        "FROM backup_status WHERE server_id = ?",
        (server_id,),
    ).fetchone()


def fleet_status_rows(conn: Conn, partner_id: int | None = None) -> list[Any]:
    """(server id, partner id, enrolled at, last stored, last ok, last failed at, its reason)
    of every server not revoked (or one partner's), in one query."""
    sql = (
        "SELECT s.id, s.partner_id, s.enrolled_at, b.last_stored_at, b.last_ok_at, "
        "b.last_failed_at, b.last_failed_reason FROM servers s "
        "LEFT JOIN backup_status b ON b.server_id = s.id WHERE s.revoked_at IS NULL"
    )
    if partner_id is None:
        return conn.execute(sql).fetchall()
    return conn.execute(sql + " AND s.partner_id = ?", (partner_id,)).fetchall()


def last_run(conn: Conn, server_id: str, outcomes: tuple[str, ...]) -> Any:
    marks = ", ".join("?" for _ in outcomes)
    return conn.execute(
        f"SELECT outcome, reason, started_at, finished_at, seq, backup_id FROM backup_runs "
        f"WHERE server_id = ? AND outcome IN ({marks}) ORDER BY finished_at DESC LIMIT 1",
        (server_id, *outcomes),
    ).fetchone()


def prune_runs(conn: Conn, before: float) -> int:
    cur = conn.execute("DELETE FROM backup_runs WHERE finished_at < ?", (before,))
    return int(cur.rowcount or 0)


_TIMED = (("backup_runs", "finished_at"), ("backup_stored_times", "stored_at"))
"""The backup tables with a time a late write can put inside a month that is over."""


def window_totals(conn: Conn, start: float, end: float) -> list[Any]:
    """``(count, sum of the times)`` within [start, end] of the backup runs finished and
    of the backups stored, in that order: a late run or upload in the window changes them."""
    return [
        conn.execute(
            f"SELECT count(*), sum({col}) FROM {table} WHERE {col} >= ? AND {col} <= ?",
            (start, end),
        ).fetchone()
        for table, col in _TIMED
    ]


# --- recipients -----------------------------------------------------------------------------


def add_recipient(
    conn: Conn, partner_id: int, recipient: str, role: str, label: str, now: float
) -> bool:
    """True when added, False when it was already there."""
    cur = conn.execute(
        "INSERT INTO backup_recipients (partner_id, recipient, role, label, created_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (partner_id, recipient) DO NOTHING",
        (partner_id, recipient, role, label, now),
    )
    return bool(cur.rowcount)


def remove_recipient(conn: Conn, partner_id: int, recipient: str) -> bool:
    cur = conn.execute(
        "DELETE FROM backup_recipients WHERE partner_id = ? AND recipient = ?",
        (partner_id, recipient),
    )
    return bool(cur.rowcount)


def put_recipient_list(
    conn: Conn, partner_id: int, signed: str, signer: str, signed_at: float, now: float
) -> bool:
    """Store the partner's signed recipient list unless a newer one is stored already
    (False then: agents refuse a list older than one they used)."""
    row = conn.execute(
        "SELECT signed_at FROM backup_recipient_lists WHERE partner_id = ?", (partner_id,)
    ).fetchone()
    if row is not None and float(row[0]) > signed_at:
        return False
    conn.execute("DELETE FROM backup_recipient_lists WHERE partner_id = ?", (partner_id,))
    conn.execute(
        "INSERT INTO backup_recipient_lists (partner_id, signed, signer, signed_at, added_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (partner_id, signed, signer, signed_at, now),
    )
    return True


def get_recipient_list(conn: Conn, partner_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT signed, signer, signed_at, added_at FROM backup_recipient_lists "
        "WHERE partner_id = ?",
        (partner_id,),
    ).fetchone()
    if row is None:
        return None
    return {"signed": row[0], "signer": row[1], "signed_at": row[2], "added_at": row[3]}


def list_recipients(conn: Conn, partner_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT recipient, role, label, created_at FROM backup_recipients WHERE partner_id = ? "
        "ORDER BY role DESC, created_at, recipient",
        (partner_id,),
    ).fetchall()
    return [{"recipient": r[0], "role": r[1], "label": r[2], "created_at": r[3]} for r in rows]


# --- policies -------------------------------------------------------------------------------

_POLICY_COLS = (
    "interval_s, backup_window, keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly"
)


def get_policy(conn: Conn, scope: str, scope_id: str) -> BackupPolicy | None:
    row = conn.execute(
        f"SELECT {_POLICY_COLS} FROM backup_policies WHERE scope = ? AND scope_id = ?",
        (scope, scope_id),
    ).fetchone()
    if row is None:
        return None
    return BackupPolicy(*(row[i] for i in range(7)))


def write_policy(
    conn: Conn,
    scope: str,
    scope_id: str,
    changes: BackupPolicy,
    now: float,
    override: str | None = None,
) -> None:
    """Merge the fields set in ``changes`` into the stored row and record ``override``
    (the reason for running below a contract's promise, None for none). Only
    :func:`collector.backups.promise.store_policy` calls this: it holds the policy to
    the contracts first."""
    current = get_policy(conn, scope, scope_id) or BackupPolicy()
    p = changes.over(current)
    conn.execute(
        f"INSERT INTO backup_policies (scope, scope_id, {_POLICY_COLS}, updated_at, "
        "contract_override) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (scope, scope_id) DO UPDATE SET "
        "interval_s = excluded.interval_s, backup_window = excluded.backup_window, "
        "keep_last = excluded.keep_last, keep_daily = excluded.keep_daily, "
        "keep_weekly = excluded.keep_weekly, keep_monthly = excluded.keep_monthly, "
        "keep_yearly = excluded.keep_yearly, updated_at = excluded.updated_at, "
        "contract_override = excluded.contract_override",
        (
            scope,
            scope_id,
            p.interval_s,
            p.window,
            p.keep_last,
            p.keep_daily,
            p.keep_weekly,
            p.keep_monthly,
            p.keep_yearly,
            now,
            override,
        ),
    )


def override_scopes(conn: Conn) -> list[tuple[str, str]]:
    """(scope, scope id) of every policy recorded with a contract override reason."""
    return [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT scope, scope_id FROM backup_policies WHERE contract_override IS NOT NULL"
        ).fetchall()
    ]


def get_override(conn: Conn, scope: str, scope_id: str) -> str | None:
    """The reason recorded for running this policy below a contract's promise, or None."""
    row = conn.execute(
        "SELECT contract_override FROM backup_policies WHERE scope = ? AND scope_id = ?",
        (scope, scope_id),
    ).fetchone()
    return None if row is None else row[0]


def policy_rows(conn: Conn) -> list[Any]:
    """Every stored policy row with its override reason, in (scope, scope id) order: what a
    cached fleet answer compares to tell a policy changed."""
    return conn.execute(
        f"SELECT scope, scope_id, {_POLICY_COLS}, contract_override FROM backup_policies "
        "ORDER BY scope, scope_id"
    ).fetchall()


def all_policies(
    conn: Conn,
) -> tuple[dict[tuple[str, str], BackupPolicy], dict[tuple[str, str], str]]:
    """Every stored policy by (scope, scope id), and the contract override reasons recorded
    beside them, in one query (for a whole fleet's status)."""
    policies: dict[tuple[str, str], BackupPolicy] = {}
    overrides: dict[tuple[str, str], str] = {}
    for row in conn.execute(
        f"SELECT scope, scope_id, {_POLICY_COLS}, contract_override FROM backup_policies"
    ).fetchall():
        policies[(row[0], row[1])] = BackupPolicy(*(row[i] for i in range(2, 9)))
        if row[9] is not None:
            overrides[(row[0], row[1])] = row[9]
    return policies, overrides


def policy_for_server(conn: Conn, server_id: str, partner_id: int | None = None) -> BackupPolicy:
    """The configured policy: server override, partner default, built-in defaults (before
    the contract's promise; :func:`collector.backups.promise.effective_for_server` adds it)."""
    if partner_id is None:
        srv = servers.brief(conn, server_id)
        partner_id = None if srv is None else int(srv["partner_id"])
    partner = None if partner_id is None else get_policy(conn, "partner", str(partner_id))
    return effective(partner, get_policy(conn, "server", server_id))


def now() -> float:
    return time.time()
