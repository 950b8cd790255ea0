"""The supervisor itself: restarts with backoff, gives up after too many failures in the
window, and counts failures of jobs scheduled without it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agent.supervisor import Supervisor


def test_a_loop_restarts_then_runs_to_its_end(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []

    async def loop() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise ValueError("boom")

    async def go() -> Supervisor:
        sup = Supervisor(lambda: None, base_delay_s=0.01)
        sup.start("loop", loop)
        await asyncio.wait_for(asyncio.gather(*sup._running), 10)
        assert sup.tasks["loop"].state == "stopped"
        return sup

    with caplog.at_level(logging.ERROR, "vigil.agent.supervisor"):
        sup = asyncio.run(go())
    assert len(runs) == 3
    assert sup.tasks["loop"].failures == 2
    assert not sup.gave_up.is_set()
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1  # the same error again is one line
    assert "task loop failed again: ValueError: boom" in caplog.text


def test_a_loop_that_keeps_failing_makes_it_give_up() -> None:
    async def loop() -> None:
        raise RuntimeError("always")

    async def go() -> Supervisor:
        sup = Supervisor(lambda: None, max_failures=3, base_delay_s=0.01)
        sup.start("loop", loop)
        await asyncio.wait_for(sup.gave_up.wait(), 10)
        return sup

    sup = asyncio.run(go())
    assert sup.failed_task == "loop"
    assert sup.not_running() == {"loop": sup.snapshot()["loop"]}
    assert sup.snapshot()["loop"]["state"] == "failed"


def test_jobs_are_counted_wrapped_or_not() -> None:
    async def bad() -> None:
        raise KeyError("x")

    async def go() -> Supervisor:
        sup = Supervisor(lambda: None, max_failures=2)
        job = sup.job("report", bad)
        await job()
        assert sup.tasks["report"].state == "restarting"
        sup.job_succeeded("report")  # the scheduler's event for a wrapped job changes nothing
        assert sup.tasks["report"].state == "restarting"
        sup.job_failed("backup", OSError("disk"))
        assert sup.tasks["backup"].state == "restarting"
        sup.job_succeeded("backup")
        assert sup.tasks["backup"].state == "running"
        await job()
        return sup

    sup = asyncio.run(go())
    assert sup.gave_up.is_set() and sup.failed_task == "report"
