"""One backup run, end to end, and the agent's view of its backup schedule.

``BackupRunner.run_once``: pre-command -> sources -> cheap "unchanged?" check from the stat
cache -> archive (tar+zstd+age, streamed to a file in the state directory, in a worker
thread) -> signed envelope -> chunked, resumable upload -> run record to the collector.
Pure logic lives beside it (``schedule``, ``sources``, ``archive``); this module does the
I/O and keeps the state. A failure is logged once; the recovery after it is logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from agent.backup import upload
from agent.backup.chunk_feed import ChunkFeed, ChunkTee
from agent.backup.config import BackupSettings
from agent.backup.pre_command import run_pre_command
from agent.backup.recipient_pin import RecipientsRefused, approved_recipients, load_pin
from agent.backup.schedule import next_run_time
from agent.backup.state import BackupState, PendingUpload, StateStore
from protocol import backup_envelope
from protocol.backup_messages import BackupRun, BackupStored
from protocol.messages import AgentSettings

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agent.agent_key import AgentKey
    from protocol.backup_archive import ArchiveResult

# The archive stack (``agent.backup.sources``, ``agent.backup.archive``, zstd, the age
# ciphers) is imported by the functions that run a backup, not here: the daemon holds a
# runner from its start, and an agent between backups should not carry those modules.

log = logging.getLogger(__name__)

Outcome = Literal["ok", "unchanged", "failed", "busy"]
MAX_REASON = 1000
MAX_UNREPORTED = 50
RETRY_AFTER_FAILURE_S = 1800
"""After a failed run the next is due after at most this long (not a whole interval)."""
MAX_CHUNK = 8 << 20
STREAM_POLL_S = 0.05
"""How often the streamed upload looks for more of the archive being written."""
"""Largest upload chunk read into memory, whatever the collector offers (the protocol
allows any chunk up to ``chunk_size``). With the read-ahead and the HTTP client's copy
while it sends, the upload holds up to about three chunks: 24 MiB of the 64 MiB budget,
which the streaming archive stage leaves free (it peaks near +8 MiB)."""


@dataclass
class RunOutcome:
    outcome: Outcome
    reason: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    seq: int | None = None
    backup_id: str | None = None
    files: int | None = None
    bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _RunFailed(Exception):
    pass


class BackupRunner:
    """The agent's backups. The daemon calls ``apply`` with every ``AgentSettings``
    it receives, ``next_due`` to schedule, ``run_once`` to run; ``status()`` for
    ``vigil-agent status``."""

    retry_delays: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0)
    """Pauses between attempts when the upload is interrupted (then the run fails and the
    next run resumes the same upload)."""

    def __init__(
        self,
        settings: BackupSettings,
        state_dir: Path,
        signing_key: AgentKey | Ed25519PrivateKey,
        server_id: str,
        client: upload.BackupClient,
        agent_settings: AgentSettings | None = None,
    ) -> None:
        self.settings = settings
        self.server_id = server_id
        self._key = signing_key
        self._client = client
        self._state_root = Path(state_dir)
        self._store = StateStore(Path(state_dir))
        self._state = self._store.load()
        self._lock = asyncio.Lock()
        self._running = False
        self._failing = False
        self.streaming = False
        """Upload while writing the archive (when the collector says it accepts that)."""
        if agent_settings is not None:
            self.apply(agent_settings)

    # --- settings and schedule -----------------------------------------------------------

    def apply(self, agent_settings: AgentSettings) -> None:
        """Take the collector's latest settings (recipients, interval, window, entitlement)."""
        self.streaming = agent_settings.backup_streaming
        s = self._state
        new = (
            list(agent_settings.backup_recipients),
            agent_settings.backup_interval_s,
            agent_settings.backup_window,
            agent_settings.backup_entitled,
            agent_settings.notice,
            agent_settings.backup_recipient_list,
        )
        old = (s.recipients, s.interval_s, s.window, s.entitled, s.notice, s.recipient_list)
        if new != old:
            s.recipients, s.interval_s, s.window, s.entitled, s.notice, s.recipient_list = new
            self._store.save(s)

    def next_due(self, settings: AgentSettings, now: float) -> float | None:
        """When the next run is due (epoch seconds), None when backups are off for this
        server (no paths configured, interval 0, or not entitled)."""
        self.apply(settings)
        return self._due(now)

    def _due(
        self, now: float, pending: PendingUpload | None = None, *, pending_read: bool = False
    ) -> float | None:
        """``pending_read``: ``pending`` is what ``pending.json`` holds now (else it is read:
        ``vigil-agent backup --now`` in another process may have left one)."""
        s = self._state
        if not self.settings.enabled or not s.entitled or s.interval_s <= 0:
            return None
        if not pending_read:
            pending = self._store.load_pending()
        if pending is not None:
            return now  # an interrupted upload resumes now
        interval = s.interval_s
        if s.last_outcome == "failed":
            interval = min(interval, RETRY_AFTER_FAILURE_S)  # a failed run is retried sooner
        return next_run_time(
            interval_s=interval,
            window=s.window,
            server_id=self.server_id,
            last_run=s.last_run_at,
            now=now,
        )

    def status(self) -> dict[str, Any]:
        s = self._state
        pending = self._store.load_pending()
        return {
            "enabled": self.settings.enabled,
            "entitled": s.entitled,
            "notice": s.notice,
            "running": self._running,
            "interval_s": s.interval_s,
            "window": s.window,
            "recipients": len(s.recipients),
            "recovery_signer": _pinned(self._state_root),
            "last_run_at": s.last_run_at,
            "last_outcome": s.last_outcome,
            "last_reason": s.last_reason,
            "last_success_at": s.last_success_at,
            "last_failure_at": s.last_failure_at,
            "last_seq": s.last_seq,
            "last_full_seq": s.last_full_seq,
            "last_backup_id": s.last_backup_id,
            "unreported_runs": len(s.unreported),
            "pending_upload": (
                None
                if pending is None
                else {"seq": pending.seq, "offset": pending.offset, "size": pending.size}
            ),
            "next_due": self._due(time.time(), pending, pending_read=True),
        }

    # --- one run -------------------------------------------------------------------------

    async def run_once(self, progress: Callable[[str, int, int], None] | None = None) -> RunOutcome:
        """Run one backup now. Never two at once: in this process (``asyncio.Lock``) and
        across processes (``flock`` on a lock file); a run that finds one in progress
        returns ``busy`` and records nothing."""
        now = time.time()
        if self._lock.locked():
            return RunOutcome("busy", "a backup is already running", now, now)
        async with self._lock:
            with self._store.run_lock() as got:
                if not got:
                    return RunOutcome(
                        "busy", "a backup is already running (another process)", now, now
                    )
                self._running = True
                try:
                    return await self._run_recorded(progress)
                finally:
                    self._running = False

    async def _run_recorded(self, progress: Callable[[str, int, int], None] | None) -> RunOutcome:
        started = time.time()
        self._state = self._store.load()
        try:
            outcome = await self._run(progress, started)
        except _RunFailed as exc:
            outcome = RunOutcome("failed", str(exc)[-MAX_REASON:], started)
        except Exception as exc:  # the run must end with an outcome the collector hears of
            log.exception("backup run failed unexpectedly")
            outcome = RunOutcome("failed", f"internal error: {exc!r}"[-MAX_REASON:], started)
        outcome.finished_at = time.time()
        s = self._state
        s.last_run_at = started
        s.last_outcome, s.last_reason = outcome.outcome, outcome.reason
        if outcome.outcome == "failed":
            s.last_failure_at = outcome.finished_at
            if not self._failing:
                log.warning("backup failed: %s", outcome.reason)
            self._failing = True
        else:
            s.last_success_at = outcome.finished_at
            if self._failing:
                log.info("backup succeeded again (%s)", outcome.outcome)
            self._failing = False
        s.unreported.append(
            BackupRun(
                outcome=outcome.outcome,
                reason=outcome.reason,
                started_at=outcome.started_at,
                finished_at=outcome.finished_at,
                seq=outcome.seq,
                backup_id=outcome.backup_id,
                files=outcome.files,
                bytes=outcome.bytes,
            )
        )
        del s.unreported[:-MAX_UNREPORTED]
        self._store.save(s)
        await self._flush_reports()
        return outcome

    async def _flush_reports(self) -> None:
        """Send run records, oldest first; those the collector did not get stay queued."""
        s = self._state
        while s.unreported:
            try:
                await upload.report_run(self._client, msgspec.json.encode(s.unreported[0]))
            except upload.UploadUnavailable as exc:
                log.info("run record not delivered yet (%s); kept for the next run", exc)
                break
            except upload.UploadRefused as exc:
                log.warning("collector refused a run record: %s", exc)
            s.unreported.pop(0)
            self._store.save(s)

    async def _run(
        self, progress: Callable[[str, int, int], None] | None, started: float
    ) -> RunOutcome:
        """Resume an interrupted upload, or: recipients -> pre-command -> "unchanged?" from
        the stat cache -> archive (uploaded while written when the collector takes that)
        -> "unchanged?" from the archive's digest -> upload."""
        s = self._state
        if not self.settings.enabled:
            raise _RunFailed("no [backup] paths configured in the agent configuration")
        if not s.entitled:
            raise _RunFailed(f"backup not entitled: {s.notice or 'refused by the collector'}")
        pending = self._store.load_pending()
        if pending is not None:
            return await self._upload(pending, progress, started)
        self._store.remove_stale_archives(pending)
        recipients = self._recipients()
        await self._pre_command()
        cache_path = self._store.dir / "statcache.json"
        quick, files, total = await self._quick_digest(cache_path, recipients)
        same_keys = sorted(s.last_recipients) == sorted(recipients)
        if s.last_digest and s.last_full_seq and same_keys and quick == s.last_digest:
            return await self._unchanged(s.last_digest, files, started)
        seq = s.last_seq + 1
        path = self._store.dir / f"backup-{seq}.age.part"
        result, streamed = await self._archive(
            seq, started, recipients, path, cache_path, (files, total), progress
        )
        if result.content_digest == s.last_digest and s.last_full_seq and same_keys:
            path.unlink()
            return await self._unchanged(result.content_digest, result.files, started)
        return await self._send_full(seq, started, recipients, path, result, streamed, progress)

    def _recipients(self) -> list[str]:
        """The recipients to encrypt to (only those a pinned signer approves)."""
        s = self._state
        try:
            recipients, _ = approved_recipients(
                self._state_root, list(s.recipients), s.recipient_list
            )
        except RecipientsRefused as exc:
            raise _RunFailed(str(exc)) from None
        if not recipients:
            raise _RunFailed(
                "no recovery key: the partner has not added one on the collector "
                "(vigil-collector recovery-key add)"
            )
        return recipients

    async def _pre_command(self) -> None:
        if self.settings.pre_command:
            result = await run_pre_command(
                self.settings.pre_command, self.settings.pre_command_timeout
            )
            if not result.ok:
                raise _RunFailed(result.reason(self.settings.pre_command))

    async def _quick_digest(
        self, cache_path: Path, recipients: list[str]
    ) -> tuple[str | None, int, int]:
        """The stat cache's digest of the sources, their file count and total size."""
        from agent.backup.sources import SourceError, quick_digest

        try:
            quick, files, total, notes = await asyncio.to_thread(
                quick_digest, self.settings, cache_path, recipients
            )
        except SourceError as exc:
            raise _RunFailed(str(exc)) from None
        for note in notes:
            log.info("backup: %s", note)
        return quick, files, total

    async def _archive(
        self,
        seq: int,
        started: float,
        recipients: list[str],
        path: Path,
        cache_path: Path,
        totals: tuple[int, int],
        progress: Callable[[str, int, int], None] | None,
    ) -> tuple[ArchiveResult, str | None]:
        """Write the archive to ``path`` in a worker thread, streaming it to the collector
        meanwhile when it takes that; the id of a fully streamed upload, else None."""
        from agent.backup.sources import SourceError
        from protocol.backup_archive import AgeError

        feed = ChunkFeed(asyncio.get_running_loop(), MAX_CHUNK) if self.streaming else None
        writer = asyncio.ensure_future(
            asyncio.to_thread(
                _write_archive_file,
                path,
                self.settings,
                recipients,
                cache_path,
                feed,
                server_id=self.server_id,
                created_at=started,
                progress=progress,
                totals=totals,
                spool_dir=str(self._store.dir),
                threads=self.settings.threads,
            )
        )
        streamed = None
        if feed is not None:
            try:
                streamed = await self._stream(
                    seq, started, recipients, path, writer, feed, progress
                )
            finally:
                feed.detach()
        try:
            result = await writer
        except SourceError as exc:
            raise _RunFailed(str(exc)) from None
        except (OSError, AgeError) as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            raise _RunFailed(f"could not write the archive in {self._store.dir}: {exc}") from None
        return result, streamed

    async def _send_full(
        self,
        seq: int,
        started: float,
        recipients: list[str],
        path: Path,
        result: ArchiveResult,
        streamed: str | None,
        progress: Callable[[str, int, int], None] | None,
    ) -> RunOutcome:
        """Sign the final envelope; complete the streamed upload with it, or (when there is
        none or it failed) keep the archive as a pending upload and send it."""
        header = backup_envelope.BackupHeader(
            kind="full",
            server_id=self.server_id,
            seq=seq,
            created_at=started,
            ciphertext_sha256=result.sha256,
            ciphertext_size=result.size,
            content_digest=result.content_digest,
            recipients=recipients,
            files=result.files,
            plaintext_size=result.plaintext_size,
        )
        envelope = backup_envelope.encode(backup_envelope.sign(header, self._key))

        def pending_as(archive: str) -> PendingUpload:
            return PendingUpload(
                seq=seq,
                envelope=envelope.decode(),
                archive=archive,
                size=result.size,
                sha256=result.sha256,
                content_digest=result.content_digest,
                recipients=recipients,
                files=result.files,
                plaintext_size=result.plaintext_size,
                started_at=started,
            )

        if streamed is not None:
            try:
                reply = await self._complete_streamed(streamed, envelope)
            except (upload.UploadUnavailable, upload.UploadRefused) as exc:
                log.info("streamed upload not completed (%s); sending the archive again", exc)
            else:
                os.unlink(path)
                return self._succeeded(pending_as(path.name), reply, started)
        final_name = f"backup-{seq}.age"
        os.replace(path, self._store.dir / final_name)
        pending = pending_as(final_name)
        self._store.save_pending(pending)
        return await self._upload(pending, progress, started)

    async def _unchanged(self, digest: str, files: int, started: float) -> RunOutcome:
        s = self._state
        seq = s.last_seq + 1
        for attempt in (1, 2):
            header = backup_envelope.BackupHeader(
                kind="unchanged",
                server_id=self.server_id,
                seq=seq,
                created_at=started,
                content_digest=digest,
                base_seq=s.last_full_seq,
                recipients=list(s.last_recipients),
                files=files,
            )
            envelope = backup_envelope.encode(backup_envelope.sign(header, self._key))
            try:
                reply = await upload.record_unchanged(self._client, envelope)
                break
            except (upload.UploadRefused, upload.UploadUnavailable) as exc:
                hint = _last_seq_hint(exc)
                if attempt == 1 and hint is not None and hint >= seq:
                    seq = hint + 1  # numbering behind the collector's: once more after it
                    continue
                self._note_refusal(exc)
                raise _RunFailed(f"unchanged record not accepted: {exc}") from None
        s.last_seq = seq
        s.last_backup_id = reply.backup_id
        return RunOutcome(
            "unchanged",
            f"unchanged since backup {s.last_full_seq}",
            started,
            seq=seq,
            backup_id=s.last_backup_id,
            files=files,
        )

    def _renumber(self, pending: PendingUpload, seq: int) -> None:
        header = backup_envelope.decode(pending.envelope.encode()).header
        header.seq = seq
        pending.seq = seq
        pending.envelope = backup_envelope.encode(backup_envelope.sign(header, self._key)).decode()
        pending.upload_id, pending.offset = None, 0
        self._store.save_pending(pending)
        log.info("backup renumbered %d (the collector has accepted up to %d)", seq, seq - 1)

    def _note_refusal(self, exc: Exception) -> None:
        if not isinstance(exc, upload.UploadRefused):
            return
        if exc.error == "backup_not_entitled":
            self._state.entitled = False
            self._state.notice = exc.message
        elif exc.error == "sequence_replay":
            # Our numbering is behind the collector's (e.g. a state directory restored from
            # an old copy). If the refusal names the last accepted number, continue after
            # it from the next run on; otherwise skip one number per refused run.
            hint = exc.body.get("last_seq")
            if isinstance(hint, int) and not isinstance(hint, bool):
                self._state.last_seq = max(self._state.last_seq, hint)
            else:
                self._state.last_seq += 1

    async def _upload(
        self,
        pending: PendingUpload,
        progress: Callable[[str, int, int], None] | None,
        started: float,
    ) -> RunOutcome:
        """Send (or resume) a pending full backup; on refusal the pending upload is dropped,
        on network trouble it is kept for the next run."""
        path = self._store.dir / pending.archive
        if not path.exists() or path.stat().st_size != pending.size:
            self._store.clear_pending(pending)
            raise _RunFailed("the archive of the interrupted upload is gone; next run starts over")
        attempt = 0
        renumbered = False
        while True:
            try:
                reply = await self._send(pending, path, progress)
                break
            except upload.UploadUnavailable as exc:
                if attempt >= len(self.retry_delays):
                    raise _RunFailed(
                        f"upload interrupted at {pending.offset} of {pending.size} bytes "
                        f"({exc}); it resumes with the next run"
                    ) from None
                log.info(
                    "upload interrupted (%s); resuming in %ss", exc, self.retry_delays[attempt]
                )
                await asyncio.sleep(self.retry_delays[attempt])
                attempt += 1
            except upload.UploadRefused as exc:
                if exc.error == "sequence_replay" and pending.upload_id is not None:
                    # Only this agent makes its sequence numbers: the collector already
                    # stored this one (the answer to "complete" was lost before a restart).
                    reply = BackupStored(backup_id=None, seq=pending.seq)
                    break
                hint = _last_seq_hint(exc)
                if hint is not None and hint >= pending.seq and not renumbered:
                    # Our numbering is behind (state directory lost or restored, machine
                    # enrolled again): sign the same archive again after the collector's.
                    self._renumber(pending, hint + 1)
                    renumbered = True
                    continue
                self._note_refusal(exc)
                self._store.clear_pending(pending)
                raise _RunFailed(str(exc)) from None
        return self._succeeded(pending, reply, started)

    def _succeeded(self, pending: PendingUpload, reply: BackupStored, started: float) -> RunOutcome:
        """Record a full backup the collector stored."""
        s = self._state
        s.last_seq = max(s.last_seq, pending.seq)
        s.last_full_seq = pending.seq
        s.last_full_backup_id = reply.backup_id
        s.last_backup_id = reply.backup_id
        s.last_digest = pending.content_digest
        s.last_recipients = list(pending.recipients)
        self._store.save(s)
        self._store.clear_pending(pending)
        resumed = pending.started_at != started
        return RunOutcome(
            "ok",
            f"resumed upload of backup {pending.seq}" if resumed else "",
            started,
            seq=pending.seq,
            backup_id=reply.backup_id,
            files=pending.files,
            bytes=pending.size,
        )

    async def _complete_streamed(self, upload_id: str, envelope: bytes) -> BackupStored:
        """``complete`` with the final envelope, retried while the collector is away (a
        restart of the collector must not cost the whole upload)."""
        attempt = 0
        while True:
            try:
                return await upload.complete(self._client, upload_id, envelope)
            except upload.UploadUnavailable as exc:
                if attempt >= len(self.retry_delays):
                    raise
                delay = self.retry_delays[attempt]
                attempt += 1
                log.info("completing the streamed upload failed (%s); again in %ss", exc, delay)
                await asyncio.sleep(delay)

    async def _stream(
        self,
        seq: int,
        started: float,
        recipients: list[str],
        path: Path,
        writer: asyncio.Future[ArchiveResult],
        feed: ChunkFeed,
        progress: Callable[[str, int, int], None] | None,
    ) -> str | None:
        """Upload the archive while it is being written (the upload would otherwise start
        only once it is complete, and take about as long again). The upload is opened with
        a signed header without hash and size; the final envelope comes with "complete".
        Returns the upload id once every byte is sent, or None after any trouble: the run
        then goes on as before, sending the finished archive with its final envelope (the
        collector drops the unfinished streamed upload when that one opens)."""
        head = backup_envelope.BackupHeader(
            kind="full",
            server_id=self.server_id,
            seq=seq,
            created_at=started,
            recipients=recipients,
        )
        provisional = backup_envelope.encode(backup_envelope.sign(head, self._key))
        try:
            opened = await upload.start_upload(self._client, provisional)
            chunk = min(opened.chunk_size or 8 << 20, MAX_CHUNK)
            send = _ChunkSender(self._client, opened.upload_id, opened.chunk_body_bound)
            return await self._stream_chunks(
                send, opened.offset, chunk, path, writer, feed, progress
            )
        except Exception as exc:  # any trouble: the finished archive is sent the usual way
            log.info(
                "streaming the backup while it is written failed (%s); "
                "it is sent once complete instead",
                exc,
            )
            return None

    async def _stream_chunks(
        self,
        send: _ChunkSender,
        offset: int,
        chunk: int,
        path: Path,
        writer: asyncio.Future[ArchiveResult],
        feed: ChunkFeed,
        progress: Callable[[str, int, int], None] | None,
    ) -> str | None:
        """Send the archive from ``offset`` as it grows, a whole chunk at a time until the
        writer is done: from the feed (what the writer just encrypted), else read from the
        file. The upload id once every byte is sent, None if the writer failed."""
        attempt = 0
        held, held_at = memoryview(b""), 0
        while True:
            if not held_at <= offset < held_at + len(held):
                got = await feed.take(offset, STREAM_POLL_S)
                held, held_at = memoryview(got if got is not None else b""), offset
            done = writer.done()
            if held:
                data: bytes | memoryview = held[offset - held_at : offset - held_at + chunk]
            else:
                size = _written(path)
                if done:
                    if writer.exception() is not None:
                        return None
                    size = writer.result().size
                if offset >= size and done:
                    return send.upload_id
                if size - offset < chunk and not done:
                    await asyncio.sleep(STREAM_POLL_S)
                    continue
                data = await asyncio.to_thread(_read_at, path, offset, min(chunk, size - offset))
            try:
                offset = await send(offset, data)
                attempt = 0
            except upload.UploadUnavailable as exc:
                if attempt >= len(self.retry_delays):
                    raise
                log.info(
                    "streamed upload interrupted (%s); resuming in %ss",
                    exc,
                    self.retry_delays[attempt],
                )
                await asyncio.sleep(self.retry_delays[attempt])
                attempt += 1
                with contextlib.suppress(upload.UploadUnavailable):
                    offset = await upload.upload_offset(self._client, send.upload_id)
                continue
            if progress and done:
                progress("upload", offset, writer.result().size)

    async def _send(
        self,
        pending: PendingUpload,
        path: Path,
        progress: Callable[[str, int, int], None] | None,
    ) -> BackupStored:
        start = await upload.start_upload(self._client, pending.envelope.encode())
        upload_id = start.upload_id
        chunk = min(start.chunk_size or 8 << 20, MAX_CHUNK)
        offset = start.offset
        if upload_id != pending.upload_id or offset != pending.offset:
            pending.upload_id, pending.offset = upload_id, offset
            self._store.save_pending(pending)
        send = _ChunkSender(self._client, upload_id, start.chunk_body_bound)
        ahead: asyncio.Future[bytes] | None = None
        ahead_at = -1
        try:
            while offset < pending.size:
                # The next chunk is read while this one is on the wire (one chunk ahead).
                if ahead is not None and ahead_at == offset:
                    data = await ahead
                else:
                    data = await asyncio.to_thread(_read_at, path, offset, chunk)
                ahead_at = offset + len(data)
                ahead = (
                    asyncio.ensure_future(asyncio.to_thread(_read_at, path, ahead_at, chunk))
                    if ahead_at < pending.size
                    else None
                )
                try:
                    offset = await send(offset, data)
                except upload.UploadUnavailable:
                    # Ask where the collector is before the next attempt resumes.
                    with contextlib.suppress(upload.UploadUnavailable, upload.UploadRefused):
                        pending.offset = await upload.upload_offset(self._client, upload_id)
                        self._store.save_pending(pending)
                    raise
                if not 0 <= offset <= pending.size:
                    raise upload.UploadRefused(409, "offset_invalid", f"offset {offset}")
                pending.offset = offset
                self._store.save_pending(pending, durable=False)
                if progress:
                    progress("upload", offset, pending.size)
        finally:
            if ahead is not None:
                ahead.cancel()
        return await upload.complete(self._client, upload_id)


class _ChunkSender:
    """``put_chunk`` for one upload; signed with ``BODY_IN_ENVELOPE`` when the collector
    takes that (no SHA-256 pass over the chunk for its HMAC), else over the body's hash."""

    def __init__(self, client: upload.BackupClient, upload_id: str, bound: bool) -> None:
        self._client = client
        self.upload_id = upload_id
        self._bound = bound

    async def __call__(self, offset: int, data: bytes | bytearray | memoryview) -> int:
        if not self._bound:
            return await upload.put_chunk(self._client, self.upload_id, offset, bytes(data))
        return await upload.put_chunk(self._client, self.upload_id, offset, data, body_bound=True)


def _pinned(state_dir: Path) -> str | None:
    """The pinned partner signing-key fingerprint, for status (None: none pinned)."""
    try:
        pin = load_pin(state_dir)
    except RecipientsRefused as exc:
        return f"unreadable: {exc}"
    return pin.fingerprint if pin else None


def _last_seq_hint(exc: Exception) -> int | None:
    """The collector's last accepted sequence number, from a ``sequence_replay`` refusal."""
    if not isinstance(exc, upload.UploadRefused) or exc.error != "sequence_replay":
        return None
    hint = exc.body.get("last_seq")
    return hint if isinstance(hint, int) and not isinstance(hint, bool) else None


def _write_archive_file(
    path: Path,
    settings: BackupSettings,
    recipients: list[str],
    cache_path: Path,
    feed: ChunkFeed | None,
    **kw: Any,
) -> ArchiveResult:
    # Not fsynced on purpose: after a crash a damaged archive is caught by the collector's
    # SHA-256 check on "complete" (422), and the next run starts over; fsyncing 1 GiB
    # costs seconds on every run.
    from agent.backup.archive import write_archive
    from agent.backup.archive_file import ArchiveFile
    from agent.backup.sources import StatCache, resolve_roots, walk_sources

    roots, notes = resolve_roots(settings)
    try:
        with StatCache(cache_path) as cache, ArchiveFile(path) as written:
            out = ChunkTee(written, feed, MAX_CHUNK)
            result = write_archive(
                walk_sources(settings, roots, notes), out, recipients, cache=cache, **kw
            )
            out.finish()
            written.close()  # the last write error, if any, before the cache is committed
            cache.commit()
    finally:
        if feed is not None:
            feed.end()  # also after a failure: the uploader stops waiting for chunks
    return result


def _written(path: Path) -> int:
    """Bytes of the archive written so far (0 before the writer opened it)."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _read_at(path: Path, offset: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(size)


def load_state(state_dir: Path) -> BackupState:
    """The persisted backup state (for ``vigil-agent status`` without a runner)."""
    return StateStore(Path(state_dir)).load()
