"""The same object-store tests against the local directory and S3 (moto on loopback)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from collector.backups.objectstore import (
    LocalObjectStore,
    ObjectNotFound,
    ObjectStore,
    S3ObjectStore,
    check_key,
    open_object_store,
)
from collector.config import ConfigError

MIB = 1024 * 1024


def run(coro):
    return asyncio.run(coro)


async def _read(store: ObjectStore, key: str, start: int = 0, length: int | None = None) -> bytes:
    return b"".join([c async for c in store.get(key, start, length, chunk_size=4096)])


def test_put_get_stat_list_delete(store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    payload = os.urandom(300_000)
    src.write_bytes(payload)

    async def go() -> None:
        info = await store.put_file("srv-a/b1.age", src)
        assert info.size == len(payload)
        await store.put_bytes("srv-a/b1.envelope.json", b'{"x":1}')
        await store.put_bytes("srv-b/b2.envelope.json", b"{}")
        assert await _read(store, "srv-a/b1.age") == payload
        assert await store.get_bytes("srv-a/b1.envelope.json") == b'{"x":1}'
        st = await store.stat("srv-a/b1.age")
        assert st is not None and st.size == len(payload)
        assert await store.exists("srv-a/b1.age")
        assert await store.stat("srv-a/nothing.age") is None
        keys = [o.key for o in await store.list("srv-a/")]
        assert keys == ["srv-a/b1.age", "srv-a/b1.envelope.json"]
        assert len(await store.list()) == 3
        await store.delete("srv-a/b1.age")
        await store.delete("srv-a/b1.age")  # deleting twice is fine
        assert not await store.exists("srv-a/b1.age")
        with pytest.raises(ObjectNotFound):
            await _read(store, "srv-a/b1.age")
        await store.close()

    run(go())


def test_overwrite_replaces_whole_object(store: ObjectStore) -> None:
    async def go() -> None:
        await store.put_bytes("k/obj", b"first version, longer")
        await store.put_bytes("k/obj", b"second")
        assert await store.get_bytes("k/obj") == b"second"
        assert [o.key for o in await store.list("k/")] == ["k/obj"]
        await store.close()

    run(go())


def test_byte_ranges(store: ObjectStore) -> None:
    data = bytes(range(256)) * 100

    async def go() -> None:
        await store.put_bytes("r/obj", data)
        assert await _read(store, "r/obj", 0, 10) == data[:10]
        assert await _read(store, "r/obj", 1000, 5000) == data[1000:6000]
        assert await _read(store, "r/obj", 25000) == data[25000:]
        assert await _read(store, "r/obj", len(data) - 1, 1) == data[-1:]
        assert await _read(store, "r/obj", 10, 0) == b""
        await store.close()

    run(go())


def test_large_object_multipart(store: ObjectStore, store_config: dict, tmp_path: Path) -> None:
    """>= 16 MiB with a 5 MiB part size: S3 gets a multipart upload (ETag "…-4")."""
    src = tmp_path / "big.bin"
    h = hashlib.sha256()
    with open(src, "wb") as fh:
        for i in range(17):
            block = os.urandom(MIB) if i % 4 == 0 else bytes([i]) * MIB
            h.update(block)
            fh.write(block)

    async def go() -> None:
        info = await store.put_file("big/obj.age", src)
        assert info.size == 17 * MIB
        got = hashlib.sha256()
        async for chunk in store.get("big/obj.age"):
            got.update(chunk)
        assert got.hexdigest() == h.hexdigest()
        tail = await _read(store, "big/obj.age", 15 * MIB + 5, 10)
        assert tail == bytes([15]) * 10
        await store.close()

    run(go())
    if store_config["kind"] == "s3":
        client = boto3.client(
            "s3",
            endpoint_url=store_config["endpoint_url"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        head = client.head_object(Bucket=store_config["bucket"], Key="vigil/test/big/obj.age")
        assert head["ETag"].strip('"').endswith("-4")
        client.close()


_CRASH = r"""
import asyncio, json, os, signal, sys
from pathlib import Path
from collector.backups.objectstore import open_object_store
config, data_dir, src = json.loads(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
store = open_object_store(config, data_dir)
def die(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)
if config["kind"] == "local":
    os.replace = die                                  # staged and fsynced, not yet renamed
else:
    store._client.complete_multipart_upload = die     # parts uploaded, not completed
asyncio.run(store.put_file("crash/obj.age", src))
"""


def test_crash_before_commit_leaves_nothing_listed(store_config: dict, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(17 * MIB))
    proc = subprocess.run(
        [sys.executable, "-c", _CRASH, json.dumps(store_config), str(tmp_path), str(src)],
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    store = open_object_store(store_config, tmp_path)

    async def go() -> None:
        assert await store.list() == []
        assert not await store.exists("crash/obj.age")
        await store.close()

    run(go())
    if isinstance(store, LocalObjectStore):
        leftovers = [p for p in store.root.rglob("*") if p.is_file()]
        assert leftovers and all(p.name.startswith(".tmp-") for p in leftovers)
        LocalObjectStore(store.root, stale_tmp_s=0)  # reopening cleans stale temporaries
        assert not [p for p in store.root.rglob("*") if p.is_file()]
    else:
        assert isinstance(store, S3ObjectStore)
        aborted = run(store.abort_stale_multipart(older_than_s=-60))
        assert aborted == 1


def test_keys_cannot_escape(tmp_path: Path) -> None:
    for bad in ("../x", "/abs", "a//b", "a/../b", ".hidden", "a/.tmp-x", "", "a/b\\c"):
        with pytest.raises(ValueError):
            check_key(bad)
    assert check_key("srv-1:x/0001.age") == "srv-1:x/0001.age"


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="kind"):
        open_object_store({"kind": "ftp"}, tmp_path)
    with pytest.raises(ConfigError, match="bucket"):
        open_object_store({"kind": "s3"}, tmp_path)
    with pytest.raises(ConfigError, match="request_checksum_calculation"):
        open_object_store(
            {"kind": "s3", "bucket": "b", "request_checksum_calculation": "x"}, tmp_path
        )
    with pytest.raises(ConfigError, match="multipart_chunksize"):
        open_object_store({"kind": "s3", "bucket": "b", "multipart_chunksize": "1MiB"}, tmp_path)
    local = open_object_store({}, tmp_path)
    assert isinstance(local, LocalObjectStore) and local.root == tmp_path / "backups"


def test_s3_checksum_options_default_when_required(tmp_path: Path) -> None:
    s3 = open_object_store({"kind": "s3", "bucket": "b", "region": "us-east-1"}, tmp_path)
    assert isinstance(s3, S3ObjectStore)
    cfg = s3._client.meta.config
    assert cfg.request_checksum_calculation == "when_required"
    assert cfg.response_checksum_validation == "when_required"
    s3b = open_object_store(
        {
            "kind": "s3",
            "bucket": "b",
            "region": "us-east-1",
            "request_checksum_calculation": "when_supported",
        },
        tmp_path,
    )
    assert s3b._client.meta.config.request_checksum_calculation == "when_supported"
