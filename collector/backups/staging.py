"""Where the bytes of half-finished uploads wait until ``complete``: the :class:`Staging`
interface, its disk form, and the choice between the forms.

The database's ``backup_uploads.received`` is the authority on what was acknowledged in
either form; the staging holds the bytes.

- :class:`DiskStaging` (the default with the local object store):
  ``<data>/uploads/<upload_id>.part``, written chunk by chunk. Only the process whose
  data directory holds the file can resume or complete the upload.
- :class:`collector.backups.staging_objects.StoreStaging` (the default with S3): each
  acknowledged chunk is its own object in the configured store, recorded in the database
  with the offset move, so any collector process sharing the database and the store
  resumes or completes the upload.

Blocking file functions below run in a worker thread. Disk chunks are not fsynced one by
one: a killed collector loses nothing the kernel already has, and after a power loss the
upload resumes at what the staged file really holds (``BackupService`` reconciles the
offset with :meth:`Staging.held`). Anything in the file past the acknowledged offset
(written, never acknowledged) is cut off before the next chunk is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from collector.backups.catalog import StagedChunk, Upload
from collector.backups.limits import STAGING_MODES

if TYPE_CHECKING:
    from collector.backups.objectstore import ObjectStore

READ_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Assembled:
    """The staged bytes of an upload as one local file, ready for ``ObjectStore.put_file``:
    ``size`` bytes whose SHA-256 is ``sha256`` (of what the file really holds)."""

    path: Path
    size: int
    sha256: str


class Staging(ABC):
    """Staged bytes of uploads, keyed by upload id."""

    kind: str
    in_database: bool
    """Whether each chunk's ``StagedChunk`` row must be recorded with the offset move."""

    def __init__(self, uploads_dir: Path) -> None:
        self.uploads_dir = Path(uploads_dir)
        self.uploads_dir.mkdir(parents=True, exist_ok=True)

    def part(self, upload_id: str) -> Path:
        """The local file ``complete`` hands to the object store."""
        return part_path(self.uploads_dir, upload_id)

    @abstractmethod
    async def write(self, upload_id: str, offset: int, data: bytes | bytearray) -> StagedChunk:
        """Stage ``data`` at ``offset`` (before the offset is acknowledged). Raises
        ``OSError``/``ValueError`` (disk) or ``ObjectStoreError`` (store)."""

    @abstractmethod
    async def held(self, up: Upload) -> int:
        """How many of the acknowledged bytes the staging really holds."""

    @abstractmethod
    async def assemble(
        self, up: Upload, chunks: list[StagedChunk], sha256: str | None
    ) -> Assembled:
        """The first ``up.size`` staged bytes as one local file, with their size and
        SHA-256 (``sha256`` when the caller hashed exactly these bytes as they came)."""

    @abstractmethod
    async def discard(self, upload_id: str) -> None:
        """Remove what is staged for the upload (its row is gone already)."""

    @abstractmethod
    async def sweep(self, uploads: set[str], chunks: set[str], now: float) -> int:
        """Remove staged bytes no upload row accounts for, older than a grace period;
        how many items."""

    async def sweep_files(self, uploads: set[str], now: float) -> int:
        """Remove this process's own ``<data>/uploads`` files no upload row accounts for
        (a ``complete`` killed midway, an upload another process expired), older than a
        grace period; how many. Every process sweeps its own disk: with several
        processes on several machines, the one holding the maintenance lease cannot."""
        found = await asyncio.to_thread(orphans, self.uploads_dir, uploads, now=now)
        for orphan in found:
            await asyncio.to_thread(remove, orphan)
        return len(found)


class DiskStaging(Staging):
    """``<data>/uploads/<upload_id>.part``: one file per upload on this process's disk."""

    kind = "disk"
    in_database = False

    async def write(self, upload_id: str, offset: int, data: bytes | bytearray) -> StagedChunk:
        await asyncio.to_thread(write_chunk, self.part(upload_id), offset, data)
        return StagedChunk(offset, len(data), "")

    async def held(self, up: Upload) -> int:
        return await asyncio.to_thread(staged_size, self.part(up.id))

    async def assemble(
        self, up: Upload, chunks: list[StagedChunk], sha256: str | None
    ) -> Assembled:
        path = self.part(up.id)
        size = await asyncio.to_thread(staged_size, path)
        if size < up.size:
            return Assembled(path, size, "")
        await asyncio.to_thread(truncate_to, path, up.size)
        if sha256 is None:
            sha256 = await asyncio.to_thread(hash_prefix, path, up.size)
        return Assembled(path, up.size, sha256)

    async def discard(self, upload_id: str) -> None:
        await asyncio.to_thread(remove, self.part(upload_id))

    async def sweep(self, uploads: set[str], chunks: set[str], now: float) -> int:
        return await self.sweep_files(uploads, now)


def open_staging(mode: str, store: ObjectStore, data_dir: Path) -> Staging:
    """The staging ``[backup] staging`` names: ``disk``, ``store``, or ``auto`` (the
    store when it is S3, which every process can reach; the disk with the local store)."""
    from collector.backups.staging_objects import StoreStaging

    if mode not in STAGING_MODES:
        raise ValueError(f"staging must be one of {', '.join(STAGING_MODES)}, not {mode!r}")
    uploads_dir = Path(data_dir) / "uploads"
    if mode == "store" or (mode == "auto" and store.kind != "local"):
        return StoreStaging(store, uploads_dir)
    return DiskStaging(uploads_dir)


# --- files --------------------------------------------------------------------------------


def part_path(uploads_dir: Path, upload_id: str) -> Path:
    return uploads_dir / f"{upload_id}.part"


def write_chunk(path: Path, offset: int, data: bytes | bytearray, *, sync: bool = False) -> None:
    """Write ``data`` at ``offset`` (cutting the file there first); fsync only if ``sync``.

    A chunk need not be on disk before its offset is acknowledged: a killed collector
    loses nothing the kernel already has, and after a power loss the upload resumes at
    what the staged file really holds (``BackupService`` reconciles the offset with the
    file's size). The whole object is fsynced once when it is stored. Syncing each 8 MiB
    chunk cost 22-47 ms on this disk, about half of a 1 GiB upload."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_size < offset:
            raise ValueError(f"staged file {path.name} is shorter than the acknowledged offset")
        os.ftruncate(fd, offset)
        view = memoryview(data)
        pos = offset
        while view:
            n = os.pwrite(fd, view, pos)
            view = view[n:]
            pos += n
        if sync:
            os.fsync(fd)
        drop_behind(fd, offset, pos)
    finally:
        os.close(fd)


DROP_BEHIND_CHUNKS = 4
"""How many chunk lengths before the one just written ``drop_behind`` releases."""


def drop_behind(fd: int, start: int, end: int) -> None:
    """Start writing ``[start, end)`` of ``fd`` to disk and drop from the page cache what
    the chunks before it (``DROP_BEHIND_CHUNKS`` of its length) left there, written by now.

    A staged upload is written once and read once, on complete, where the hash is already
    known; keeping it cached only pushes out pages that other work uses. Each chunk's
    pages are freed while the next ones arrive, so the kernel hands the same pages out
    again instead of new ones: on the bench's virtual machine taking a page the process
    never held costs far more than copying into it (a 1 GiB upload: 10 s of the collector's
    CPU before, ``docs/benchmarks.md``). The data reaches the disk either way (``complete``
    fsyncs it); ``POSIX_FADV_DONTNEED`` only starts the writeback and drops clean pages,
    never unwritten ones. Where the call is missing or refused, nothing changes."""
    low = max(0, start - DROP_BEHIND_CHUNKS * (end - start))
    with contextlib.suppress(AttributeError, OSError):
        os.posix_fadvise(fd, low, end - low, os.POSIX_FADV_DONTNEED)


def staged_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def hash_prefix(path: Path, length: int) -> str:
    """SHA-256 of the first ``length`` bytes (recomputed after a restart)."""
    h = hashlib.sha256()
    left = length
    with open(path, "rb") as fh:
        while left > 0:
            data = fh.read(min(READ_CHUNK, left))
            if not data:
                break
            h.update(data)
            left -= len(data)
    return h.hexdigest()


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def orphans(
    uploads_dir: Path, known: set[str], min_age_s: float = 60.0, now: float | None = None
) -> list[Path]:
    """Staged files whose upload row is gone (completed or discarded while we crashed)."""
    if not uploads_dir.is_dir():
        return []
    cutoff = (time.time() if now is None else now) - min_age_s
    out = []
    for p in uploads_dir.glob("*.part"):
        if p.stem not in known:
            with contextlib.suppress(FileNotFoundError):
                if p.stat().st_mtime < cutoff:
                    out.append(p)
    return out


def truncate_to(path: Path, size: int) -> None:
    """Cut bytes written past the acknowledged end (never acknowledged, never hashed)."""
    if staged_size(path) > size:
        with open(path, "r+b") as fh:
            fh.truncate(size)
            os.fsync(fh.fileno())
