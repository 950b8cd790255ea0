"""The collector's background tasks, all run by one supervisor.

Each task is a *round* (prune history, backup maintenance, contract checks, the storage
checks) run every ``interval_s``. A round that raises is the supervisor's business, not
the task's: the first failure of a streak is logged once with its traceback, the round is
retried after a backoff that doubles from 1 s (up to ``retry_max_s`` and never longer than
the task's own interval), and the first good round after a streak is logged once. A task
that fails ``give_up_after`` times in a row, or ends for any other reason, is *stopped*:
the supervisor logs it and calls ``on_give_up``, which the server turns into an exit with
status 1 so the service manager restarts the collector instead of it running on without
the task. ``/healthz`` lists every task's state (:meth:`Supervisor.states`).

A task made with ``essential=False`` is one the collector serves correctly without (the
monthly reports kept warm: a read computes its report when the cache has none). It is
never given up on: past ``give_up_after`` failures it stays ``retrying``, once every
``retry_max_s``, and ``/healthz`` shows its failures and last error, so one broken
convenience does not take the collector's ingest down with it.

A task that needs the database to write (``paused_when``) waits while the storage checks
fail instead of counting failures: a full disk is reported by ``/healthz`` and is not a
reason to stop the collector, which still serves reads.

With :class:`~collector.task_leases.TaskLeases` (several collector processes on one
PostgreSQL), a task's round runs only in the process holding the task's lease, once per
period across the processes; the others wait in state ``standby`` and take the task over
when the holder's lease expires. A task made with ``everywhere=True`` (this process's
own storage checks; the notification sender, whose outbox claims each message) runs in
every process. ``/healthz`` shows for each task whether this process ``holds`` it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from collector.task_leases import TaskLeases

log = logging.getLogger("vigil.collector.tasks")

Round = Callable[[], Awaitable[Any]]


@dataclass
class _Task:
    name: str
    interval_s: float
    round: Round
    first_delay_s: float
    paused_when: Callable[[], bool] | None
    everywhere: bool = False
    essential: bool = True
    holds: bool = False
    first_due: float = 0.0
    """When the first round is due (``time.time()``) if no process has run one yet."""
    state: str = "starting"
    failures: int = 0
    last_error: str = ""
    last_ok_at: float | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class TaskHandle:
    """What a feature keeps to stop its task when its resources close."""

    def __init__(self, supervisor: Supervisor, name: str) -> None:
        self._supervisor = supervisor
        self.name = name

    async def stop(self) -> None:
        await self._supervisor.stop(self.name)


class Supervisor:
    """Starts, restarts and reports the collector's background tasks."""

    def __init__(
        self,
        *,
        retry_max_s: float = 300.0,
        give_up_after: int = 10,
        on_give_up: Callable[[str], None] | None = None,
        leases: TaskLeases | None = None,
    ) -> None:
        self.retry_max_s = retry_max_s
        self.give_up_after = give_up_after
        self.on_give_up = on_give_up
        self.leases = leases
        """None: this is the only collector process, every task runs here."""
        self._tasks: dict[str, _Task] = {}

    def every(
        self,
        name: str,
        interval_s: float,
        round: Round,
        *,
        first_delay_s: float | None = None,
        paused_when: Callable[[], bool] | None = None,
        everywhere: bool = False,
        essential: bool = True,
    ) -> TaskHandle:
        """Run ``round`` every ``interval_s`` (first after ``first_delay_s``, default one
        interval) until stopped; in the process holding its lease only, unless
        ``everywhere``; retried for ever instead of given up on unless ``essential``."""
        if name in self._tasks and self._tasks[name].task is not None:
            raise ValueError(f"task {name!r} already runs")
        t = _Task(
            name,
            float(interval_s),
            round,
            float(interval_s if first_delay_s is None else first_delay_s),
            paused_when,
            everywhere,
            essential,
            holds=everywhere or self.leases is None,
            first_due=time.time() + (interval_s if first_delay_s is None else first_delay_s),
        )
        self._tasks[name] = t
        t.task = asyncio.get_running_loop().create_task(self._run(t), name=f"vigil-{name}")
        return TaskHandle(self, name)

    def _backoff(self, t: _Task) -> float:
        if not t.essential and t.failures >= self.give_up_after:
            return self.retry_max_s
        return min(2.0 ** (t.failures - 1), self.retry_max_s, max(t.interval_s, 1.0))

    async def _run(self, t: _Task) -> None:
        try:
            await self._rounds(t)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the supervisor itself must not die silently
            log.critical("background task %s cannot run: %r", t.name, exc, exc_info=True)
            self._give_up(t, f"{type(exc).__name__}: {exc}")
            return
        # _rounds only returns when the task gave up.

    def _leased(self, t: _Task) -> TaskLeases | None:
        return None if t.everywhere else self.leases

    async def _turn(self, t: _Task) -> float | None:
        """Whether this process runs ``t``'s round now: its start time, or None after
        waiting a tick (another process holds the task, or its period has not passed
        since the last round, wherever that ran)."""
        leases = self._leased(t)
        if leases is None:
            t.holds = True
            return time.time()
        held, last = await leases.take(t.name)
        if held != t.holds:
            log.info(
                "background task %s: %s",
                t.name,
                "this process holds it" if held else "another process holds it",
            )
        t.holds = held
        now = time.time()
        due = t.first_due if last is None else last + t.interval_s
        if held and now >= due:
            return now
        t.state = "running" if held else "standby"
        wait = leases.tick(t.interval_s)
        if held:
            wait = min(wait, due - now)
        await asyncio.sleep(wait)
        return None

    async def _keep(self, leases: TaskLeases, t: _Task) -> None:
        """Renew ``t``'s lease while its round runs."""
        while True:
            await asyncio.sleep(leases.tick(t.interval_s))
            with contextlib.suppress(Exception):  # the next turn says if it was lost
                t.holds, _ = await leases.take(t.name)

    async def _round(self, t: _Task, started: float) -> None:
        leases = self._leased(t)
        if leases is None:
            await t.round()
            return
        keeper = asyncio.get_running_loop().create_task(self._keep(leases, t))
        try:
            await t.round()
        finally:
            keeper.cancel()
        await leases.ran(t.name, started)  # a failed round is retried, not counted

    async def _rounds(self, t: _Task) -> None:
        if self._leased(t) is None:
            await asyncio.sleep(t.first_delay_s)
        # A leased task asks for its lease at once (a standby process shows which process
        # holds it); its first round waits for first_due, or a period after the last one.
        while True:
            if t.paused_when is not None and t.paused_when():
                if t.state != "paused":
                    log.info("background task %s waits: storage unavailable", t.name)
                t.state = "paused"
                await asyncio.sleep(min(t.interval_s, 5.0))
                continue
            if t.state == "paused":
                log.info("background task %s resumes: storage is back", t.name)
            try:
                started = await self._turn(t)
                if started is None:
                    continue
                t.state = "running" if t.failures == 0 else "retrying"
                await self._round(t, started)
            except Exception as exc:
                t.failures += 1
                t.last_error = f"{type(exc).__name__}: {exc}"
                if t.failures == 1:
                    log.error(
                        "background task %s failed; retrying with backoff", t.name, exc_info=True
                    )
                if t.failures >= self.give_up_after:
                    if t.essential:
                        self._give_up(t, t.last_error)
                        return
                    if t.failures == self.give_up_after:
                        log.critical(
                            "background task %s failed %d times in a row (%s); the collector "
                            "serves without it and retries every %g s",
                            t.name,
                            t.failures,
                            t.last_error,
                            self.retry_max_s,
                        )
                t.state = "retrying"
                await asyncio.sleep(self._backoff(t))
                continue
            if t.failures:
                log.info("background task %s recovered after %d failures", t.name, t.failures)
            t.failures = 0
            t.last_error = ""
            t.last_ok_at = time.time()
            t.state = "running"
            leases = self._leased(t)
            await asyncio.sleep(t.interval_s if leases is None else leases.tick(t.interval_s))

    def _give_up(self, t: _Task, reason: str) -> None:
        t.state = "stopped"
        t.last_error = reason
        log.critical(
            "background task %s stopped after %d failures in a row (%s); the collector exits",
            t.name,
            t.failures,
            reason,
        )
        if self.on_give_up is not None:
            self.on_give_up(t.name)

    async def stop(self, name: str) -> None:
        t = self._tasks.pop(name, None)
        if t is None or t.task is None:
            return
        # Python 3.11's asyncio.wait_for can swallow a cancellation that arrives as its
        # inner awaitable finishes; the task then sleeps on as if nothing happened. So
        # cancel until it is really done instead of awaiting one cancellation.
        while not t.task.done():
            t.task.cancel()
            await asyncio.wait({t.task}, timeout=1.0)
        with contextlib.suppress(asyncio.CancelledError):
            await t.task
        leases = self._leased(t)
        if leases is not None and t.holds:
            with contextlib.suppress(Exception):  # unreleased, it expires all the same
                await leases.release(t.name)

    async def stop_all(self) -> None:
        for name in list(self._tasks):
            await self.stop(name)

    def states(self) -> dict[str, dict[str, Any]]:
        """Each task's state (``running``, ``retrying``, ``paused``, ``standby``,
        ``stopped``), whether this process holds it, failures in a row and last error:
        what ``/healthz`` shows."""
        out: dict[str, dict[str, Any]] = {}
        for t in self._tasks.values():
            state = t.state
            if t.task is not None and t.task.done() and state != "stopped":
                state = "stopped"
            out[t.name] = {
                "state": state,
                "holds": t.holds,
                "failures": t.failures,
                "last_error": t.last_error,
            }
        return out

    def not_running(self) -> list[str]:
        return [name for name, s in self.states().items() if s["state"] == "stopped"]


TASKS: web.AppKey[Supervisor] = web.AppKey("tasks", Supervisor)


def supervisor_of(app: web.Application) -> Supervisor:
    """The app's supervisor (created by ``create_app``)."""
    return app[TASKS]


async def stop_tasks(app: web.Application) -> Any:
    """Cleanup context: whatever is still supervised is stopped at shutdown."""
    yield
    await app[TASKS].stop_all()
