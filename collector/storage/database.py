"""The collector's database: one writer with group commit, readers beside it.

SQLite in WAL mode is the embedded default. Writes are group-committed: the committer
takes whatever is queued (up to ``max_batch``) as soon as the previous commit is done,
runs each piece in its own SAVEPOINT, and commits once; each caller's ``await`` returns
after that commit is durable. A failing piece rolls back alone. This is group commit
without a timer (a fixed batch timer would cap throughput at connections / cycle time).

Feature modules (ingest, backups, contracts) keep their own SQL in repository functions
that take a connection; this class knows nothing of their tables. SQL uses ``?``
placeholders and portable types so a PostgreSQL backend can implement the same
interface (``dialect`` tells the rare statement that must differ).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

from collector.private_files import private_sqlite_files
from collector.storage.migrations import apply_migrations

log = logging.getLogger(__name__)

T = TypeVar("T")
Conn = sqlite3.Connection


class WriteGroup(Protocol):
    """Writes of one kind that may run together in a group commit (report batches):
    ``run`` takes every item queued for the commit and writes them with fewer statements
    than one job each would. It returns one outcome per item, in order: ``(True,
    value)``, or ``(False, exception)`` for an item that wrote nothing (a replay). If
    ``run`` raises, what it wrote is rolled back and each item runs again on its own
    (``run`` of one item), so a failing item fails alone, as a job does."""

    def run(self, conn: Any, items: list[Any]) -> list[tuple[bool, Any]]: ...


class _GroupItem:
    """One item of a :class:`WriteGroup` in the queue; called alone, the group of one."""

    __slots__ = ("group", "item")

    def __init__(self, group: WriteGroup, item: Any) -> None:
        self.group = group
        self.item = item

    def __call__(self, conn: Any) -> Any:
        ok, value = self.group.run(conn, [self.item])[0]
        if not ok:
            raise value
        return value


class Database(Protocol):
    """What handlers and repositories may rely on, whatever the backend."""

    dialect: str

    async def read(self, fn: Callable[[Conn], T]) -> T: ...

    async def write(self, fn: Callable[[Conn], T]) -> T: ...

    def read_now(self, fn: Callable[[Conn], T]) -> T: ...

    def read_sync(self, fn: Callable[[Conn], T]) -> T: ...

    def write_sync(self, fn: Callable[[Conn], T]) -> T: ...

    async def write_unsettled(self, fn: Callable[[Conn], T]) -> T: ...

    async def write_grouped(self, group: WriteGroup, item: Any) -> Any: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...


class GroupCommitDatabase:
    """The group commit, the reader pool and the blocking entry points, over whatever
    connection :meth:`_connect` opens (a subclass per backend)."""

    dialect = ""

    def __init__(self, *, max_batch: int, readers: int) -> None:
        self.max_batch = max_batch
        self._pending: list[tuple[Callable[[Conn], Any], asyncio.Future[Any]]] = []
        self._unsettled: set[asyncio.Future[Any]] = set()
        self._busy = False
        """A batch is between its BEGIN and its waiters woken (or one is scheduled)."""
        self._idle: list[asyncio.Future[None]] = []
        self._wconn: Conn | None = None
        self._to_commit: queue.SimpleQueue[_Handoff | None] = queue.SimpleQueue()
        self._committer: threading.Thread | None = None
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="vigil-db-read")
        self._local = threading.local()
        self._inline: Conn | None = None
        self._closed = False
        self.commits = 0
        self.committed_jobs = 0

    def _connect(self) -> Any:
        raise NotImplementedError

    def _read_only(self, conn: Any) -> None:
        raise NotImplementedError

    def _begin(self, conn: Any) -> None:
        raise NotImplementedError

    def _begin_at_once(self, conn: Any) -> bool:
        """Begin the write transaction on the caller's thread if that cannot wait;
        False to have :meth:`_begin` run in the commit thread instead."""
        return False

    # -- reads --------------------------------------------------------------------------

    async def read(self, fn: Callable[[Conn], T]) -> T:
        """Run ``fn`` on a read connection in a worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, fn)

    def _reader_conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            self._read_only(conn)
        return conn

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
            self._read_only(self._inline)
        return fn(self._inline)

    def read_sync(self, fn: Callable[[Conn], T]) -> T:
        return self._run_read(fn)

    # -- writes -------------------------------------------------------------------------

    def _queue(self, fn: Callable[[Conn], Any]) -> asyncio.Future[Any]:
        if self._closed:
            raise RuntimeError("database is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending.append((fn, fut))
        if not self._busy:
            self._busy = True
            # Not at once: the other requests of this turn of the loop join the batch.
            loop.call_soon(self._next_batch, loop)
        return fut

    async def write(self, fn: Callable[[Conn], T]) -> T:
        """Run ``fn`` in the next group commit; return once that commit is durable."""
        return await self._queue(fn)

    async def write_unsettled(self, fn: Callable[[Conn], T]) -> T:
        """Run ``fn`` in the next group commit; return as soon as it has run, before that
        commit is durable. For a claim (an insert that does nothing when the row is there,
        e.g. a request's nonce) that must be taken before the caller goes on, and need be
        durable no sooner than the caller's own writes: those are queued after it, so they
        commit in the same commit or a later one. Another connection's claim of the same
        row waits for this commit (the unique index orders them); if the commit fails,
        the claim is lost with it."""
        fut = self._queue(fn)
        self._unsettled.add(fut)
        try:
            return await fut
        finally:
            self._unsettled.discard(fut)

    async def write_grouped(self, group: WriteGroup, item: Any) -> Any:
        """Like :meth:`write`, for an item the next group commit writes together with the
        other items of ``group`` queued for it (:class:`WriteGroup`)."""
        return await self.write(_GroupItem(group, item))

    def write_sync(self, fn: Callable[[Conn], T]) -> T:
        """The same, blocking, on a connection of its own (CLI commands, threads):
        SQLite's lock orders it with the group commits of a running collector."""
        conn = self._connect()
        try:
            self._begin(conn)
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result
        finally:
            conn.close()

    # -- the group commit ---------------------------------------------------------------
    #
    # The writes themselves run on the event loop: tens of microseconds of SQL per report,
    # without handing the GIL back and forth with a writer thread (that ping-pong, not
    # SQLite, held a threaded writer to a fraction of this). COMMIT (the fsync) goes to
    # the database's own commit thread, where it releases the GIL; so does BEGIN when it
    # would wait for another process's write lock (taken at once otherwise: at a few
    # reports a second every report is a batch of its own, see ``docs/scaling.md``). The
    # commit thread hands a commit's outcome back with one ``call_soon_threadsafe``, in
    # which every waiter of the batch is woken and the next batch starts: no executor,
    # no task and no extra future per commit (``docs/benchmarks.md``). One batch is in
    # flight at a time, as the connection has one transaction.

    def _next_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the loop: begin the next batch, or go idle when nothing is queued."""
        if self._closed:
            self._fail_pending(RuntimeError("database is closed"))
        if not self._pending:
            self._busy = False
            for waiter in self._idle:
                if not waiter.done():
                    waiter.set_result(None)
            self._idle.clear()
            return
        batch = self._pending[: self.max_batch]
        del self._pending[: self.max_batch]
        try:
            if self._wconn is None:
                self._wconn = self._connect()
            conn = self._wconn
            begun = self._begin_at_once(conn)
        except Exception as exc:
            self._batch_failed(loop, batch, exc)
            return
        if begun:
            self._run_and_commit(loop, conn, batch)
        else:
            self._hand_off(_Handoff(True, loop, conn, batch, []))

    def _run_and_commit(
        self,
        loop: asyncio.AbstractEventLoop,
        conn: Any,
        batch: list[tuple[Callable[[Conn], Any], asyncio.Future[Any]]],
    ) -> None:
        """On the loop, in the open transaction: run the jobs, hand COMMIT to the thread."""
        results: list[tuple[asyncio.Future[Any], bool, Any]] = []
        try:
            self._run_jobs(conn, batch, results)
        except BaseException as exc:
            self._batch_failed(loop, batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        self._hand_off(_Handoff(False, loop, conn, batch, results))

    def _hand_off(self, handoff: _Handoff) -> None:
        if self._committer is None:
            self._committer = threading.Thread(
                target=self._commit_thread, name="vigil-db-commit", daemon=True
            )
            self._committer.start()
        self._to_commit.put(handoff)

    def _commit_thread(self) -> None:
        """The commit thread: BEGIN (waiting for the lock) or COMMIT, then one wake-up."""
        while (h := self._to_commit.get()) is not None:
            error: BaseException | None = None
            try:
                if h.begin:
                    self._begin(h.conn)
                else:
                    h.conn.execute("COMMIT")
            except BaseException as exc:
                error = exc
            try:
                h.loop.call_soon_threadsafe(self._handed_back, h, error)
            except RuntimeError:  # the loop is closed: nobody waits any more
                log.warning("group commit of %d writes ended after its loop", len(h.batch))

    def _handed_back(self, h: _Handoff, error: BaseException | None) -> None:
        """On the loop, once per BEGIN or COMMIT done by the commit thread."""
        if error is not None:
            self._batch_failed(h.loop, h.batch, error)
            return
        if h.begin:
            self._run_and_commit(h.loop, h.conn, h.batch)
            return
        self.commits += 1
        self.committed_jobs += len(h.results)
        for fut, ok, value in h.results:
            if fut.done():
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
        self._next_batch(h.loop)

    def _batch_failed(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[tuple[Callable[[Conn], Any], asyncio.Future[Any]]],
        exc: BaseException,
    ) -> None:
        """Roll back, fail exactly this batch's waiters, go on with the next batch."""
        log.error("group commit of %d writes failed: %s", len(batch), exc)
        conn = self._wconn
        try:
            if conn is not None and not self._closed and conn.in_transaction:
                conn.execute("ROLLBACK")
        except Exception as rollback:
            log.error("rollback after a failed group commit failed: %s", rollback)
        failure = exc if isinstance(exc, Exception) else RuntimeError("commit cancelled")
        for _fn, fut in batch:
            if not fut.done():
                fut.set_exception(failure)
        self._next_batch(loop)

    def _fail_pending(self, exc: Exception) -> None:
        pending, self._pending = self._pending, []
        for _fn, fut in pending:
            if fut.done():
                continue
            loop = fut.get_loop()
            try:
                if loop is asyncio.get_running_loop():
                    fut.set_exception(exc)
                    continue
            except RuntimeError:  # no loop runs in this thread
                pass
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(_fail_future, fut, exc)

    def _run_jobs(
        self,
        conn: Any,
        batch: list[tuple[Callable[[Conn], Any], asyncio.Future[Any]]],
        results: list[tuple[asyncio.Future[Any], bool, Any]],
    ) -> None:
        """Run a commit's jobs, each in its own SAVEPOINT (a failing one rolls back
        alone); the items of a :class:`WriteGroup` together, where the first of them
        stands in the queue."""
        groups: dict[int, list[tuple[_GroupItem, asyncio.Future[Any]]]] = {}
        for fn, fut in batch:
            if isinstance(fn, _GroupItem) and not fut.cancelled():
                groups.setdefault(id(fn.group), []).append((fn, fut))
        for fn, fut in batch:
            if fut.cancelled():
                continue
            if isinstance(fn, _GroupItem):
                members = groups.pop(id(fn.group), None)
                if members is not None and len(members) > 1:
                    self._run_group(conn, members, results)
                    continue
                if members is None:  # written with its group already
                    continue
            self._run_job(conn, fn, fut, results)

    def _run_job(
        self,
        conn: Any,
        fn: Callable[[Conn], Any],
        fut: asyncio.Future[Any],
        results: list[tuple[asyncio.Future[Any], bool, Any]],
    ) -> None:
        conn.execute("SAVEPOINT job")
        try:
            value = fn(conn)
        except Exception as exc:  # the caller gets it; the batch goes on
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            results.append((fut, False, exc))
        else:
            conn.execute("RELEASE job")
            if fut in self._unsettled:
                fut.set_result(value)
            else:
                results.append((fut, True, value))

    def _run_group(
        self,
        conn: Any,
        members: list[tuple[_GroupItem, asyncio.Future[Any]]],
        results: list[tuple[asyncio.Future[Any], bool, Any]],
    ) -> None:
        """A group's items in one SAVEPOINT; if that fails, each item on its own."""
        conn.execute("SAVEPOINT job")
        try:
            outcomes = members[0][0].group.run(conn, [m.item for m, _ in members])
        except Exception as exc:
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            log.info("a grouped write of %d items failed (%s): each runs alone", len(members), exc)
            for fn, fut in members:
                self._run_job(conn, fn, fut, results)
            return
        conn.execute("RELEASE job")
        for (_, fut), (ok, value) in zip(members, outcomes, strict=True):
            results.append((fut, ok, value))

    async def aclose(self) -> None:
        """Finish the queued writes, then close."""
        loop = asyncio.get_running_loop()
        while self._busy:
            waiter: asyncio.Future[None] = loop.create_future()
            self._idle.append(waiter)
            await asyncio.shield(waiter)
        self.close()

    def close(self) -> None:
        """Close every connection and join the commit thread; writes still queued fail
        (to finish them first, use :meth:`aclose`)."""
        if self._closed:
            return
        self._closed = True
        if self._committer is not None:
            self._to_commit.put(None)
            self._committer.join()
        self._fail_pending(RuntimeError("database is closed"))
        self._readers.shutdown(wait=True)
        for conn in (self._inline, self._wconn):
            if conn is not None:
                conn.close()


class _Handoff(NamedTuple):
    """What the loop hands the commit thread: BEGIN for ``batch`` (``begin``), or COMMIT
    of its ``results``."""

    begin: bool
    loop: asyncio.AbstractEventLoop
    conn: Any
    batch: list[tuple[Callable[[Conn], Any], asyncio.Future[Any]]]
    results: list[tuple[asyncio.Future[Any], bool, Any]]


def _fail_future(fut: asyncio.Future[Any], exc: Exception) -> None:
    if not fut.done():
        fut.set_exception(exc)


class SQLiteDatabase(GroupCommitDatabase):
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
        self.busy_timeout_ms = busy_timeout_ms
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # 0600 before SQLite opens it: SQLite gives the -wal and -shm files the same mode.
        private_sqlite_files(self.path)
        conn = self._connect()
        try:
            apply_migrations(conn, self.dialect)
        finally:
            conn.close()
        private_sqlite_files(self.path)
        super().__init__(max_batch=max_batch, readers=readers)

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

    def _read_only(self, conn: Conn) -> None:
        conn.execute("PRAGMA query_only=ON")

    def _begin_at_once(self, conn: Conn) -> bool:
        """BEGIN IMMEDIATE if no other process holds the write lock (no busy wait)."""
        conn.execute("PRAGMA busy_timeout=0")
        try:
            conn.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            return False
        finally:
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")

    def _begin(self, conn: Conn) -> None:
        """BEGIN IMMEDIATE, waiting (up to the busy timeout) for another process's write."""
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
