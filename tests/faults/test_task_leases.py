"""Scheduled work shared by several collector processes: a task's round runs in the one
process holding its lease, the period is kept across holders, and when the holder dies
another takes the task over once the lease has expired (the database is the test's
SQLite file, or its PostgreSQL database under ``VIGIL_TEST_DB=postgresql``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from collector.storage import Database
from collector.supervision import Supervisor
from collector.task_leases import TaskLeases, release, take
from harness.database import collector_database


class Rounds(list[tuple[str, float]]):
    """The rounds run, (holder, time), and a way to wait for more of them."""

    def __init__(self) -> None:
        super().__init__()
        self.more = asyncio.Event()

    def ran(self, holder: str) -> None:
        self.append((holder, time.time()))
        self.more.set()

    async def until(self, done: Callable[[], bool]) -> None:
        while not done():
            self.more.clear()
            await asyncio.wait_for(self.more.wait(), 30)


def _lease_row(db: Database, name: str) -> tuple[str, float, float | None]:
    row = db.read_sync(
        lambda c: c.execute(
            "SELECT holder, expires_at, last_round_at FROM task_leases WHERE name = ?", (name,)
        ).fetchone()
    )
    return str(row[0]), float(row[1]), None if row[2] is None else float(row[2])


def test_a_lease_is_held_by_one_holder_until_it_expires_or_is_released(tmp_path: Path) -> None:
    db = collector_database(tmp_path / "vigil.db")
    try:
        t0 = 1_000_000.0
        assert db.write_sync(lambda c: take(c, "checks", "a", t0, 30)) == (True, None)
        assert db.write_sync(lambda c: take(c, "checks", "b", t0 + 1, 30))[0] is False
        assert db.write_sync(lambda c: take(c, "checks", "a", t0 + 20, 30))[0] is True  # renewed
        assert db.write_sync(lambda c: take(c, "checks", "b", t0 + 40, 30))[0] is False
        assert db.write_sync(lambda c: take(c, "checks", "b", t0 + 51, 30))[0] is True  # expired
        assert db.write_sync(lambda c: take(c, "checks", "a", t0 + 52, 30))[0] is False
        assert db.write_sync(lambda c: take(c, "other", "a", t0 + 52, 30))[0] is True
        db.write_sync(lambda c: release(c, "checks", "b"))
        assert db.write_sync(lambda c: take(c, "checks", "a", t0 + 53, 30))[0] is True
        assert _lease_row(db, "checks")[0] == "a"
    finally:
        db.close()


def test_rounds_run_in_one_process_and_move_when_the_holder_dies(tmp_path: Path) -> None:
    db = collector_database(tmp_path / "vigil.db")
    rounds = Rounds()

    def supervisor(holder: str) -> Supervisor:
        sup = Supervisor(leases=TaskLeases(lambda: db, 3, holder=holder))

        async def round() -> None:
            rounds.ran(holder)

        sup.every("checks", 0.5, round, first_delay_s=0)
        return sup

    async def go() -> tuple[float, dict, dict]:
        a = supervisor("a")
        await asyncio.sleep(0.3)  # a asks first
        b = supervisor("b")
        await rounds.until(lambda: len(rounds) >= 4)
        states = a.states()["checks"], b.states()["checks"]
        # a dies without a word: its task ends, its lease is left to expire.
        dying = a._tasks["checks"].task
        assert dying is not None
        dying.cancel()
        await asyncio.gather(dying, return_exceptions=True)
        expires_at = _lease_row(db, "checks")[1]
        await rounds.until(lambda: any(who == "b" for who, _ in rounds))
        await b.stop_all()
        return expires_at, *states

    try:
        expires_at, a_state, b_state = asyncio.run(go())
        assert a_state["holds"] is True and a_state["state"] == "running"
        assert b_state["holds"] is False and b_state["state"] == "standby"
        by_a = [at for who, at in rounds if who == "a"]
        by_b = [at for who, at in rounds if who == "b"]
        assert len(by_a) >= 4 and by_b, rounds
        assert max(by_a) < min(by_b), "b ran nothing while a held the task"
        assert min(by_b) >= expires_at, "b took over only once a's lease had expired"
        assert _lease_row(db, "checks")[0] == "b"
    finally:
        db.close()


def test_a_clean_stop_hands_the_task_over_and_keeps_the_period(tmp_path: Path) -> None:
    """A stopping holder gives its lease up; the next holder runs the next round one
    period after the last one, not at once."""
    db = collector_database(tmp_path / "vigil.db")
    rounds = Rounds()

    def supervisor(holder: str) -> Supervisor:
        sup = Supervisor(leases=TaskLeases(lambda: db, 30, holder=holder))

        async def round() -> None:
            rounds.ran(holder)

        sup.every("sweep", 1.5, round, first_delay_s=0)
        return sup

    async def go() -> None:
        a = supervisor("a")
        await rounds.until(lambda: len(rounds) >= 1)
        b = supervisor("b")
        await asyncio.sleep(0.2)
        await a.stop_all()
        await rounds.until(lambda: len(rounds) >= 2)
        await b.stop_all()

    try:
        asyncio.run(go())
        (first, at_a), (second, at_b) = rounds[:2]
        assert (first, second) == ("a", "b")
        assert at_b - at_a >= 1.5, "the period is kept across holders"
    finally:
        db.close()
