"""The group commit's own commit thread: a write is answered only once its commit is
durable, a commit that fails fails exactly the writes of its batch (the next batch is
stored), and closing joins the thread and fails what is still queued, never leaving a
caller waiting. On the suite's backend (SQLite, or PostgreSQL with
``VIGIL_TEST_DB=postgresql``)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from collector.http.replay import take
from collector.storage import Database
from harness.database import collector_database


class FailingCommit:
    """A write connection whose next COMMIT fails (as a full disk makes it fail) once a
    job of the batch has asked for it."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.fail_commit = False

    def execute(self, sql: str, params: Any = ()) -> Any:
        if sql == "COMMIT" and self.fail_commit:
            self.fail_commit = False
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def with_failing_commits(db: Database) -> list[FailingCommit]:
    made: list[FailingCommit] = []
    connect = db._connect  # type: ignore[attr-defined]

    def wrapped() -> FailingCommit:
        made.append(FailingCommit(connect()))
        return made[-1]

    db._connect = wrapped  # type: ignore[attr-defined]
    return made


def nonces(db: Database) -> set[str]:
    return {r[0] for r in db.read_sync(lambda c: c.execute("SELECT nonce FROM request_nonces"))}


def test_a_failed_commit_fails_its_batch_alone_and_the_next_is_stored(tmp_path: Path) -> None:
    db = collector_database(tmp_path / "vigil.db")
    made = with_failing_commits(db)

    def doomed(nonce: str) -> Any:
        def job(conn: Any) -> bool:
            made[0].fail_commit = True  # the write connection, opened by the first batch
            return take(conn, nonce, 1000.0)

        return job

    async def go() -> tuple[list[Any], list[Any]]:
        await db.write(lambda c: take(c, "first", 1000.0))  # opens the write connection
        failing = [
            asyncio.create_task(db.write(doomed("a-1"))),
            asyncio.create_task(db.write(lambda c: take(c, "a-2", 1000.0))),
        ]
        await asyncio.sleep(0)  # the failing batch is taken: these queue behind it
        await asyncio.sleep(0)
        after = [db.write(lambda c, n=n: take(c, n, 1000.0)) for n in ("b-1", "b-2")]
        got_after = await asyncio.gather(*after, return_exceptions=True)
        got_failing = await asyncio.gather(*failing, return_exceptions=True)
        return got_failing, list(got_after)

    try:
        failing, after = asyncio.run(go())
        assert all(isinstance(e, sqlite3.OperationalError) for e in failing), failing
        assert after == [True, True]
        assert nonces(db) == {"first", "b-1", "b-2"}  # nothing of the failed batch
        assert db.commits == 2  # type: ignore[attr-defined]
    finally:
        db.close()


def test_closing_finishes_queued_writes_and_joins_the_commit_thread(tmp_path: Path) -> None:
    db = collector_database(tmp_path / "vigil.db")

    async def go() -> list[bool]:
        writes = [db.write(lambda c, n=n: take(c, n, 1000.0)) for n in ("x-1", "x-2", "x-3")]
        tasks = [asyncio.ensure_future(w) for w in writes]
        await asyncio.sleep(0)
        await db.aclose()  # waits for the queued writes, then closes
        return [t.result() for t in tasks]

    assert asyncio.run(go()) == [True, True, True]
    assert not db._committer.is_alive()  # type: ignore[attr-defined]
    reopened = collector_database(tmp_path / "vigil.db")
    try:
        assert {"x-1", "x-2", "x-3"} <= nonces(reopened)
    finally:
        reopened.close()


def test_closing_at_once_fails_the_writes_still_queued(tmp_path: Path) -> None:
    db = collector_database(tmp_path / "vigil.db")

    async def go() -> list[Any]:
        await db.write(lambda c: take(c, "before", 1000.0))  # the commit thread runs
        tasks = [
            asyncio.ensure_future(db.write(lambda c, n=n: take(c, n, 1000.0)))
            for n in ("y-1", "y-2")
        ]
        await asyncio.sleep(0)  # queued, their batch not begun
        db.close()
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)

    outcomes = asyncio.run(go())
    assert all(isinstance(e, RuntimeError) for e in outcomes), outcomes
    assert not db._committer.is_alive()  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError):
        asyncio.run(db.write(lambda c: None))
