"""A full disk under the agent's state directory (a small tmpfs mounted by the test):
no report is written short, and none held in memory disappears without a trace."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from agent.spool import Spool
from harness.database import collector_sql
from harness.net import wait_until
from harness.processes import Collector
from tests.faults.disk_full import fill_disk
from tests.faults.test_resilience import stored_reports


def test_a_report_is_never_written_short(tmp_path: Path, tmpfs) -> None:
    """One page left, a report of about 11,600 bytes: refused whole, nothing half-written."""
    disk = tmpfs(tmp_path / "disk", "256k")
    spool = Spool(disk / "spool", 1 << 20)
    spool.append(1, b'{"seq":1}')
    room = disk / "room"
    room.write_bytes(b"\0" * 4096)
    filler = fill_disk(disk)
    room.unlink()  # exactly one page free
    report = b'{"seq":2,"pad":"' + b"x" * 11_600 + b'"}'
    with pytest.raises(OSError):
        spool.append(2, report)
    names = sorted(p.name for p in (disk / "spool").iterdir())
    assert names == ["000000000001.json", "marks.json", "reserved"] or names == [
        "000000000001.json",
        "reserved",
    ], names
    assert len(spool) == 1
    filler.unlink()
    spool.append(2, report)
    again = Spool(disk / "spool", 1 << 20)
    assert [seq for seq, _ in again.peek(10, 1 << 30)] == [1, 2]
    assert again.peek(10, 1 << 30)[1][1] == report


def server_row(collector: Collector, server_id: str) -> tuple[int, int]:
    with collector_sql(collector.data_dir, collector.env) as db:
        row = db.execute(
            "SELECT dropped_reports, missing_reports FROM servers WHERE id = ?", (server_id,)
        ).fetchone()
    return (row[0], row[1])


def test_reports_held_in_memory_at_shutdown_are_counted_never_reused(
    collector: Collector, make_agent, tmpfs
) -> None:
    collector.cli("partner", "add", "acme")
    collector.cli("server", "interval", "--partner", "acme", "1s")
    token = collector.last_line("token", "create", "--partner", "acme")
    agent = make_agent()
    tmpfs(agent.state_dir, "512k")
    server_id = agent.enroll(collector.url, token)
    agent.start()
    wait_until(lambda: len(stored_reports(collector, server_id)) >= 2, 30, what="reports")
    filler = fill_disk(agent.state_dir)
    wait_until(lambda: "holding reports in memory" in agent.log_path.read_text(), 30, what="held")
    time.sleep(2.5)  # a few more reports collected into memory
    agent.kill(signal.SIGTERM)
    log = agent.log_path.read_text()
    m = re.search(r"stopping with (\d+) report\(s\) \(numbers (\d+) to (\d+)\)", log)
    assert m, log[-3000:]
    lost, first, last = (int(g) for g in m.groups())
    assert lost == last - first + 1 >= 1
    filler.unlink()
    agent.start()
    wait_until(
        lambda: max((s for s, _ in stored_reports(collector, server_id)), default=0) > last + 1,
        30,
        what="reports after the restart",
    )
    agent.kill(signal.SIGTERM)
    seqs = [seq for seq, _ in stored_reports(collector, server_id)]
    assert len(seqs) == len(set(seqs)), "a sequence number used twice"
    assert not set(range(first, last + 1)) & set(seqs), "a lost report's number reused"
    assert set(seqs) | set(range(first, last + 1)) == set(range(1, max(seqs) + 1))
    dropped, missing = server_row(collector, server_id)
    assert dropped == lost
    assert missing == lost
    assert agent.status()["spool"]["dropped_total"] == lost


def test_acknowledged_reports_leave_the_queue_when_the_marks_cannot_be_written(
    tmp_path: Path,
) -> None:
    """The marks stay unwritable (their temporary file's name is taken by a directory):
    acknowledging neither raises nor sends anything twice, and a crash before the marks
    are written costs one duplicate at most, never a reused number."""
    spool = Spool(tmp_path / "spool", 1 << 20)
    for seq in (1, 2, 3):
        spool.append(seq, b'{"seq":%d}' % seq)
    blocker = tmp_path / "spool" / ".marks.json.tmp"
    blocker.mkdir()
    spool.ack([1, 2, 3])
    assert len(spool) == 0 and spool.peek(10, 1 << 30) == []
    assert spool.next_seq() == 4
    files = sorted(p.name for p in (tmp_path / "spool").glob("0*.json"))
    assert files == ["000000000003.json"]  # the highest carries the number forward

    blocker.rmdir()
    after_crash = Spool(tmp_path / "spool", 1 << 20)
    assert [seq for seq, _ in after_crash.peek(10, 1 << 30)] == [3]  # sent again: a duplicate
    assert after_crash.next_seq() == 4
    assert after_crash.dropped_total == 0

    spool.append(4, b'{"seq":4}')  # room again: the marks are written, the kept file goes
    assert sorted(p.name for p in (tmp_path / "spool").glob("0*.json")) == ["000000000004.json"]
    assert Spool(tmp_path / "spool", 1 << 20).next_seq() == 5
