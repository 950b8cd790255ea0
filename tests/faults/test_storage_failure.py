"""When the collector's own storage fails (disk full), clients get 503 + Retry-After, not
500, and the agent keeps its reports."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from collector.http.appkeys import DB
from collector.storage.database import SQLiteDatabase
from harness.app import app_client


def test_disk_full_answers_503_with_retry_after(tmp_path: Path) -> None:
    async def go() -> tuple[int, str | None, dict]:
        db = SQLiteDatabase(tmp_path / "vigil.db")

        async def full(fn):  # what SQLite raises when the disk is full
            raise sqlite3.OperationalError("database or disk is full")

        async with app_client(tmp_path, database=db) as client:
            client.app[DB].write = full
            r = await client.post(
                "/api/v1/agent/enroll",
                json={
                    "protocol": 1,
                    "token": "vgl_enr_x",
                    "public_key": "A" * 43 + "=",
                    "hostname": "h",
                    "machine_id": "m",
                },
            )
            return r.status, r.headers.get("Retry-After"), await r.json()

    status, retry, body = asyncio.run(go())
    assert status == 503 and retry == "30"
    assert body["error"] == "storage_unavailable"
