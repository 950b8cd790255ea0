"""The collector's database: one writer with group commit, readers beside it.

SQLite in WAL mode is the embedded default. Every write runs in one writer thread: the
writer takes whatever is queued (up to ``max_batch``) as soon as it is free, runs each
piece in its own SAVEPOINT, and commits once; each caller's ``await`` returns after that
commit is durable. A failing piece rolls back alone. This is group commit without a
timer (a fixed batch timer would cap throughput at connections / cycle time).

Feature modules (ingest, backups, contracts) keep their own SQL in repository functions
that take a connection; this class knows nothing of their tables. SQL uses ``?``
placeholders and portable types so a PostgreSQL backend can implement the same
interface (``dialect`` tells the rare statement that must differ).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future as ThreadFuture
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

from collector.storage.migrations import apply_migrations

log = logging.getLogger(__name__)

T = TypeVar("T")
Conn = sqlite3.Connection


class Database(Protocol):
    """What handlers and repositories may rely on, whatever the backend."""

    dialect: str

    async def read(self, fn: Callable[[Conn], T]) -> T: ...

    async def write(self, fn: Callable[[Conn], T]) -> T: ...

    def read_now(self, fn: Callable[[Conn], T]) -> T: ...

    def read_sync(self, fn: Callable[[Conn], T]) -> T: ...

    def write_sync(self, fn: Callable[[Conn], T]) -> T: ...

    def close(self) -> None: ...


class _Job:
    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[Conn], Any], future: ThreadFuture[Any]) -> None:
        self.fn = fn
        self.future = future


_STOP = object()


class SQLiteDatabase:
    """SQLite (WAL) behind the :class:`Database` interface."""

    dialect = "sqlite"

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "FULL",
        max_batch: int = 512,
        readers: int = 2,
        busy_timeout_ms: int = 10_000,
    ) -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self.max_batch = max_batch
        self.busy_timeout_ms = busy_timeout_ms
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        try:
            apply_migrations(conn, self.dialect)
        finally:
            conn.close()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="vigil-db-read")
        self._local = threading.local()
        self._inline: Conn | None = None
        self._closed = False
        self.commits = 0
        self.committed_jobs = 0

    # -- connections --------------------------------------------------------------------

    def _connect(self) -> Conn:
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=self.busy_timeout_ms / 1000,
        )
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _reader_conn(self) -> Conn:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
        return conn

    # -- reads --------------------------------------------------------------------------

    async def read(self, fn: Callable[[Conn], T]) -> T:
        """Run ``fn`` on a read connection in a worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, fn)

    def _run_read(self, fn: Callable[[Conn], T]) -> T:
        conn = self._reader_conn()
        conn.execute("BEGIN")
        try:
            return fn(conn)
        finally:
            conn.execute("COMMIT")

    def read_now(self, fn: Callable[[Conn], T]) -> T:
        """Run ``fn`` on the caller's thread: only for point lookups by key (microseconds),
        where a thread hop would cost more than the query (per-request authentication)."""
        if self._inline is None:
            self._inline = self._connect()
            self._inline.execute("PRAGMA query_only=ON")
        return fn(self._inline)

    def read_sync(self, fn: Callable[[Conn], T]) -> T:
        return self._run_read(fn)

    # -- writes -------------------------------------------------------------------------

    async def write(self, fn: Callable[[Conn], T]) -> T:
        """Run ``fn`` in the writer's next group commit; return once it is durable."""
        return await asyncio.wrap_future(self._submit(fn))

    def write_sync(self, fn: Callable[[Conn], T]) -> T:
        """The same, blocking; without a running writer (CLI) it writes directly."""
        if self._writer is None:
            conn = self._connect()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result
            finally:
                conn.close()
        return self._submit(fn).result()

    def _submit(self, fn: Callable[[Conn], T]) -> ThreadFuture[T]:
        if self._closed:
            raise RuntimeError("database is closed")
        if self._writer is None:
            self._writer = threading.Thread(
                target=self._write_loop, name="vigil-db-write", daemon=True
            )
            self._writer.start()
        fut: ThreadFuture[T] = ThreadFuture()
        self._queue.put(_Job(fn, fut))
        return fut

    def _write_loop(self) -> None:
        conn = self._connect()
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                break
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._commit_batch(conn, batch)
        conn.close()

    def _commit_batch(self, conn: Conn, batch: list[_Job]) -> None:
        results: list[tuple[_Job, bool, Any]] = []
        try:
            self._begin(conn)
            for job in batch:
                if not job.future.set_running_or_notify_cancel():
                    continue
                conn.execute("SAVEPOINT job")
                try:
                    value = job.fn(conn)
                except BaseException as exc:  # the caller gets it; the batch goes on
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    results.append((job, False, exc))
                else:
                    conn.execute("RELEASE job")
                    results.append((job, True, value))
            conn.execute("COMMIT")
        except BaseException as exc:
            log.error("group commit of %d writes failed: %s", len(batch), exc)
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            for job in batch:
                if not job.future.done():
                    if job.future.running():
                        job.future.set_exception(exc)
            return
        self.commits += 1
        self.committed_jobs += len(results)
        for job, ok, value in results:
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)

    def _begin(self, conn: Conn) -> None:
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def close(self) -> None:
        """Finish queued writes, then close every connection."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._queue.put(_STOP)
            self._writer.join()
        self._readers.shutdown(wait=True)
        if self._inline is not None:
            self._inline.close()
