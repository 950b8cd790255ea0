"""Leases on scheduled tasks, so that a task's round runs in one collector process.

Several collector processes on one PostgreSQL each run the same background tasks; a
round of a task that must happen once per period (history pruning, contract checks,
backup maintenance, the notification sweep) runs only in the process holding the task's
lease, a row of ``task_leases`` (task name, holder, ``expires_at``, ``last_round_at``).
A process takes or renews a lease with one conditional upsert, the same SQL on SQLite
and PostgreSQL: the row is written only when it is new, already this holder's, or
expired, and the row count says whether this process holds the task. The holder renews
it every :meth:`TaskLeases.tick` (also while a long round runs); when the holder dies,
its lease expires ``lease_s`` after its last renewal and the next process to ask takes
the task over. ``last_round_at`` is the start of the task's last round in any process,
so a takeover keeps the period instead of starting it again; ``rounds`` counts the
rounds run, by whichever process. A process that stops
cleanly gives its leases up at once.

The clocks of the processes are compared (``expires_at``): on several machines they
must be kept by NTP, as the agents' are. A round still running when its lease is lost
(the holder stalled longer than ``lease_s``) may overlap one round of the new holder;
every scheduled round is safe to repeat (each writes what it finds, and the
notification outbox claims each message on its own, see ``collector.notify.delivery``).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from collector.storage import Database

HOLDER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
"""This process's name in ``task_leases`` (machine, pid, and a random part for a pid
used again)."""


def take(
    conn: Any, name: str, holder: str, now: float, lease_s: float
) -> tuple[bool, float | None]:
    """Take or renew ``name``'s lease for ``holder``: (held, start of the last round)."""
    n = conn.execute(
        "INSERT INTO task_leases (name, holder, expires_at) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
        "expires_at = excluded.expires_at "
        "WHERE task_leases.holder = excluded.holder OR task_leases.expires_at < ?",
        (name, holder, now + lease_s, now),
    ).rowcount
    if n != 1:
        return False, None
    row = conn.execute("SELECT last_round_at FROM task_leases WHERE name = ?", (name,)).fetchone()
    return True, None if row[0] is None else float(row[0])


def ran(conn: Any, name: str, holder: str, started: float) -> None:
    """Record the start of a round run by ``holder`` (nothing if it lost the lease)."""
    conn.execute(
        "UPDATE task_leases SET last_round_at = ?, rounds = rounds + 1 "
        "WHERE name = ? AND holder = ?",
        (started, name, holder),
    )


def release(conn: Any, name: str, holder: str) -> None:
    """Give ``name`` up now (another process may take it at its next try)."""
    conn.execute(
        "UPDATE task_leases SET expires_at = 0 WHERE name = ? AND holder = ?", (name, holder)
    )


class TaskLeases:
    """This process's leases in the database that ``db`` returns."""

    def __init__(self, db: Callable[[], Database], lease_s: float, holder: str = HOLDER) -> None:
        self._db = db
        self.lease_s = float(lease_s)
        self.holder = holder

    def tick(self, interval_s: float) -> float:
        """How often a task with this interval asks for (or renews) its lease."""
        return max(min(interval_s, self.lease_s / 3), 0.5)

    async def take(self, name: str) -> tuple[bool, float | None]:
        now = time.time()
        return await self._db().write(lambda c: take(c, name, self.holder, now, self.lease_s))

    async def ran(self, name: str, started: float) -> None:
        await self._db().write(lambda c: ran(c, name, self.holder, started))

    async def release(self, name: str) -> None:
        await self._db().write(lambda c: release(c, name, self.holder))
