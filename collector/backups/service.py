"""Accepting backups: envelope checks, resumable uploads, verified storage, run outcomes.

This is the one place that does I/O for uploads (database, staged files, object store);
the rules it applies are small pure pieces beside it (envelope verification in
``protocol.backup_envelope``, policy and retention in this package).

The staged bytes wait in a :class:`collector.backups.staging.Staging`: a file on this
process's disk, or chunk objects in the object store that every process sharing the
database and the store can resume and complete (``collector.backups.staging_objects``).

Order on ``complete`` (kill -9 safe at every step):

1. the staged bytes as one local file; its size and SHA-256 (of the bytes read back, for
   chunks staged in the store) against the signed header;
2. the age object, then its envelope, put to the object store (atomic each);
3. one database write: sequence re-checked, the backup row inserted as verified, the
   server's last sequence raised, the upload row (and its chunk rows) deleted;
4. the staged bytes removed.

A crash before 3 leaves the upload row: the agent's retried ``complete`` (to this or
another process) puts the same keys again, or expiry deletes the objects with the row.
A crash after 3 leaves only orphan staged bytes, removed by the next cleanup. A backup
is listed only after 3.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from collector.backups import catalog
from collector.backups.catalog import Backup, StagedChunk, Upload
from collector.backups.errors import (
    BackupRefused,
    Conflict,
    Invalid,
    Mismatch,
    NotEntitled,
    StagingFull,
    StorageUnavailable,
    TooLarge,
    UploadNotFound,
)
from collector.backups.limits import BackupLimits
from collector.backups.objectstore import ObjectStore, ObjectStoreError
from collector.backups.staging import Assembled, Staging, open_staging
from collector.backups.status import backup_status
from collector.entitlements import EntitlementCheck, backup_entitled
from protocol import backup_envelope as be
from protocol.backup_messages import (
    RUN_OUTCOMES,
    BackupRun,
    BackupStored,
    UnchangedStored,
    UploadOpened,
    UploadState,
    reply_body,
)
from protocol.messages import decode, error_field

log = logging.getLogger(__name__)

MAX_REASON = 8192


def object_key(server_id: str, backup_id: str) -> str:
    return f"{server_id}/{backup_id}.age"


def envelope_key(server_id: str, backup_id: str) -> str:
    return f"{server_id}/{backup_id}.envelope.json"


class _Replay(Exception):
    def __init__(self, last: int) -> None:
        super().__init__(last)
        self.last = last


class _BaseMissing(Exception):
    pass


class _Superseded(Exception):
    pass


class _AlreadyStored(Exception):
    """Another process completed this very upload meanwhile."""


class _BaseDiffers(Exception):
    pass


def _replay_error(seq: int, last: int) -> BackupRefused:
    return Conflict(
        "sequence_replay",
        f"backup sequence {seq} is not newer than the last accepted ({last}): "
        "a replayed or rolled-back backup is refused",
        field="header.seq",
        extra={"last_seq": last},
    )


@dataclass
class _HashState:
    offset: int
    hasher: Any


class BackupService:
    """Everything the backup endpoints do, independent of HTTP: refusals are the domain
    errors of :mod:`collector.backups.errors`, which the handlers turn into answers."""

    def __init__(
        self,
        db: Any,
        store: ObjectStore,
        data_dir: Path,
        limits: BackupLimits | None = None,
        entitlement: EntitlementCheck | None = None,
        staging: Staging | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.staging = staging or open_staging("auto", store, Path(data_dir))
        self.uploads_dir = self.staging.uploads_dir
        self.limits = limits or BackupLimits()
        self.entitlement = entitlement or backup_entitled
        self._locks: dict[str, asyncio.Lock] = {}
        self._hash: dict[str, _HashState] = {}

    def _lock(self, upload_id: str) -> asyncio.Lock:
        lock = self._locks.get(upload_id)
        if lock is None:
            lock = self._locks[upload_id] = asyncio.Lock()
        return lock

    # -- POST /api/v1/agent/backups --------------------------------------------------------

    async def begin(self, server_id: str, public_key: bytes, body: bytes) -> tuple[bool, dict]:
        """Check an envelope; open (or resume) an upload, or record an unchanged run.

        Returns whether something was created (False: an upload in progress resumed)."""
        try:
            env = be.decode(body)
        except be.EnvelopeError as exc:
            raise Invalid("envelope_invalid", str(exc)) from None
        if env.header.server_id != server_id:
            raise Invalid(
                "envelope_invalid",
                "the envelope names another server than the one uploading it",
                field="header.server_id",
            )
        try:
            header = be.verify(env, public_key)
        except be.EnvelopeError as exc:
            raise Invalid("envelope_invalid", str(exc), field="signature") from None
        ent = await self.entitlement(self.db, server_id)
        if not ent.entitled:
            raise NotEntitled("backup_not_entitled", ent.reason or "online backup is not available")
        last = await self.db.read(lambda c: catalog.last_seq(c, server_id))
        if header.seq <= last:
            raise _replay_error(header.seq, last)
        if header.kind == "unchanged":
            return await self._unchanged(server_id, env, header)
        return await self._open_upload(server_id, env, header)

    async def _open_upload(
        self, server_id: str, env: be.Envelope, header: be.BackupHeader
    ) -> tuple[bool, dict]:
        size, sha256 = header.ciphertext_size, header.ciphertext_sha256
        self._check_announced(size, sha256)
        canon = be.canonical(header).decode()
        now = time.time()
        upload_id = catalog.new_id()
        candidate = Upload(
            id=upload_id,
            server_id=server_id,
            seq=header.seq,
            backup_id=upload_id,
            header=canon,
            envelope=be.encode(env).decode(),
            # A streamed upload's size and hash are known only at "complete": until then
            # the limit bounds it, and an empty hash marks it.
            size=self.limits.max_size if size is None else size,
            sha256="" if sha256 is None else sha256,
            received=0,
            created_at=now,
            updated_at=now,
        )

        try:
            up, resumed, dropped = await self.db.write(
                lambda conn: _open_or_resume(conn, candidate)
            )
        except _Replay as exc:
            raise _replay_error(header.seq, exc.last) from None
        await self._drop_uploads(server_id, dropped)
        body = reply_body(
            UploadOpened(
                upload_id=up.id,
                offset=up.received,
                chunk_size=self.limits.chunk_size,
                chunk_body_bound=True,
            )
        )
        return not resumed, body

    def _check_announced(self, size: int | None, sha256: str | None) -> None:
        """A full backup announces both its size and hash (or neither: streamed), and a
        size within this collector's limit."""
        streaming = sha256 is None and size is None
        if not streaming and (sha256 is None or size is None):
            raise Invalid(
                "envelope_invalid",
                "a full backup's header carries both ciphertext_sha256 and ciphertext_size, "
                "or neither (a streamed upload: the final envelope comes with 'complete')",
                field="header.ciphertext_sha256",
            )
        if size is not None and size > self.limits.max_size:
            raise TooLarge(
                "too_large",
                f"backup of {size} bytes is above this collector's limit of "
                f"{self.limits.max_size} bytes",
                field="header.ciphertext_size",
            )

    async def _drop_uploads(self, server_id: str, dropped: list[Upload]) -> None:
        """Delete what replaced uploads had staged."""
        for old in dropped:
            async with self._lock(old.id):  # after any complete of it in flight
                await self._delete_quietly(object_key(server_id, old.backup_id))
                await self._delete_quietly(envelope_key(server_id, old.backup_id))
                await self._discard_files(old)
            self._locks.pop(old.id, None)

    async def _unchanged(
        self, server_id: str, env: be.Envelope, header: be.BackupHeader
    ) -> tuple[bool, dict]:
        base_seq = header.base_seq
        if base_seq is None or base_seq >= header.seq:
            raise Invalid(
                "envelope_invalid",
                "an unchanged record must name an earlier backup (base_seq < seq)",
                field="header.base_seq",
            )
        backup_id = catalog.new_id()
        env_bytes = be.encode(env)
        ekey = envelope_key(server_id, backup_id)
        try:
            await self.store.put_bytes(ekey, env_bytes)
        except ObjectStoreError as exc:
            raise self._store_unavailable(exc) from None
        row = _unchanged_row(server_id, backup_id, header, env_bytes.decode(), ekey, time.time())
        try:
            await self.db.write(lambda conn: _record_unchanged(conn, row, base_seq))
        except _Replay as exc:
            await self._delete_quietly(ekey)
            raise _replay_error(header.seq, exc.last) from None
        except _BaseMissing:
            await self._delete_quietly(ekey)
            raise Conflict(
                "base_missing",
                f"backup {header.base_seq} of this server is not a stored, verified full "
                "backup; send a full backup",
                field="header.base_seq",
            ) from None
        except _BaseDiffers:
            await self._delete_quietly(ekey)
            raise Invalid(
                "envelope_invalid",
                f"content_digest differs from backup {header.base_seq}'s: not unchanged",
                field="header.content_digest",
            ) from None
        return True, reply_body(UnchangedStored(backup_id=backup_id, seq=header.seq))

    # -- uploads ---------------------------------------------------------------------------

    async def _get_upload(self, server_id: str, upload_id: str) -> Upload:
        up = await self.db.read(lambda c: catalog.get_upload(c, upload_id))
        if up is None or up.server_id != server_id:
            raise UploadNotFound("upload_not_found", "no upload in progress with this id")
        return up

    async def upload_state(self, server_id: str, upload_id: str) -> dict:
        async with self._lock(upload_id):
            up = await self._reconciled(await self._get_upload(server_id, upload_id))
        return reply_body(UploadState(offset=up.received, size=up.size))

    def _finalized(self, up: Upload, final_envelope: bytes, public_key: bytes | None) -> Upload:
        """The streamed upload ``up`` with the size, hash and envelope of its final header,
        which must verify and match the provisional header on everything else."""
        if not final_envelope or public_key is None:
            raise Invalid(
                "envelope_invalid",
                "a streamed upload is completed with its final signed envelope in the body",
            )
        try:
            env = be.decode(final_envelope)
            header = be.verify(env, public_key)
        except be.EnvelopeError as exc:
            raise Invalid("envelope_invalid", str(exc), field="signature") from None
        provisional = msgspec.json.decode(up.header.encode(), type=be.BackupHeader)
        same = ("kind", "server_id", "seq", "created_at", "recipients")
        if any(getattr(header, f) != getattr(provisional, f) for f in same):
            raise Invalid(
                "envelope_invalid",
                "the final envelope differs from the one that opened the upload "
                "(server, sequence, time, kind or recipients)",
            )
        if header.ciphertext_sha256 is None or header.ciphertext_size is None:
            raise Invalid(
                "envelope_invalid",
                "the final envelope must carry ciphertext_sha256 and ciphertext_size",
                field="header.ciphertext_sha256",
            )
        if header.ciphertext_size > self.limits.max_size:
            raise TooLarge("too_large", "backup above this collector's limit")
        return dataclasses.replace(
            up,
            size=header.ciphertext_size,
            sha256=header.ciphertext_sha256,
            envelope=be.encode(env).decode(),
            header=be.canonical(header).decode(),
        )

    async def _reconciled(self, up: Upload) -> Upload:
        """After a power loss the staged file may hold less than was acknowledged (chunks
        are not fsynced one by one): go back to what the file really holds."""
        size = await self.staging.held(up)
        if size >= up.received:
            return up
        log.warning(
            "upload %s: staged file holds %d of %d acknowledged bytes; resuming there",
            up.id,
            size,
            up.received,
        )
        self._hash.pop(up.id, None)
        await self.db.write(
            lambda c: catalog.set_received(c, up.id, up.received, size, time.time())
        )
        return dataclasses.replace(up, received=size)

    async def put_chunk(
        self, server_id: str, upload_id: str, offset: int, data: bytes | bytearray
    ) -> int:
        """Append one chunk at ``offset``; return the new acknowledged offset."""
        if len(data) > self.limits.chunk_size:
            raise TooLarge(
                "too_large",
                f"chunk of {len(data)} bytes is above the chunk size {self.limits.chunk_size}",
            )
        async with self._lock(upload_id):
            up = await self._reconciled(await self._get_upload(server_id, upload_id))
            if offset != up.received:
                raise Conflict(
                    "offset_mismatch",
                    f"upload is at offset {up.received}, not {offset}",
                    field="offset",
                    extra={"offset": up.received},
                )
            if offset + len(data) > up.size:
                raise TooLarge(
                    "too_large",
                    f"chunk goes past the signed size ({offset + len(data)} > {up.size} bytes)",
                )
            if not data:
                return offset
            await self._check_staging_quota(server_id, upload_id, len(data))
            new_offset = offset + len(data)
            state, chunk = await self._stage(upload_id, offset, data)
            moved = await self.db.write(lambda c: self._acknowledge(c, upload_id, chunk))
            if not moved:
                current = await self.db.read(lambda c: catalog.get_upload(c, upload_id))
                now_at = current.received if current is not None else 0
                raise Conflict(
                    "offset_mismatch",
                    f"upload moved to offset {now_at} meanwhile",
                    field="offset",
                    extra={"offset": now_at},
                )
            if state is not None:
                state.offset = new_offset
                self._hash[upload_id] = state
            return new_offset

    async def _check_staging_quota(self, server_id: str, upload_id: str, adding: int) -> None:
        staged = await self.db.read(catalog.staged_bytes)
        if staged + adding > self.limits.staging_quota:
            log.warning(
                "upload %s of %s refused: staged uploads hold %d bytes, quota %d",
                upload_id,
                server_id,
                staged,
                self.limits.staging_quota,
            )
            raise StagingFull(
                "staging_quota_exceeded",
                f"half-finished uploads on this collector already hold {staged} bytes "
                f"(quota {self.limits.staging_quota}); retry later",
                retry_after_s=3600,
            )

    def _acknowledge(self, conn: Any, upload_id: str, chunk: StagedChunk) -> bool:
        """Move the offset past ``chunk`` (and record where it is staged, when the staging
        keeps chunks in the store) in one write; False when another process moved it."""
        end = chunk.offset + chunk.size
        if not catalog.set_received(conn, upload_id, chunk.offset, end, time.time()):
            return False
        if self.staging.in_database:
            catalog.record_chunk(conn, upload_id, chunk)
        return True

    async def _stage(
        self, upload_id: str, offset: int, data: bytes | bytearray
    ) -> tuple[_HashState | None, StagedChunk]:
        """Stage the chunk; the running hash, when it was at ``offset``.

        SHA-256 of the chunk runs beside its write (both release the GIL). The in-memory
        state is only trusted when it is exactly at ``offset``; on any failure it is
        dropped and recomputed from the staged file on complete. Chunks staged in the
        store are hashed as they are read back on complete instead."""
        state = self._hash.pop(upload_id, None)
        if state is None and offset == 0 and not self.staging.in_database:
            state = _HashState(0, hashlib.sha256())
        if state is not None and state.offset != offset:
            state = None
        staged = asyncio.ensure_future(self.staging.write(upload_id, offset, data))
        jobs: list[Any] = [staged]
        if state is not None:
            jobs.append(asyncio.to_thread(state.hasher.update, data))
        try:
            await asyncio.gather(*jobs)
        except ObjectStoreError as exc:
            raise self._store_unavailable(exc) from None
        except (OSError, ValueError) as exc:
            log.error("cannot stage upload %s: %s", upload_id, exc)
            raise StorageUnavailable(
                "storage_unavailable", "the collector cannot store the chunk now"
            ) from None
        return state, staged.result()

    async def complete(
        self,
        server_id: str,
        upload_id: str,
        final_envelope: bytes = b"",
        public_key: bytes | None = None,
    ) -> dict:
        """Verify and store an upload. A streamed upload (opened with a header without
        hash and size) needs ``final_envelope``: the same header, now with the
        ciphertext's SHA-256 and size, signed again by the agent (``public_key``)."""
        async with self._lock(upload_id):
            up = await self.db.read(lambda c: catalog.get_upload(c, upload_id))
            if up is None or up.server_id != server_id:
                done = await self.db.read(lambda c: catalog.get_backup(c, server_id, upload_id))
                if done is not None:  # a retried complete whose answer was lost
                    return reply_body(BackupStored(backup_id=done.id, seq=done.seq))
                raise UploadNotFound("upload_not_found", "no upload in progress with this id")
            if up.sha256 == "":
                up = self._finalized(up, final_envelope, public_key)
            staged = await self._check_staged(up)
            row = await self._store_objects(up, staged.path)
            await self._record_stored(up, row)
            await self._discard_files(up)
        self._locks.pop(upload_id, None)
        log.info("backup %s of %s (seq %d, %d bytes) stored", row.id, server_id, row.seq, row.size)
        return reply_body(BackupStored(backup_id=row.id, seq=row.seq))

    async def _check_staged(self, up: Upload) -> Assembled:
        """Step 1 of ``complete``: the staged bytes as one local file, whose size and
        SHA-256 must be the signed header's; on a mismatch the upload is discarded."""
        if up.received != up.size:
            await self._discard(up)
            raise Mismatch(
                "size_mismatch",
                f"received {up.received} bytes, the signed header says {up.size}",
            )
        state = self._hash.get(up.id)
        known = state.hasher.hexdigest() if state and state.offset == up.size else None
        chunks: list[StagedChunk] = []
        if self.staging.in_database:
            chunks = await self.db.read(lambda c: catalog.upload_chunks(c, up.id))
        try:
            staged = await self.staging.assemble(up, chunks, known)
        except (ObjectStoreError, OSError) as exc:
            raise self._store_unavailable(exc) from None
        if staged.size != up.size:
            await self._discard(up)
            raise Mismatch(
                "size_mismatch",
                f"the staged bytes hold {staged.size} of the {up.size} bytes the signed "
                "header says",
            )
        if staged.sha256 != up.sha256:
            log.error(
                "upload %s of %s: staged bytes differ from the signed hash", up.id, up.server_id
            )
            await self._discard(up)
            raise Mismatch(
                "hash_mismatch",
                "the SHA-256 of the received bytes differs from the signed header",
            )
        return staged

    async def _store_objects(self, up: Upload, path: Path) -> Backup:
        """Step 2 of ``complete``: the age object, then its envelope, to the object store;
        returns the catalog row to record."""
        okey = object_key(up.server_id, up.backup_id)
        ekey = envelope_key(up.server_id, up.backup_id)
        try:
            await self.store.put_file(okey, path)
            await self.store.put_bytes(ekey, up.envelope.encode())
        except (ObjectStoreError, OSError) as exc:
            raise self._store_unavailable(exc) from None
        header = msgspec.json.decode(up.header.encode(), type=be.BackupHeader)
        now = time.time()
        return Backup(
            id=up.backup_id,
            server_id=up.server_id,
            seq=up.seq,
            kind="full",
            created_at=header.created_at,
            stored_at=now,
            size=up.size,
            sha256=up.sha256,
            base_seq=header.base_seq,
            content_digest=header.content_digest,
            envelope=up.envelope,
            object_key=okey,
            envelope_key=ekey,
            verified_at=now,
            checked_at=now,
            status="verified",
            status_reason="",
        )

    async def _record_stored(self, up: Upload, row: Backup) -> None:
        """Step 3 of ``complete``: one database write (sequence re-checked, backup row in,
        last sequence raised, upload row out); on a refusal the stored objects go."""
        assert row.object_key is not None and row.envelope_key is not None
        okey, ekey = row.object_key, row.envelope_key

        def record(conn: Any) -> None:
            if catalog.get_upload(conn, up.id) is None:
                if catalog.get_backup(conn, up.server_id, up.backup_id) is not None:
                    raise _AlreadyStored()
                raise _Superseded()
            last = catalog.last_seq(conn, up.server_id)
            if up.seq <= last:
                raise _Replay(last)
            catalog.insert_backup(conn, row)
            catalog.accept_seq(conn, up.server_id, up.seq, row.stored_at)
            catalog.delete_upload(conn, up.id)

        try:
            await self.db.write(record)
        except _AlreadyStored:
            # A retried complete reached another process while this one was storing:
            # the same objects under the same keys, catalogued once. Nothing to undo.
            log.info("upload %s was completed by another process meanwhile", up.id)
        except _Replay as exc:
            await self._delete_quietly(okey)
            await self._delete_quietly(ekey)
            await self._discard(up)
            raise _replay_error(up.seq, exc.last) from None
        except _Superseded:
            await self._delete_quietly(okey)
            await self._delete_quietly(ekey)
            await self._discard_files(up)
            raise Conflict(
                "upload_superseded",
                "a newer backup of this server was opened meanwhile; this upload was dropped",
            ) from None

    async def _discard(self, up: Upload) -> None:
        await self.db.write(lambda c: catalog.delete_upload(c, up.id))
        await self._discard_files(up)

    async def _discard_files(self, up: Upload) -> None:
        self._hash.pop(up.id, None)
        try:
            await self.staging.discard(up.id)
        except ObjectStoreError as exc:
            log.warning("could not remove staged chunks of %s (left for cleanup): %s", up.id, exc)

    async def _delete_quietly(self, key: str) -> None:
        try:
            await self.store.delete(key)
        except ObjectStoreError as exc:
            log.warning("could not delete %s (left for cleanup): %s", key, exc)

    @staticmethod
    def _store_unavailable(exc: Exception) -> BackupRefused:
        log.error("backup object store unavailable: %s", exc)
        return StorageUnavailable(
            "storage_unavailable",
            "the collector cannot reach its backup storage now; retry later",
            retry_after_s=60,
        )

    async def expire_uploads(self, now: float | None = None) -> int:
        """Drop uploads idle longer than the TTL (and any objects a crashed complete left),
        and staged files without an upload row."""
        now = time.time() if now is None else now
        stale = await self.db.read(
            lambda c: catalog.stale_uploads(c, now - self.limits.upload_ttl_s)
        )
        for up in stale:
            async with self._lock(up.id):
                await self._delete_quietly(object_key(up.server_id, up.backup_id))
                await self._delete_quietly(envelope_key(up.server_id, up.backup_id))
                await self._discard(up)
            self._locks.pop(up.id, None)
            log.info(
                "upload %s of %s expired after %.0f h idle",
                up.id,
                up.server_id,
                (now - up.updated_at) / 3600,
            )
        known = await self.db.read(catalog.upload_ids)
        chunks = await self.db.read(catalog.staged_chunk_keys)
        try:
            await self.staging.sweep(known, chunks, now)
        except ObjectStoreError as exc:
            log.warning("cannot sweep staged chunks now: %s", exc)
        return len(stale)

    async def sweep_own_files(self, now: float | None = None) -> int:
        """This process's staged files no upload row accounts for (every process runs
        it on its own disk; :meth:`expire_uploads` runs in one process)."""
        now = time.time() if now is None else now
        known = await self.db.read(catalog.upload_ids)
        return await self.staging.sweep_files(known, now)

    # -- runs and status -------------------------------------------------------------------

    async def record_run(self, server_id: str, body: bytes) -> str:
        try:
            run = decode(body, BackupRun)
        except msgspec.ValidationError as exc:
            raise Invalid("invalid_field", str(exc), field=error_field(exc)) from None
        except msgspec.DecodeError as exc:
            raise Invalid("invalid_json", str(exc)) from None
        if run.outcome not in RUN_OUTCOMES:
            raise Invalid(
                "invalid_field",
                'outcome must be "ok", "unchanged" or "failed"',
                field="outcome",
            )
        if run.outcome in ("ok", "unchanged") and run.backup_id is not None:
            # A success is only as good as the backup it names: one this collector never
            # stored would make the partner's status show a backup that does not exist.
            stored = await self.db.read(
                lambda c: catalog.get_backup(c, server_id, run.backup_id or "")
            )
            if stored is None or (run.seq is not None and stored.seq != run.seq):
                raise Mismatch(
                    "backup_unknown",
                    f"the run reports backup {run.backup_id[:64]!r} (seq {run.seq}) as stored, "
                    "but this collector holds no such backup of this server",
                    field="backup_id",
                )
        data = msgspec.structs.asdict(run)
        data["reason"] = run.reason[-MAX_REASON:]  # the tail: where a command's error is
        if run.backup_id is not None:
            data["backup_id"] = run.backup_id[:64]
        return await self.db.write(lambda c: catalog.insert_run(c, server_id, data, time.time()))

    async def status(self, server_id: str, now: float | None = None) -> dict:
        return await self.db.read(lambda c: backup_status(c, server_id, now))


def _open_or_resume(conn: Any, candidate: Upload) -> tuple[Upload, bool, list[Upload]]:
    """The upload of this backup already open (resumed), or ``candidate`` stored in place
    of the server's others (returned, to delete what they staged)."""
    last = catalog.last_seq(conn, candidate.server_id)
    if candidate.seq <= last:
        raise _Replay(last)
    others = catalog.uploads_of(conn, candidate.server_id)
    same = [u for u in others if u.seq == candidate.seq and u.header == candidate.header]
    if same:
        return same[0], True, []
    # One open upload per server: a new backup (or this seq re-made with other
    # content) replaces whatever the agent left unfinished, so staged bytes on
    # the collector stay bounded by max_size per server.
    for u in others:
        catalog.delete_upload(conn, u.id)
    catalog.insert_upload(conn, candidate)
    return candidate, False, others


def _unchanged_row(
    server_id: str,
    backup_id: str,
    header: be.BackupHeader,
    envelope: str,
    ekey: str,
    now: float,
) -> Backup:
    return Backup(
        id=backup_id,
        server_id=server_id,
        seq=header.seq,
        kind="unchanged",
        created_at=header.created_at,
        stored_at=now,
        size=0,
        sha256=None,
        base_seq=header.base_seq,
        content_digest=header.content_digest,
        envelope=envelope,
        object_key=None,
        envelope_key=ekey,
        verified_at=now,
        checked_at=None,
        status="verified",
        status_reason="",
    )


def _record_unchanged(conn: Any, row: Backup, base_seq: int) -> None:
    """Store an unchanged record whose base is a stored, verified full backup with the
    same content."""
    last = catalog.last_seq(conn, row.server_id)
    if row.seq <= last:
        raise _Replay(last)
    base = catalog.backup_by_seq(conn, row.server_id, base_seq)
    if base is None or base.kind != "full" or base.status != "verified":
        raise _BaseMissing()
    if row.content_digest and base.content_digest not in (None, row.content_digest):
        raise _BaseDiffers()
    catalog.insert_backup(conn, row)
    catalog.accept_seq(conn, row.server_id, row.seq, row.stored_at)
