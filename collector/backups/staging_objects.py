"""Upload chunks staged in the object store, so any collector process can resume or
complete an upload another one started (another machine, another data directory).

Each chunk is put as its own object, ``_staging/<upload_id>/<offset>-<nonce>.chunk``
(atomic like every object), *before* the database moves the upload's ``received`` past
it and records the chunk's key in ``backup_upload_chunks`` in the same transaction. So:

- an acknowledged chunk's object exists; a chunk object without a row was never
  acknowledged (a process killed between the two, or a racing process whose offset move
  lost) and is swept after a grace period;
- the nonce keeps a losing racer from overwriting the winner's object at the same offset.

``complete`` reads the recorded chunks back in order into a local file in the process's
own ``<data>/uploads`` (deleted once stored), hashing what it reads: the SHA-256 checked
against the signed header is that of the bytes actually staged, so a chunk damaged or
lost in the store refuses the upload before anything is catalogued. That local file is
the only process-local state, and only for the duration of one ``complete``.

Chunks are single PUTs rather than parts of an S3 multipart upload: the agent's chunk
size may be configured below S3's 5 MiB part minimum, and parts of an unfinished
multipart upload cannot be read back to verify them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
from pathlib import Path
from typing import Any, BinaryIO

from collector.backups.catalog import StagedChunk, Upload
from collector.backups.objectstore import LocalObjectStore, ObjectNotFound, ObjectStore
from collector.backups.staging import Assembled, Staging, remove

log = logging.getLogger(__name__)

PREFIX = "_staging/"
SWEEP_GRACE_S = 3600.0
"""A chunk object no row accounts for is removed only this long after it was written
(well past any put-then-record gap of a live process)."""


def chunk_key(upload_id: str, offset: int) -> str:
    return f"{PREFIX}{upload_id}/{offset:015d}-{secrets.token_hex(4)}.chunk"


def _upload_of(key: str) -> str:
    return key[len(PREFIX) :].split("/", 1)[0]


class StoreStaging(Staging):
    """Chunks as objects in ``store``; the database lists the acknowledged ones."""

    kind = "store"
    in_database = True

    def __init__(self, store: ObjectStore, uploads_dir: Path) -> None:
        super().__init__(uploads_dir)
        self.store = store

    async def write(self, upload_id: str, offset: int, data: bytes | bytearray) -> StagedChunk:
        key = chunk_key(upload_id, offset)
        await self.store.put_bytes(key, bytes(data))  # sent over the network: one copy
        return StagedChunk(offset, len(data), key)

    async def held(self, up: Upload) -> int:
        # Every acknowledged chunk was stored whole before its offset was recorded.
        return up.received

    async def assemble(
        self, up: Upload, chunks: list[StagedChunk], sha256: str | None
    ) -> Assembled:
        """Read the recorded chunks back into ``<data>/uploads/<id>.part``. A gap, a
        missing or short chunk ends the file there (the caller sees the size fall short);
        the hash is always of the bytes read back (``sha256`` is not trusted here)."""
        path = self.part(up.id)
        hasher = hashlib.sha256()
        size = 0
        fh = await asyncio.to_thread(open, path, "wb")
        try:
            for chunk in chunks:
                if chunk.offset != size or size >= up.size:
                    break
                got = await self._copy(chunk, fh, hasher, up.size - size)
                size += got
                if got != chunk.size:
                    break
            await asyncio.to_thread(_flush, fh)
        finally:
            await asyncio.to_thread(fh.close)
        return Assembled(path, size, hasher.hexdigest())

    async def _copy(self, chunk: StagedChunk, fh: BinaryIO, hasher: Any, room: int) -> int:
        """Append one chunk object to ``fh``; the bytes copied (short when it is lost)."""
        copied = 0
        try:
            async for data in self.store.get(chunk.object_key):
                data = data[: max(0, min(len(data), chunk.size - copied, room - copied))]
                if not data:
                    break
                await asyncio.to_thread(_write_hashed, fh, hasher, data)
                copied += len(data)
        except ObjectNotFound:
            log.error("staged chunk %s is missing from the store", chunk.object_key)
        return copied

    async def discard(self, upload_id: str) -> None:
        await asyncio.to_thread(remove, self.part(upload_id))
        for info in await self.store.list(f"{PREFIX}{upload_id}/"):
            await self.store.delete(info.key)
        await self._drop_dir(upload_id)

    async def _drop_dir(self, upload_id: str) -> None:
        """The local store keeps directories: one per upload would pile up."""
        if isinstance(self.store, LocalObjectStore):
            with contextlib.suppress(OSError):  # not empty (a put in flight), or gone
                await asyncio.to_thread(os.rmdir, self.store.root / PREFIX / upload_id)

    async def sweep(self, uploads: set[str], chunks: set[str], now: float) -> int:
        """Chunk objects no row accounts for (upload gone, or never acknowledged), and
        local files of completes this process did not finish."""
        n = 0
        for info in await self.store.list(PREFIX):
            if info.key in chunks or info.modified > now - SWEEP_GRACE_S:
                continue
            await self.store.delete(info.key)
            n += 1
            if _upload_of(info.key) not in uploads:
                log.info("removed staged chunk %s of an upload that is gone", info.key)
                await self._drop_dir(_upload_of(info.key))
        return n + await self.sweep_files(uploads, now)


def _write_hashed(fh: BinaryIO, hasher: Any, data: bytes) -> None:
    fh.write(data)
    hasher.update(data)


def _flush(fh: BinaryIO) -> None:
    # No fsync: ``put_file`` syncs what it stores (the local store, this very inode).
    fh.flush()
