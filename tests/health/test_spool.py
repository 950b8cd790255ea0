"""The durable spool: order, bound, exactly-once marks, recovery from a cut-short write."""

from __future__ import annotations

from pathlib import Path

from agent.spool import Spool


def test_reports_come_out_oldest_first_and_leave_only_when_acknowledged(tmp_path: Path) -> None:
    sp = Spool(tmp_path, 1 << 20)
    for seq in (1, 2, 3):
        sp.append(seq, b'{"n":%d}' % seq)
    assert [s for s, _ in sp.peek(10, 1 << 20)] == [1, 2, 3]
    assert [s for s, _ in sp.peek(2, 1 << 20)] == [1, 2]
    sp.ack([1, 2])
    assert [s for s, _ in sp.peek(10, 1 << 20)] == [3]
    again = Spool(tmp_path, 1 << 20)
    assert [s for s, _ in again.peek(10, 1 << 20)] == [3]
    assert again.next_seq() == 4 and again.last_acked == 2


def test_sequence_never_repeats_after_everything_is_acknowledged(tmp_path: Path) -> None:
    sp = Spool(tmp_path, 1 << 20)
    sp.append(1, b"a")
    sp.append(2, b"b")
    sp.ack([1, 2])
    assert len(sp) == 0
    assert Spool(tmp_path, 1 << 20).next_seq() == 3


def test_bound_drops_oldest_and_counts_them(tmp_path: Path) -> None:
    sp = Spool(tmp_path, 1000)
    for seq in range(1, 11):
        sp.append(seq, b"x" * 300)
    assert sp.bytes <= 1000
    kept = [s for s, _ in sp.peek(100, 1 << 20)]
    assert kept == [8, 9, 10]
    assert sp.dropped_total == 7
    reopened = Spool(tmp_path, 1000)
    assert reopened.dropped_total == 7
    sp.ack(kept)
    assert Spool(tmp_path, 1000).next_seq() == 11


def test_a_single_report_larger_than_the_bound_is_still_kept(tmp_path: Path) -> None:
    sp = Spool(tmp_path, 100)
    sp.append(1, b"y" * 500)
    assert [s for s, _ in sp.peek(10, 1 << 20)] == [1]


def test_cut_short_write_and_acknowledged_leftovers_are_cleaned_at_open(tmp_path: Path) -> None:
    sp = Spool(tmp_path, 1 << 20)
    for seq in (1, 2, 3):
        sp.append(seq, b"r")
    sp.ack([1, 2])
    # A crash after the mark was written but before the files were deleted, and a
    # temporary file of a write that never finished:
    (tmp_path / f"{2:012d}.json").write_bytes(b"r")
    (tmp_path / f".{4:012d}.json.tmp").write_bytes(b"half")
    again = Spool(tmp_path, 1 << 20)
    assert [s for s, _ in again.peek(10, 1 << 20)] == [3]
    assert not list(tmp_path.glob(".*.tmp"))


def test_peek_respects_a_byte_budget_but_always_returns_one(tmp_path: Path) -> None:
    sp = Spool(tmp_path, 1 << 20)
    for seq in (1, 2, 3):
        sp.append(seq, b"z" * 400)
    assert [s for s, _ in sp.peek(10, 900)] == [1, 2]
    assert [s for s, _ in sp.peek(10, 10)] == [1]


def test_quarantine_sets_a_refused_report_aside(tmp_path: Path) -> None:
    sp = Spool(tmp_path, 1 << 20)
    sp.append(1, b"bad")
    sp.append(2, b"good")
    sp.quarantine(1, "400 invalid_field")
    assert [s for s, _ in sp.peek(10, 1 << 20)] == [2]
    assert (tmp_path / "rejected" / f"{1:012d}.json").read_bytes() == b"bad"
    assert Spool(tmp_path, 1 << 20).next_seq() == 3
