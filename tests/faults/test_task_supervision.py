"""Background tasks are supervised: a failure is logged once with its traceback, the task
is retried with backoff and its recovery logged once; a task that cannot be kept running
stops the collector with a non-zero status; ``/healthz`` names a stopped task.

The fault injected is real: the table the housekeeping task prunes is renamed away under
the running collector (and back)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from harness.app import app_client
from harness.database import collector_database
from harness.net import http, wait_until
from tests.faults.inject import fill, rename


def task(url: str, name: str) -> dict:
    _, _, body = http("GET", url + "/healthz")
    return json.loads(body)["tasks"][name]


def housekeeping(url: str) -> dict:
    return task(url, "housekeeping")


def test_failing_task_is_logged_once_retried_and_recovers(make_collector, tmp_path: Path):
    data = tmp_path / "data"
    c = make_collector(
        "[collector]\nhousekeeping_interval_s = 1\ntask_retry_max_s = 1\n"
        "task_give_up_after = 1000\n"
        # The report cache reads the reports table too: off, so one task's log is counted.
        "[contracts]\nreport_refresh_s = 0\n",
        data_dir=data,
    )
    rename(data / "vigil.db", "reports", "reports_moved")
    wait_until(lambda: housekeeping(c.url)["failures"] >= 3, what="three failed rounds")
    state = housekeeping(c.url)
    assert state["state"] == "retrying" and "reports" in state["last_error"]
    assert http("GET", c.url + "/healthz")[0] == 200  # retrying is not stopped

    rename(data / "vigil.db", "reports_moved", "reports")
    wait_until(lambda: housekeeping(c.url)["failures"] == 0, what="the task to recover")
    log = c.log()
    assert log.count("background task housekeeping failed") == 1, log
    assert log.count("Traceback") == 1, log
    assert log.count("background task housekeeping recovered") == 1, log


def test_task_that_keeps_failing_stops_the_collector_non_zero(make_collector, tmp_path: Path):
    data = tmp_path / "data"
    c = make_collector(
        "[collector]\nhousekeeping_interval_s = 1\ntask_retry_max_s = 1\ntask_give_up_after = 3\n"
        "[contracts]\nreport_refresh_s = 0\n",  # one task's failures counted
        data_dir=data,
    )
    rename(data / "vigil.db", "reports", "reports_moved")
    assert c.proc is not None
    assert c.proc.wait(60) == 1
    assert "background task housekeeping stopped after 3 failures" in c.log()


def test_a_task_the_collector_serves_without_is_retried_instead_of_stopping_it(
    make_collector, tmp_path: Path
):
    """The monthly reports kept warm are a convenience (a read computes what is not kept):
    past the give-up count their task keeps retrying, the collector keeps running and
    answering, and the task recovers when its table is back."""
    data = tmp_path / "data"
    c = make_collector(
        "[collector]\nhousekeeping_interval_s = 3600\ntask_retry_max_s = 1\n"
        "task_give_up_after = 2\n[contracts]\nreport_refresh_s = 10\n",
        data_dir=data,
    )
    rename(data / "vigil.db", "reports", "reports_moved")
    wait_until(lambda: task(c.url, "report-cache")["failures"] >= 4, what="four failed rounds")
    assert c.proc is not None and c.proc.poll() is None
    state = task(c.url, "report-cache")
    assert state["state"] == "retrying" and "reports" in state["last_error"]
    assert http("GET", c.url + "/healthz")[0] == 200
    assert "background task report-cache failed 2 times in a row" in c.log()

    rename(data / "vigil.db", "reports_moved", "reports")
    wait_until(lambda: task(c.url, "report-cache")["failures"] == 0, what="the task to recover")
    assert c.proc.poll() is None
    assert c.log().count("background task report-cache recovered") == 1


def test_healthz_names_a_stopped_task(tmp_path: Path) -> None:
    async def go() -> tuple[int, dict]:
        (tmp_path / "collector.toml").write_text(
            "[collector]\nhousekeeping_interval_s = 1\ntask_retry_max_s = 1\n"
            "task_give_up_after = 2\n"
        )
        db = collector_database(tmp_path / "vigil.db")
        async with app_client(tmp_path, tmp_path / "collector.toml", database=db) as client:
            db.write_sync(lambda c: c.execute("ALTER TABLE reports RENAME TO reports_moved"))
            for _ in range(100):
                r = await client.get("/healthz")
                body = await r.json()
                if body["tasks"]["housekeeping"]["state"] == "stopped":
                    return r.status, body
                await asyncio.sleep(0.1)
            raise AssertionError(f"the task did not stop: {body}")

    status, body = asyncio.run(go())
    assert status == 503
    assert "tasks" in body["failed"]
    assert "housekeeping" in body["checks"]["tasks"]["detail"]


def test_a_full_disk_pauses_writing_tasks_instead_of_stopping_the_collector(
    make_collector, tmpfs, tmp_path
):
    disk = tmpfs(tmp_path / "disk", "32m")
    c = make_collector(
        '[collector]\nreport_reserve = "4MiB"\nstorage_check_interval_s = 1\n'
        "housekeeping_interval_s = 1\ntask_retry_max_s = 1\ntask_give_up_after = 2\n",
        data_dir=disk / "data",
    )
    filler = fill(disk, 1024 * 1024)
    wait_until(lambda: housekeeping(c.url)["state"] == "paused", what="housekeeping to pause")
    assert c.proc is not None and c.proc.poll() is None
    filler.unlink()
    wait_until(lambda: housekeeping(c.url)["state"] == "running", what="housekeeping to resume")
    assert c.proc.poll() is None
    assert "background task housekeeping resumes" in c.log()
