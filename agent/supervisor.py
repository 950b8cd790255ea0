"""Supervision of the daemon's long-running work: nothing stops silently.

Every loop (the sender) and every scheduled job (collection, camera probes, backups)
runs under one :class:`Supervisor`. An unexpected exception is logged with its
traceback (once per distinct error, a one-line reminder when it repeats), the loop is
restarted after a backoff, and a task that fails ``max_failures`` times within
``window_s`` makes the supervisor give up: the daemon then exits non-zero so that
systemd (``Restart=always``) starts a fresh process, rather than living on as a process
that is alive but does nothing. Each task's state goes into the status file, where
``vigil-agent status`` and ``doctor`` show one that is not running.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger("vigil.agent.supervisor")

MAX_FAILURES = 5
WINDOW_S = 600.0
BASE_DELAY_S = 1.0
MAX_DELAY_S = 60.0


@dataclass
class TaskState:
    state: str = "starting"
    """``running``, ``restarting`` (waiting to run again after a failure), ``failed``
    (gave up: the daemon exits), ``stopped`` (ended normally at shutdown)."""
    failures: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    _recent: deque[float] = field(default_factory=deque, repr=False)
    _logged: set[str] = field(default_factory=set, repr=False)


class Supervisor:
    def __init__(
        self,
        on_change: Callable[[], None],
        *,
        max_failures: int = MAX_FAILURES,
        window_s: float = WINDOW_S,
        base_delay_s: float = BASE_DELAY_S,
        max_delay_s: float = MAX_DELAY_S,
    ) -> None:
        self.on_change = on_change
        self.max_failures = max_failures
        self.window_s = window_s
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.tasks: dict[str, TaskState] = {}
        self.gave_up = asyncio.Event()
        self.failed_task: str | None = None
        self._running: list[asyncio.Task[None]] = []
        self._wrapped: set[str] = set()

    # -- loops --------------------------------------------------------------------------

    def start(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        """Run ``factory()`` as a task, again after each failure, until it returns."""
        self.tasks[name] = TaskState()
        self._running.append(asyncio.create_task(self._keep(name, factory), name=name))

    async def _keep(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        st = self.tasks[name]
        while True:
            self._set(st, "running")
            try:
                await factory()
            except asyncio.CancelledError:
                self._set(st, "stopped")
                raise
            except Exception as exc:
                if not self._failed(name, st, exc):
                    return
                self._set(st, "restarting")
                await asyncio.sleep(self._delay(st))
                continue
            self._set(st, "stopped")
            return

    # -- scheduled jobs -----------------------------------------------------------------

    def job(self, name: str, fn: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        """``fn`` for a scheduler: its failures are counted and logged like a loop's (the
        scheduler runs it again at its next time)."""
        st = self.tasks.setdefault(name, TaskState(state="running"))
        self._wrapped.add(name)

        @functools.wraps(fn)
        async def guarded() -> Any:
            try:
                result = await fn()
            except Exception as exc:
                if self._failed(name, st, exc):
                    self._set(st, "restarting")
                return None
            if st.state != "running":
                log.info("task %s runs again", name)
                self._set(st, "running")
            return result

        return guarded

    def job_failed(self, name: str, exc: BaseException) -> None:
        """A scheduled job that is not wrapped by :meth:`job` (one a feature schedules
        itself) raised; the scheduler has logged it, this counts it."""
        if name in self._wrapped:
            return
        st = self.tasks.setdefault(name, TaskState(state="running"))
        if isinstance(exc, Exception) and self._failed(name, st, exc, logged=True):
            self._set(st, "restarting")

    def job_succeeded(self, name: str) -> None:
        st = self.tasks.get(name)
        if name not in self._wrapped and st is not None and st.state == "restarting":
            self._set(st, "running")

    # -- bookkeeping --------------------------------------------------------------------

    def _failed(self, name: str, st: TaskState, exc: Exception, logged: bool = False) -> bool:
        """Record a failure; False when the task failed too often (the daemon exits)."""
        now = time.time()
        st.failures += 1
        st.last_error = f"{type(exc).__name__}: {exc}"
        st.last_error_at = now
        st._recent.append(time.monotonic())
        while st._recent and time.monotonic() - st._recent[0] > self.window_s:
            st._recent.popleft()
        if not logged:  # (``logged``: the scheduler has logged it already)
            if st.last_error not in st._logged:
                st._logged.add(st.last_error)
                log.error("task %s failed unexpectedly; it will run again", name, exc_info=exc)
            else:
                log.error("task %s failed again: %s", name, st.last_error)
        if len(st._recent) >= self.max_failures:
            log.critical(
                "task %s failed %d times within %.0f s: stopping the agent so that it is "
                "restarted (systemd) rather than left half-working",
                name,
                len(st._recent),
                self.window_s,
            )
            self.failed_task = name
            self._set(st, "failed")
            self.gave_up.set()
            return False
        return True

    def _delay(self, st: TaskState) -> float:
        return min(self.max_delay_s, self.base_delay_s * 2 ** max(0, len(st._recent) - 1))

    def _set(self, st: TaskState, state: str) -> None:
        if st.state != state:
            st.state = state
            try:
                self.on_change()
            except Exception:  # the status file is a report, never a reason to stop
                log.exception("cannot record the state of the agent's tasks")

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every task's state, for the status file."""
        return {
            name: {k: v for k, v in asdict(st).items() if not k.startswith("_")}
            for name, st in self.tasks.items()
        }

    def not_running(self) -> dict[str, dict[str, Any]]:
        return {n: s for n, s in self.snapshot().items() if s["state"] in ("restarting", "failed")}

    async def stop(self) -> None:
        # Cancel until done: Python 3.11's asyncio.wait_for can swallow one cancellation.
        while pending := [t for t in self._running if not t.done()]:
            for t in pending:
                t.cancel()
            await asyncio.wait(pending, timeout=1.0)
        await asyncio.gather(*self._running, return_exceptions=True)
