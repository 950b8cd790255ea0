"""Is the collector's storage really there? ``/healthz``, refused writes, the disk reserve.

``SELECT 1`` says nothing about storage: with its data directory deleted, SQLite writes
on into the deleted (still open) files and every acknowledged report is lost. So the
checks here are:

- ``data_dir`` / ``database_file``: the directory and the database file are the ones
  opened at start (same device and inode), not deleted or replaced;
- ``database_write``: the database commits a heartbeat row;
- ``disk_space``: free space in the data directory is above ``report_reserve``;
- ``object_store``: the backup store answers (local directory there, S3 bucket head);
- ``tasks``: no background task has stopped (see :mod:`collector.supervision`).

The checks run every ``storage_check_interval_s`` and on each ``/healthz``; the cheap
ones also run on every write request: the two ``stat`` calls each time, the ``statvfs``
at most every :data:`SPACE_EVERY_S` (a disk that fills is refused within that second; a
message is formatted only for a refusal). While a storage check fails, writes (agent
reports, sessions, uploads, runs) are answered 503 with the reason and ``Retry-After``;
reads go on. Each failure is logged once when it starts and once when it ends.

Backup uploads have a larger reserve of their own (``[backup] upload_reserve``): they are
refused (507, ``backup_space_low``) well before reports are, so a large upload cannot
fill the disk that reports need.

A collector started on a full disk could not even open its database (SQLite needs a few
KiB for the WAL index). It keeps a small *ballast* file beside the database, given back
at such a start so the database opens for reads, and made again once there is room.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from collector.http import openapi
from collector.http.appkeys import CONFIG, DB, METRICS
from collector.storage import StorageUnavailable, storage_errors
from collector.supervision import TASKS
from protocol import routes

log = logging.getLogger("vigil.collector.storage")


def _write_refused() -> tuple[type[Exception], ...]:
    return (*storage_errors(), OSError, RuntimeError)


def _open_refused() -> tuple[type[Exception], ...]:
    return (*storage_errors(), OSError)


BALLAST_NAME = ".vigil-ballast"
BALLAST_SIZE = 2 * 1024 * 1024
STORAGE_CHECKS = ("data_dir", "database_file", "database_write", "disk_space")
"""The checks whose failure refuses every write."""
UPLOAD_PREFIX = routes.BACKUPS
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
HEARTBEAT_TIMEOUT_S = 15.0
SPACE_EVERY_S = 1.0
"""A write request reads the free space at most this often (``statvfs`` per report was a
few per cent of its CPU); the background checks and ``/healthz`` read it every time."""

Probe = Callable[[], Awaitable[None]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class StorageStartError(RuntimeError):
    """The collector cannot open its storage at all (said in one line, no traceback)."""


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _identity(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


# --- the ballast ----------------------------------------------------------------------------


def release_ballast(directory: Path, reserve: int) -> bool:
    """At start: give back the ballast when the disk is nearly full (below ``reserve``)."""
    ballast = directory / BALLAST_NAME
    try:
        if not ballast.exists() or free_bytes(directory) >= reserve:
            return False
        ballast.unlink()
    except OSError:
        return False
    log.warning(
        "disk nearly full: released the %s ballast so the database opens", _size(BALLAST_SIZE)
    )
    return True


def ensure_ballast(directory: Path, reserve: int) -> None:
    """Make the ballast file when it is missing and there is room for it above ``reserve``."""
    ballast = directory / BALLAST_NAME
    try:
        if ballast.exists() or free_bytes(directory) < reserve + 2 * BALLAST_SIZE:
            return
        tmp = directory / (BALLAST_NAME + ".tmp")
        with open(tmp, "wb") as fh:
            block = b"\0" * 65536
            for _ in range(BALLAST_SIZE // len(block)):
                fh.write(block)  # written, not sparse: the blocks must really be held
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, ballast)
    except OSError as exc:
        with contextlib.suppress(OSError):
            (directory / (BALLAST_NAME + ".tmp")).unlink()
        log.debug("cannot make the ballast file: %s", exc)


# --- the checks -----------------------------------------------------------------------------


@dataclass
class Check:
    ok: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail} if self.detail else {"ok": self.ok}


class StorageHealth:
    """The storage checks, their last results, and whether writes are refused."""

    def __init__(
        self,
        data_dir: Path,
        db: Any,
        *,
        report_reserve: int,
        upload_reserve: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.db = db
        self.report_reserve = report_reserve
        self.upload_reserve = upload_reserve
        db_path = getattr(db, "path", None)
        self.db_path: Path | None = Path(db_path) if db_path is not None else None
        self._ids: dict[str, tuple[int, int]] = {"data_dir": _identity(self.data_dir)}
        if self.db_path is not None:
            self._ids["database_file"] = _identity(self.db_path)
        self.probes: dict[str, Probe] = {}
        self.results: dict[str, Check] = {}
        self._logged_failed: set[str] = set()
        self._lock = asyncio.Lock()
        self._ran_at = float("-inf")
        self._clock = clock
        self._free: int | None = None
        self._free_at = float("-inf")
        self._storage_failing = False
        """A storage check failed when last run (writes take the slow path)."""

    # -- cheap checks (every write request) -------------------------------------------

    def _same(self, name: str, path: Path, what: str) -> Check:
        try:
            now = _identity(path)
        except FileNotFoundError:
            return Check(False, f"{what} {path} was deleted after the collector opened it")
        except OSError as exc:
            return Check(False, f"{what} {path}: {exc}")
        if now != self._ids[name]:
            return Check(False, f"{what} {path} was replaced after the collector opened it")
        return Check(True)

    def free(self) -> int | None:
        try:
            free: int | None = free_bytes(self.data_dir)
        except OSError:
            free = None
        self._free, self._free_at = free, self._clock()
        return free

    def _recent_free(self) -> int | None:
        """The free space, read again when the last reading is :data:`SPACE_EVERY_S` old."""
        if self._clock() - self._free_at >= SPACE_EVERY_S:
            return self.free()
        return self._free

    def _space(self, free: int | None) -> Check:
        if free is None:
            return Check(False, f"cannot read free space of {self.data_dir}")
        if free < self.report_reserve:
            return Check(
                False,
                f"{_size(free)} free in {self.data_dir}, below the report reserve of "
                f"{_size(self.report_reserve)}",
            )
        return Check(True, f"{_size(free)} free")

    def cheap(self, free: int | None = None) -> dict[str, Check]:
        """The stat checks, with the free space read now (or ``free``, read recently)."""
        out = {"data_dir": self._same("data_dir", self.data_dir, "data directory")}
        if self.db_path is not None:
            out["database_file"] = self._same("database_file", self.db_path, "database file")
        out["disk_space"] = self._space(self.free() if free is None else free)
        return out

    def _cheap_pass(self, free: int | None) -> bool:
        """The stat checks pass, judged without a message (a write request's fast path)."""
        if free is None or free < self.report_reserve:
            return False
        try:
            st = os.stat(self.data_dir)
            if (st.st_dev, st.st_ino) != self._ids["data_dir"]:
                return False
            if self.db_path is not None:
                st = os.stat(self.db_path)
                if (st.st_dev, st.st_ino) != self._ids["database_file"]:
                    return False
        except OSError:
            return False
        return True

    # -- full checks (background and /healthz) ----------------------------------------

    async def _heartbeat(self) -> Check:
        now = time.time()

        def beat(conn: Any) -> None:
            conn.execute(
                "INSERT INTO health_heartbeat (id, at) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                (now,),
            )

        try:
            await asyncio.wait_for(self.db.write(beat), HEARTBEAT_TIMEOUT_S)
        except TimeoutError:
            return Check(False, f"the database did not commit within {HEARTBEAT_TIMEOUT_S:.0f} s")
        except _write_refused() as exc:
            return Check(False, f"the database refuses writes: {exc}")
        return Check(True)

    async def run(self) -> dict[str, Check]:
        results = await asyncio.to_thread(self.cheap)
        results["database_write"] = await self._heartbeat()
        for name, probe in self.probes.items():
            try:
                await asyncio.wait_for(probe(), HEARTBEAT_TIMEOUT_S)
                results[name] = Check(True)
            except Exception as exc:  # a probe reports, it does not raise
                results[name] = Check(False, f"{type(exc).__name__}: {exc}")
        self._update(results)
        return results

    async def fresh(self, tasks_stopped: list[str], max_age_s: float = 1.0) -> dict[str, Check]:
        """For ``/healthz``: the checks run now, unless they ran less than ``max_age_s``
        ago (an open endpoint must not turn a flood of requests into a flood of commits)."""
        async with self._lock:
            if time.monotonic() - self._ran_at > max_age_s:
                await self.run()
                self._ran_at = time.monotonic()
            else:  # the stat checks cost nothing: always now
                self._update(await asyncio.to_thread(self.cheap))
        results = dict(self.results)
        results["tasks"] = (
            Check(False, "stopped: " + ", ".join(sorted(tasks_stopped)))
            if tasks_stopped
            else Check(True)
        )
        self._update({"tasks": results["tasks"]})
        return results

    def _update(self, results: dict[str, Check]) -> None:
        """Keep the results; log each check's failure once and its recovery once."""
        self._storage_failing = any(
            not c.ok for n, c in {**self.results, **results}.items() if n in STORAGE_CHECKS
        )
        for name, check in results.items():
            self.results[name] = check
            if not check.ok and name not in self._logged_failed:
                self._logged_failed.add(name)
                refused = "writes are refused" if name in STORAGE_CHECKS else "reported"
                if name == "object_store":
                    refused = "backup uploads are refused"
                log.error("health check %s failed: %s (%s)", name, check.detail, refused)
            elif check.ok and name in self._logged_failed:
                self._logged_failed.discard(name)
                log.info("health check %s is ok again", name)

    # -- what a write request gets ---------------------------------------------------------

    def refusal(self, upload: bool) -> tuple[int, str, str] | None:
        """(status, code, reason) for a write request now, None to let it through."""
        free = self._recent_free()
        if not self._storage_failing and self._cheap_pass(free):
            return self._upload_refusal() if upload else None
        cheap = self.cheap(free)
        self._update(cheap)
        for name in STORAGE_CHECKS:
            check = cheap.get(name) or self.results.get(name)
            if check is not None and not check.ok:
                return 503, "storage_unavailable", f"{name}: {check.detail}"
        return self._upload_refusal() if upload else None

    def _upload_refusal(self) -> tuple[int, str, str] | None:
        store = self.results.get("object_store")
        if store is not None and not store.ok:
            return 503, "storage_unavailable", f"object_store: {store.detail}"
        free = self.free() or 0
        if free < self.upload_reserve:
            return (
                507,
                "backup_space_low",
                f"{_size(free)} free on the collector, below the backup upload reserve of "
                f"{_size(self.upload_reserve)}; reports are still accepted",
            )
        return None


HEALTH: web.AppKey[StorageHealth] = web.AppKey("storage_health", StorageHealth)


def register_probe(app: web.Application, name: str, probe: Probe) -> None:
    """A feature's own storage (the backup object store) joins the checks."""
    if HEALTH in app:
        app[HEALTH].probes[name] = probe


def set_upload_reserve(app: web.Application, reserve: int) -> None:
    if HEALTH in app:
        app[HEALTH].upload_reserve = reserve


def _body(status: int, code: str, message: str, retry_after: int) -> web.Response:
    return web.json_response(
        {"error": code, "message": message, "field": None},
        status=status,
        headers={"Retry-After": str(retry_after)},
    )


def storage_refusal(request: web.Request) -> web.Response | None:
    """The answer to a write request while storage checks fail (503) or to an upload
    below its reserve (507); None to let it through (a read always)."""
    health = request.app.get(HEALTH)
    if health is None or request.method in READ_METHODS:
        return None
    # Two stat() and (at most once a second) a statvfs() of a local directory:
    # microseconds, on the loop (a thread hop per report would cost more than the checks).
    refused = health.refusal(request.path.startswith(UPLOAD_PREFIX))
    if refused is None:
        return None
    status, code, reason = refused
    request.app[METRICS].rejected(code)
    return _body(status, code, reason, 3600 if status == 507 else 30)


@web.middleware
async def storage_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse writes while storage checks fail (503) or uploads below their reserve (507)."""
    refused = storage_refusal(request)
    if refused is not None:
        return refused
    return await handler(request)


@openapi.documented(
    openapi.operation(
        "Storage, database, object store and background tasks; 503 naming each failed check",
        auth=None,
    )
)
async def healthz(request: web.Request) -> web.Response:
    """200 when every check passes; 503 with each check named otherwise."""
    app = request.app
    health = app.get(HEALTH)
    stopped = app[TASKS].not_running() if TASKS in app else []
    if health is None:  # storage not opened (tests with a database of their own)
        try:
            await app[DB].read(lambda c: c.execute("SELECT 1").fetchone())
            checks = {"database_read": Check(True)}
        except Exception as exc:  # a health check reports, it does not raise
            checks = {"database_read": Check(False, str(exc))}
        checks["tasks"] = Check(not stopped, ", ".join(stopped))
    else:
        checks = await health.fresh(stopped)
    failed = sorted(name for name, c in checks.items() if not c.ok)
    body: dict[str, Any] = {
        "status": "unhealthy" if failed else "ok",
        "time": time.time(),
        "checks": {name: c.to_json() for name, c in checks.items()},
        "failed": failed,
    }
    if TASKS in app:
        body["tasks"] = app[TASKS].states()
    return web.json_response(body, status=503 if failed else 200)


def open_storage(config: Any, opener: Callable[[Any], Any]) -> Any:
    """Open the database, giving back the ballast on a full disk; one clear line (not
    "disk I/O error") when it still cannot be opened."""
    directory = Path(config.storage.path).parent if config.storage.kind == "sqlite" else None
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        release_ballast(directory, config.report_reserve)
    else:  # PostgreSQL: the data directory still holds staged uploads and local backups
        Path(config.data_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        return opener(config)
    except StorageUnavailable as exc:
        raise StorageStartError(f"cannot open the database: {exc}") from exc
    except _open_refused() as exc:
        if directory is None:
            raise StorageStartError(f"cannot open the PostgreSQL database: {exc}") from exc
        where = directory
        free = None
        with contextlib.suppress(OSError):
            free = free_bytes(where)
        full = (free is not None and free < BALLAST_SIZE) or (
            isinstance(exc, OSError) and exc.errno == errno.ENOSPC
        )
        if full:
            raise StorageStartError(
                f"cannot open the database: the disk of {where} is full ({_size(free or 0)} "
                f"free); free some space and start again ({exc})"
            ) from exc
        raise StorageStartError(f"cannot open the database in {where}: {exc}") from exc


async def health_context(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context (after the database's): record what was opened, start the checks."""
    cfg = app[CONFIG]
    db = app[DB]
    health = StorageHealth(cfg.data_dir, db, report_reserve=cfg.report_reserve)
    app[HEALTH] = health
    first = health.cheap()
    space = first["disk_space"]
    if not space.ok:
        log.error(
            "the data directory's disk is full (%s): serving reads and /healthz, refusing "
            "writes with 503 until space is freed",
            space.detail,
        )
        health._logged_failed.add("disk_space")
    ballast_dir = health.db_path.parent if health.db_path is not None else None

    async def round() -> None:
        await health.run()
        if ballast_dir is not None:
            await asyncio.to_thread(ensure_ballast, ballast_dir, cfg.report_reserve)

    handle = app[TASKS].every(
        "storage-checks", cfg.storage_check_interval_s, round, first_delay_s=0, everywhere=True
    )
    yield
    await handle.stop()


def check_failed(app: web.Application, name: str) -> bool:
    """The last run of check ``name`` failed (False when it has not run)."""
    health = app.get(HEALTH)
    check = health.results.get(name) if health is not None else None
    return check is not None and not check.ok


def writes_refused(app: web.Application) -> bool:
    """For tasks that write: storage checks are failing now (they wait instead of failing)."""
    health = app.get(HEALTH)
    if health is None:
        return False
    return any(not health.results[n].ok for n in STORAGE_CHECKS if n in health.results)
