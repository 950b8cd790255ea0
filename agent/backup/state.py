"""What the agent remembers about its backups, in ``<state_dir>/backup/``.

- ``state.json``: last sequence number, last full backup and its content digest, the last
  run's outcome, run records the collector has not acknowledged yet, the settings last
  received (recipients, interval, window, entitlement).
- ``pending.json``: a full backup whose upload has started: its signed envelope, the
  archive file and the upload id/offset, so a restart (even after ``kill -9``) resumes the
  upload where it stopped.
- ``run.lock``: held (``flock``) while a run is in progress, across processes.
- ``statcache.json``: see ``sources.StatCache``.

Every file is replaced atomically (temporary file, rename), and fsynced except for the
per-chunk upload offset (see ``save_pending``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import msgspec

from agent import platform
from protocol.backup_messages import BackupRun


class BackupState(msgspec.Struct, kw_only=True):
    last_seq: int = 0
    """Highest sequence number the collector accepted from this agent."""
    last_full_seq: int | None = None
    last_full_backup_id: str | None = None
    last_digest: str | None = None
    """Content digest of the last stored full backup (what "unchanged" compares with)."""
    last_recipients: list[str] = []
    last_run_at: float | None = None
    last_outcome: str | None = None
    last_reason: str = ""
    last_success_at: float | None = None
    last_failure_at: float | None = None
    last_backup_id: str | None = None
    unreported: list[BackupRun] = []
    """Run records not yet acknowledged by the collector (sent with the next run)."""
    recipients: list[str] = []
    recipient_list: str = ""
    """The partner's signed recipient list as the collector last sent it."""
    interval_s: int = 0
    window: str = ""
    entitled: bool = True
    notice: str = ""


class PendingUpload(msgspec.Struct, kw_only=True):
    seq: int
    envelope: str
    """The encoded, signed envelope (sent again unchanged to resume)."""
    archive: str
    """File name of the archive inside the backup state directory."""
    size: int
    sha256: str
    content_digest: str
    recipients: list[str]
    files: int
    plaintext_size: int
    started_at: float
    upload_id: str | None = None
    offset: int = 0


def _write_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


class StateStore:
    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir) / "backup"
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._state_path = self.dir / "state.json"
        self._pending_path = self.dir / "pending.json"

    def load(self) -> BackupState:
        try:
            return msgspec.json.decode(self._state_path.read_bytes(), type=BackupState)
        except FileNotFoundError:
            return BackupState()
        except msgspec.MsgspecError:
            # A damaged state must not stop backups: start over (the collector refuses a
            # replayed sequence number, which the run reports).
            return BackupState()

    def save(self, state: BackupState) -> None:
        _write_atomic(self._state_path, msgspec.json.encode(state))

    def load_pending(self) -> PendingUpload | None:
        try:
            return msgspec.json.decode(self._pending_path.read_bytes(), type=PendingUpload)
        except (FileNotFoundError, msgspec.MsgspecError):
            return None

    def save_pending(self, pending: PendingUpload, durable: bool = True) -> None:
        """``durable=False`` for the offset after each chunk: it only saves a round trip
        after a crash (the collector's offset, returned when the upload is resumed, is
        the one that counts), and an fsync per chunk would flush the page cache's dirty
        data with it."""
        _write_atomic(self._pending_path, msgspec.json.encode(pending), durable)

    def clear_pending(self, pending: PendingUpload | None = None) -> None:
        if pending is not None:
            with contextlib.suppress(FileNotFoundError):
                (self.dir / pending.archive).unlink()
        with contextlib.suppress(FileNotFoundError):
            self._pending_path.unlink()

    def remove_stale_archives(self, pending: PendingUpload | None) -> None:
        """Archives left by a run killed while writing: all but ``pending``'s (the pending
        upload as just loaded)."""
        keep = pending.archive if pending is not None else None
        for path in self.dir.glob("backup-*.age*"):
            if path.name != keep:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    @contextlib.contextmanager
    def run_lock(self) -> Iterator[bool]:
        """A lock on ``run.lock``; yields False (without waiting) when another process
        holds it."""
        fd = os.open(self.dir / "run.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if not platform.lock_exclusive(fd):
                yield False
                return
            try:
                yield True
            finally:
                platform.unlock(fd)
        finally:
            os.close(fd)
