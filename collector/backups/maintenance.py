"""Pruning by retention policy, and the integrity pass that re-reads stored objects.

Pruning is kill -9 safe in any order: rows chosen for removal are first marked
``pruning`` in one database write (no longer listed, no longer a valid base), then their
objects are deleted (deleting a missing object is not an error), then the rows. A crash
anywhere leaves ``pruning`` rows that the next run finishes.

The integrity pass streams each stored object back from the store and checks its size
and SHA-256 against the catalog (restic's ``check --read-data``): bit rot, a truncated
file or a lost object is found, marked ``corrupt`` and reported before a restore needs it.
A transient store error is reported but never marks a backup corrupt.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from collector.backups import catalog
from collector.backups.catalog import Backup
from collector.backups.objectstore import ObjectNotFound, ObjectStore, ObjectStoreError
from collector.backups.promise import effective_for_server
from collector.backups.retention import UTC, plan_retention
from collector.notify import sources as notify_sources

log = logging.getLogger(__name__)


@dataclass
class PruneReport:
    dry_run: bool
    kept: int = 0
    removed: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _entry(b: Backup, **more: Any) -> dict[str, Any]:
    return {"server_id": b.server_id, "backup_id": b.id, "seq": b.seq, "kind": b.kind, **more}


async def prune(
    db: Any, store: ObjectStore, *, dry_run: bool = False, tz: dt.tzinfo = UTC
) -> PruneReport:
    """Apply every server's effective retention policy."""
    report = PruneReport(dry_run=dry_run)
    servers = await db.read(catalog.servers_with_backups)
    for server_id in servers:

        def choose(conn: Any, server_id: str = server_id) -> tuple[int, list[Backup]]:
            rows = catalog.list_backups(conn, server_id, ("verified", "corrupt"))
            policy = effective_for_server(conn, server_id).policy.retention()
            plan = plan_retention([b.snapshot() for b in rows], policy, tz)
            gone = {s.id for s in plan.remove}
            if not dry_run:
                for b in rows:
                    if b.id in gone:
                        catalog.set_status(conn, b.id, "pruning", "retention policy")
            return len(plan.keep), [b for b in rows if b.id in gone]

        kept, chosen = await (db.read if dry_run else db.write)(choose)
        report.kept += kept
        if dry_run:
            report.removed.extend(_entry(b) for b in chosen)
    if dry_run:
        return report
    pending = await db.read(lambda c: catalog.all_backups(c, ("pruning",)))
    for b in pending:
        try:
            for key in (b.object_key, b.envelope_key):
                if key:
                    await store.delete(key)
        except ObjectStoreError as exc:
            log.warning("prune: cannot delete objects of backup %s: %s", b.id, exc)
            report.failed.append(_entry(b, reason=str(exc)))
            continue
        await db.write(lambda c, bid=b.id: catalog.delete_backup(c, bid))
        report.removed.append(_entry(b))
    if report.removed:
        log.info("prune: removed %d backups, kept %d", len(report.removed), report.kept)
    return report


@dataclass
class IntegrityReport:
    checked: int = 0
    ok: int = 0
    corrupt: list[dict[str, Any]] = field(default_factory=list)
    repaired: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def _digest(store: ObjectStore, key: str) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    async for chunk in store.get(key):
        h.update(chunk)
        size += len(chunk)
    return size, h.hexdigest()


async def _problems(store: ObjectStore, b: Backup) -> list[str]:
    """What is wrong with one backup's stored objects (raises ObjectStoreError if unsure)."""
    problems: list[str] = []
    if b.kind == "full":
        if not b.object_key:
            problems.append("catalog has no object key")
        else:
            try:
                size, digest = await _digest(store, b.object_key)
            except ObjectNotFound:
                problems.append("object missing")
            else:
                if size != b.size:
                    problems.append(f"object size {size} != {b.size}")
                elif digest != b.sha256:
                    problems.append("object SHA-256 differs from the signed header")
    if b.envelope_key:
        try:
            stored = await store.get_bytes(b.envelope_key)
        except ObjectNotFound:
            problems.append("envelope missing")
        else:
            if stored != b.envelope.encode():
                problems.append("envelope differs from the catalog's copy")
    return problems


def _mark_corrupt(conn: Any, b: Backup, reason: str, now: float) -> None:
    """The status and its notification event, in one write."""
    catalog.set_status(conn, b.id, "corrupt", reason, checked_at=now)
    if b.status != "corrupt":
        notify_sources.backup_damaged(conn, b.server_id, b.id, b.seq, reason, now)


def _mark_verified(conn: Any, b: Backup, now: float) -> None:
    catalog.set_status(conn, b.id, "verified", "", checked_at=now)
    if b.status == "corrupt":
        notify_sources.backup_repaired(conn, b.server_id, b.id, now)


async def check_integrity(
    db: Any, store: ObjectStore, *, older_than_s: float = 0.0, now: float | None = None
) -> IntegrityReport:
    """Re-read stored backups not checked in the last ``older_than_s`` seconds (0 = all)."""
    now = time.time() if now is None else now
    rows = await db.read(lambda c: catalog.all_backups(c, ("verified", "corrupt")))
    report = IntegrityReport()
    for b in rows:
        if older_than_s and b.checked_at is not None and b.checked_at > now - older_than_s:
            continue
        report.checked += 1
        try:
            problems = await _problems(store, b)
        except ObjectStoreError as exc:
            log.warning("integrity: cannot read backup %s of %s: %s", b.id, b.server_id, exc)
            report.errors.append(_entry(b, reason=str(exc)))
            continue
        if problems:
            reason = "; ".join(problems)
            report.corrupt.append(_entry(b, reason=reason))
            if b.status != "corrupt":
                log.error(
                    "integrity: backup %s of %s (seq %d) is damaged: %s",
                    b.id,
                    b.server_id,
                    b.seq,
                    reason,
                )
            await db.write(lambda c, b=b, r=reason: _mark_corrupt(c, b, r, now))
        else:
            report.ok += 1
            if b.status == "corrupt":
                report.repaired.append(_entry(b))
                log.info("integrity: backup %s of %s reads back correctly again", b.id, b.server_id)
            await db.write(lambda c, b=b: _mark_verified(c, b, now))
    return report
