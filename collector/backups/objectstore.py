"""Where backup objects live: a local directory (default) or an S3-compatible store.

Both implement :class:`ObjectStore`. Every operation is ``async``; blocking work (file
I/O, boto3 calls) runs in a worker thread so the event loop never waits on a disk or
the network. An object becomes visible whole or not at all:

- local: written to a hidden temporary file in the same directory, fsynced, renamed
  over the final name, then the directory is fsynced. Listings skip temporary files.
- S3: a single PUT or a multipart upload; S3 makes the object visible only when the
  PUT (or CompleteMultipartUpload) succeeds.

The collector never holds a key able to decrypt what it stores here.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import secrets
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from collector.config import ConfigError
from collector.sizes import parse_bytes

READ_CHUNK = 1024 * 1024
_SEGMENT = re.compile(r"^[A-Za-z0-9_:-][A-Za-z0-9._:-]*$")
_TMP_PREFIX = ".tmp-"
_SOURCE = "[backup.storage]"


class ObjectStoreError(RuntimeError):
    """The store could not complete an operation (disk, network, permissions)."""


class ObjectNotFound(ObjectStoreError):
    """No object under that key."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: float


def check_key(key: str) -> str:
    """Keys are ``/``-separated segments of ``[A-Za-z0-9._:-]``, none starting with a dot
    (no ``..``, no absolute path, no hidden temporary names)."""
    parts = key.split("/")
    if not key or any(not _SEGMENT.match(p) for p in parts):
        raise ValueError(f"invalid object key {key!r}")
    return key


class ObjectStore(ABC):
    """The operations the backup catalog needs from a store."""

    kind: str

    @abstractmethod
    async def put_file(self, key: str, path: Path) -> ObjectInfo:
        """Store the local file ``path`` under ``key`` (streamed, flat memory). The caller
        must not modify ``path`` afterwards (the local store may hard-link it)."""

    @abstractmethod
    async def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        """Store a small object."""

    @abstractmethod
    def get(
        self, key: str, start: int = 0, length: int | None = None, chunk_size: int = READ_CHUNK
    ) -> AsyncGenerator[bytes, None]:
        """Stream ``length`` bytes (all if None) from ``start``; raises ObjectNotFound."""

    async def get_bytes(self, key: str) -> bytes:
        return b"".join([chunk async for chunk in self.get(key)])

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""

    @abstractmethod
    async def stat(self, key: str) -> ObjectInfo | None:
        """Size and time of ``key``, None when it does not exist."""

    async def exists(self, key: str) -> bool:
        return await self.stat(key) is not None

    @abstractmethod
    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Every stored object whose key starts with ``prefix``, sorted by key."""

    async def close(self) -> None:  # noqa: B027 - optional hook, nothing to release locally
        """Release connections."""

    @abstractmethod
    async def probe(self) -> None:
        """Raise ObjectStoreError unless the store answers now (``/healthz``)."""

    async def sweep(self) -> int:
        """Remove leftovers of interrupted writes; how many (a periodic clean-up)."""
        return 0


# --- local directory ------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_dropping(fh: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes from ``fh``; what was read before (and these bytes, copied out)
    leaves the page cache. An object is streamed once to whoever downloads it (a restore,
    a verify, the integrity pass): pages the kernel can hand out again cost far less than
    fresh ones (``collector.backups.staging.drop_behind``)."""
    at = fh.tell()
    data = fh.read(n)
    low = max(0, at - 4 * n)
    with contextlib.suppress(AttributeError, OSError):
        os.posix_fadvise(fh.fileno(), low, at + len(data) - low, os.POSIX_FADV_DONTNEED)
    return data


class LocalObjectStore(ObjectStore):
    """Objects as files under ``root``; the key is the relative path."""

    kind = "local"

    def __init__(self, root: Path, *, stale_tmp_s: float = 3600.0) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        st = os.stat(self.root)
        self._root_id = (st.st_dev, st.st_ino)
        self.stale_tmp_s = stale_tmp_s
        self._remove_stale_tmp(stale_tmp_s)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _remove_stale_tmp(self, older_than_s: float) -> int:
        """Temporary files a killed process left behind (never visible as objects)."""
        cutoff = time.time() - older_than_s
        n = 0
        for tmp in self.root.rglob(f"{_TMP_PREFIX}*"):
            with contextlib.suppress(OSError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    n += 1
        return n

    def _commit(self, tmp: Path, final: Path) -> ObjectInfo:
        os.replace(tmp, final)
        # rename() between two links of one file does nothing and succeeds: a retried
        # put_file of the same staged file (its hard link already the object) would
        # leave the temporary link behind, holding the object's blocks after a prune.
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        _fsync_dir(final.parent)
        st = final.stat()
        return ObjectInfo(str(final.relative_to(self.root).as_posix()), st.st_size, st.st_mtime)

    def _tmp_for(self, final: Path) -> Path:
        final.parent.mkdir(parents=True, exist_ok=True)
        return final.parent / f"{_TMP_PREFIX}{secrets.token_hex(8)}-{final.name}"

    def _put_file_sync(self, key: str, path: Path) -> ObjectInfo:
        final = self._path(key)
        tmp = self._tmp_for(final)
        try:
            try:
                # Same filesystem: a hard link costs no copy of a multi-GiB object.
                os.link(path, tmp)
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                with open(path, "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, READ_CHUNK)
                    dst.flush()
                    os.fsync(dst.fileno())
            return self._commit(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def _put_bytes_sync(self, key: str, data: bytes) -> ObjectInfo:
        final = self._path(key)
        tmp = self._tmp_for(final)
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            return self._commit(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    async def put_file(self, key: str, path: Path) -> ObjectInfo:
        try:
            return await asyncio.to_thread(self._put_file_sync, key, Path(path))
        except OSError as exc:
            raise ObjectStoreError(f"cannot store {key}: {exc}") from exc

    async def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        try:
            return await asyncio.to_thread(self._put_bytes_sync, key, data)
        except OSError as exc:
            raise ObjectStoreError(f"cannot store {key}: {exc}") from exc

    async def get(
        self, key: str, start: int = 0, length: int | None = None, chunk_size: int = READ_CHUNK
    ) -> AsyncGenerator[bytes, None]:
        path = self._path(key)
        try:
            fh = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise ObjectStoreError(f"cannot read {key}: {exc}") from exc
        try:
            if start:
                await asyncio.to_thread(fh.seek, start)
            left = length
            while left is None or left > 0:
                n = chunk_size if left is None else min(chunk_size, left)
                data = await asyncio.to_thread(_read_dropping, fh, n)
                if not data:
                    break
                if left is not None:
                    left -= len(data)
                yield data
        finally:
            await asyncio.to_thread(fh.close)

    def _delete_sync(self, key: str) -> None:
        path = self._path(key)
        # Temporary links of this object (an interrupted write of it) go with it: nothing
        # may keep a deleted object's blocks on the disk.
        for tmp in path.parent.glob(f"{_TMP_PREFIX}*-{path.name}"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(path.parent)

    async def delete(self, key: str) -> None:
        try:
            await asyncio.to_thread(self._delete_sync, key)
        except OSError as exc:
            raise ObjectStoreError(f"cannot delete {key}: {exc}") from exc

    def _probe_sync(self) -> None:
        st = os.stat(self.root)
        if (st.st_dev, st.st_ino) != self._root_id:
            raise ObjectStoreError(f"{self.root} was replaced after the collector opened it")
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise ObjectStoreError(f"{self.root} is not writable")

    async def probe(self) -> None:
        try:
            await asyncio.to_thread(self._probe_sync)
        except FileNotFoundError:
            raise ObjectStoreError(
                f"{self.root} was deleted after the collector opened it"
            ) from None
        except OSError as exc:
            raise ObjectStoreError(f"cannot reach {self.root}: {exc}") from exc

    async def sweep(self) -> int:
        return await asyncio.to_thread(self._remove_stale_tmp, self.stale_tmp_s)

    def _stat_sync(self, key: str) -> ObjectInfo | None:
        try:
            st = self._path(key).stat()
        except FileNotFoundError:
            return None
        return ObjectInfo(key, st.st_size, st.st_mtime)

    async def stat(self, key: str) -> ObjectInfo | None:
        return await asyncio.to_thread(self._stat_sync, key)

    def _list_sync(self, prefix: str) -> list[ObjectInfo]:
        out: list[ObjectInfo] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith("."):
                    continue
                full = Path(dirpath) / name
                key = full.relative_to(self.root).as_posix()
                if not key.startswith(prefix):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    st = full.stat()
                    out.append(ObjectInfo(key, st.st_size, st.st_mtime))
        return sorted(out, key=lambda o: o.key)

    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        return await asyncio.to_thread(self._list_sync, prefix)


# --- S3-compatible ------------------------------------------------------------------------

MIB = 1024 * 1024


class S3ObjectStore(ObjectStore):
    """Objects in one bucket under ``prefix`` through boto3 (any S3-compatible service)."""

    kind = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        addressing_style: str = "auto",
        request_checksum_calculation: str = "when_required",
        response_checksum_validation: str = "when_required",
        multipart_threshold: int = 64 * MIB,
        multipart_chunksize: int = 16 * MIB,
        max_concurrency: int = 4,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        config = Config(
            s3={"addressing_style": addressing_style},
            request_checksum_calculation=request_checksum_calculation,
            response_checksum_validation=response_checksum_validation,
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=max(10, max_concurrency * 2),
        )
        session = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            region_name=region,
        )
        self._client = session.client("s3", endpoint_url=endpoint_url, config=config)
        # Memory stays near multipart_chunksize * max_concurrency whatever the object size.
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunksize,
            max_concurrency=max_concurrency,
            use_threads=True,
        )

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    @staticmethod
    def _is_missing(exc: Exception) -> bool:
        from botocore.exceptions import ClientError

        if not isinstance(exc, ClientError):
            return False
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except ClientError as exc:
            if self._is_missing(exc):
                raise ObjectNotFound(str(kwargs.get("Key", ""))) from exc
            raise ObjectStoreError(f"S3 {getattr(fn, '__name__', 'call')}: {exc}") from exc
        except BotoCoreError as exc:
            raise ObjectStoreError(f"S3 {getattr(fn, '__name__', 'call')}: {exc}") from exc

    async def put_file(self, key: str, path: Path) -> ObjectInfo:
        full = self._key(key)
        await self._call(
            self._client.upload_file, str(path), self.bucket, full, Config=self._transfer
        )
        info = await self.stat(key)
        if info is None:
            raise ObjectStoreError(f"S3 object {full} missing right after upload")
        return info

    async def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        await self._call(self._client.put_object, Bucket=self.bucket, Key=self._key(key), Body=data)
        return ObjectInfo(key, len(data), time.time())

    async def get(
        self, key: str, start: int = 0, length: int | None = None, chunk_size: int = READ_CHUNK
    ) -> AsyncGenerator[bytes, None]:
        if length == 0:
            return
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if start or length is not None:
            end = "" if length is None else str(start + length - 1)
            kwargs["Range"] = f"bytes={start}-{end}"
        try:
            resp = await self._call(self._client.get_object, **kwargs)
        except ObjectStoreError as exc:
            if "InvalidRange" in str(exc):
                return
            raise
        body = resp["Body"]
        try:
            while True:
                data = await asyncio.to_thread(body.read, chunk_size)
                if not data:
                    break
                yield data
        finally:
            await asyncio.to_thread(body.close)

    async def delete(self, key: str) -> None:
        await self._call(self._client.delete_object, Bucket=self.bucket, Key=self._key(key))

    async def stat(self, key: str) -> ObjectInfo | None:
        try:
            head = await self._call(
                self._client.head_object, Bucket=self.bucket, Key=self._key(key)
            )
        except ObjectNotFound:
            return None
        return ObjectInfo(key, int(head["ContentLength"]), head["LastModified"].timestamp())

    def _list_sync(self, prefix: str) -> list[ObjectInfo]:
        out: list[ObjectInfo] = []
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix
        )
        for page in pages:
            for obj in page.get("Contents", []):
                key = obj["Key"][len(self.prefix) :]
                out.append(ObjectInfo(key, int(obj["Size"]), obj["LastModified"].timestamp()))
        return sorted(out, key=lambda o: o.key)

    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        return await self._call(self._list_sync, prefix)

    def _abort_stale_sync(self, older_than_s: float) -> int:
        cutoff = time.time() - older_than_s
        n = 0
        pages = self._client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        for page in pages:
            for up in page.get("Uploads", []):
                if up["Initiated"].timestamp() < cutoff:
                    self._client.abort_multipart_upload(
                        Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"]
                    )
                    n += 1
        return n

    async def abort_stale_multipart(self, older_than_s: float = 86400.0) -> int:
        """Abort multipart uploads a killed collector left behind (they are never
        visible as objects, but the store bills their parts)."""
        return await self._call(self._abort_stale_sync, older_than_s)

    async def probe(self) -> None:
        await self._call(self._client.head_bucket, Bucket=self.bucket)

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)


# --- configuration ------------------------------------------------------------------------


def parse_size(value: int | str, key: str) -> int:
    """``16777216``, ``"16MiB"``, ``"64M"`` -> bytes (binary units)."""
    try:
        return parse_bytes(value)
    except ValueError:
        raise ConfigError(_SOURCE, key, 'a size (bytes or e.g. "16MiB")') from None


def _str(config: dict[str, Any], key: str, default: str | None = None) -> str | None:
    value = config.get(key, default)
    if value is not None and not isinstance(value, str):
        raise ConfigError(_SOURCE, key, "a string")
    return value


_CHECKSUM = ("when_required", "when_supported")
STORE_KEYS = frozenset(
    {
        "kind",
        "path",
        "bucket",
        "prefix",
        "endpoint_url",
        "region",
        "access_key_id",
        "secret_access_key",
        "session_token",
        "addressing_style",
        "request_checksum_calculation",
        "response_checksum_validation",
        "multipart_threshold",
        "multipart_chunksize",
        "max_concurrency",
    }
)
"""The keys :func:`open_object_store` reads (checked at load, before the store opens)."""


def open_object_store(config: dict[str, Any], data_dir: Path) -> ObjectStore:
    """The store the collector's ``[backup.storage]`` table names.

    ``kind = "local"`` (default): ``path`` (default ``<data_dir>/backups``).
    ``kind = "s3"``: ``bucket`` (required), ``prefix``, ``endpoint_url``, ``region``,
    ``access_key_id`` / ``secret_access_key`` / ``session_token`` (else boto3's usual
    chain: environment, shared files, instance role), ``addressing_style``
    (auto|path|virtual), ``request_checksum_calculation`` / ``response_checksum_validation``
    (when_required|when_supported, default when_required), ``multipart_threshold`` /
    ``multipart_chunksize`` (sizes, default 64MiB / 16MiB), ``max_concurrency`` (4).
    """
    config = dict(config or {})
    kind = _str(config, "kind", "local")
    if kind == "local":
        path = _str(config, "path")
        return LocalObjectStore(Path(path) if path else Path(data_dir) / "backups")
    if kind != "s3":
        raise ConfigError(_SOURCE, "kind", '"local" or "s3"')
    bucket = _str(config, "bucket")
    if not bucket:
        raise ConfigError(_SOURCE, "bucket", 'a bucket name (required for kind = "s3")')
    style = _str(config, "addressing_style", "auto")
    if style not in ("auto", "path", "virtual"):
        raise ConfigError(_SOURCE, "addressing_style", '"auto", "path" or "virtual"')
    checks: dict[str, str] = {}
    for key in ("request_checksum_calculation", "response_checksum_validation"):
        value = _str(config, key, "when_required")
        if value not in _CHECKSUM:
            raise ConfigError(_SOURCE, key, '"when_required" or "when_supported"')
        checks[key] = value
    threshold = parse_size(config.get("multipart_threshold", 64 * MIB), "multipart_threshold")
    chunk = parse_size(config.get("multipart_chunksize", 16 * MIB), "multipart_chunksize")
    if chunk < 5 * MIB:
        raise ConfigError(_SOURCE, "multipart_chunksize", "at least 5MiB (the S3 minimum part)")
    concurrency = config.get("max_concurrency", 4)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(_SOURCE, "max_concurrency", "an integer >= 1")
    return S3ObjectStore(
        bucket=bucket,
        prefix=_str(config, "prefix", "") or "",
        endpoint_url=_str(config, "endpoint_url"),
        region=_str(config, "region"),
        access_key_id=_str(config, "access_key_id"),
        secret_access_key=_str(config, "secret_access_key"),
        session_token=_str(config, "session_token"),
        addressing_style=style or "auto",
        multipart_threshold=threshold,
        multipart_chunksize=chunk,
        max_concurrency=concurrency,
        request_checksum_calculation=checks["request_checksum_calculation"],
        response_checksum_validation=checks["response_checksum_validation"],
    )
