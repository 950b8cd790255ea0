"""Cameras on the collector: only changes are written, verdict changes are events,
availability over 24 h / 7 d / 30 d, firmware older than the partner's newest."""

from __future__ import annotations

import pytest

from collector.health import cameras
from harness.database import collector_database
from protocol.messages import Camera

H = 3600.0


def cam(key: str, verdict: str = "ok", **kw: object) -> Camera:
    base: dict[str, object] = {
        "key": key,
        "address": "10.0.0.1",
        "verdict": verdict,
        "manufacturer": "Axis",
        "model": "P1",
        "firmware": "1.2.0",
    }
    base.update(kw)
    return Camera(**base)  # type: ignore[arg-type]


@pytest.fixture
def db(tmp_path):
    d = collector_database(tmp_path / "v.db")

    def setup(c):
        c.execute("INSERT INTO partners (id, name, created_at) VALUES (1, 'p', 0)")
        for sid in ("s1", "s2"):
            c.execute(
                "INSERT INTO servers (id, partner_id, hostname, machine_id, public_key, "
                "enrolled_at) VALUES (?, 1, 'h', ?, ?, 0)",
                (sid, sid, b"\x00"),
            )

    d.write_sync(setup)
    yield d
    d.close()


def test_only_changes_are_written_and_verdict_changes_are_events(db) -> None:
    t0 = 1_000_000.0
    first = [cam("a"), cam("b")]
    changes = db.write_sync(lambda c: cameras.apply_report(c, "s1", first, t0))
    assert {(t.key, t.before, t.after) for t in changes} == {("a", None, "ok"), ("b", None, "ok")}
    again = [cam("a", latency_ms=12.0), cam("b", clock_offset_s=0.4)]  # volatile fields only
    assert db.write_sync(lambda c: cameras.apply_report(c, "s1", again, t0 + 60)) == []
    down = [cam("a", "unreachable", reasons=["no answer"]), cam("b")]
    changes = db.write_sync(lambda c: cameras.apply_report(c, "s1", down, t0 + 120))
    assert [(t.key, t.before, t.after) for t in changes] == [("a", "ok", "unreachable")]
    gone = [cam("a", "unreachable", reasons=["no answer"])]
    changes = db.write_sync(lambda c: cameras.apply_report(c, "s1", gone, t0 + 180))
    assert [(t.key, t.after) for t in changes] == [("b", "removed")]
    events = db.read_sync(lambda c: cameras.events_for(c, "s1", 0))
    assert [(e["camera"], e["from"], e["to"]) for e in events] == [
        ("b", "ok", "removed"),
        ("a", "ok", "unreachable"),
        ("b", None, "ok"),
        ("a", None, "ok"),
    ]


def test_availability_counts_time_up() -> None:
    now = 100 * 24 * H
    # Known for 10 days; down for the last 6 hours.
    events = [(now - 10 * 24 * H, None, "ok"), (now - 6 * H, "ok", "unreachable")]
    first = now - 10 * 24 * H
    assert cameras.availability(events, now, 24 * H, first, "unreachable") == pytest.approx(0.75)
    assert cameras.availability(events, now, 7 * 24 * H, first, "unreachable") == pytest.approx(
        1 - 6 / (7 * 24), abs=1e-4
    )
    # 30-day window, but only known for 10 days: the share of the known time.
    assert cameras.availability(events, now, 30 * 24 * H, first, "unreachable") == pytest.approx(
        1 - 6 / 240, abs=1e-4
    )
    # No change in the window: the current verdict held throughout.
    assert cameras.availability([], now, 24 * H, first, "ok") == 1.0
    assert cameras.availability([], now, 24 * H, first, "auth_failed") == 0.0
    # Degraded still records: it counts as available.
    assert (
        cameras.availability([(now - H, "ok", "degraded")], now, 24 * H, first, "degraded") == 1.0
    )


def test_firmware_older_than_the_partners_newest_is_noted_not_a_verdict(db) -> None:
    t = 2_000_000.0
    db.write_sync(lambda c: cameras.apply_report(c, "s1", [cam("a", firmware="1.9.2")], t))
    db.write_sync(lambda c: cameras.apply_report(c, "s2", [cam("z", firmware="1.10.0")], t))
    # Opt-in, as on the agent: without [cameras] firmware_check nothing is compared.
    s1 = db.read_sync(lambda c: cameras.list_cameras(c, "s1", t + 60))
    assert s1[0]["verdict"] == "ok" and not s1[0]["firmware_outdated"]
    db.write_sync(lambda c: c.execute("UPDATE servers SET state = '{\"firmware_check\":true}'"))
    s1 = db.read_sync(lambda c: cameras.list_cameras(c, "s1", t + 60))
    # A note with its reason; the verdict stays the reported one, as every view counts it.
    assert s1[0]["verdict"] == "ok" and s1[0]["reported_verdict"] == "ok"
    assert s1[0]["firmware_outdated"] and s1[0]["newest_firmware"] == "1.10.0"
    assert any("older than 1.10.0" in r for r in s1[0]["reasons"])
    s2 = db.read_sync(lambda c: cameras.list_cameras(c, "s2", t + 60))
    assert s2[0]["verdict"] == "ok" and not s2[0]["firmware_outdated"]


def test_clock_offset_is_stored_as_a_number(db) -> None:
    t = 2_000_000.0
    skewed = cam(
        "a",
        "degraded",
        clock_offset_s=-93.4,
        reasons=["clock off by -93 s from the recording server (threshold 5 s)"],
    )
    db.write_sync(lambda c: cameras.apply_report(c, "s1", [skewed], t))
    (shown,) = db.read_sync(lambda c: cameras.list_cameras(c, "s1", t + 60))
    assert shown["clock_offset_s"] == -93.4
    # A drift under a second is not worth a write; a larger one is kept (the digest, and
    # so the reported details, leave the offset out).
    for offset, expected in ((-93.9, -93.4), (-120.0, -120.0)):
        moved = cam("a", "degraded", clock_offset_s=offset, reasons=skewed.reasons)
        db.write_sync(lambda c, m=moved: cameras.apply_report(c, "s1", [m], t + 120))
        (shown,) = db.read_sync(lambda c: cameras.list_cameras(c, "s1", t + 180))
        assert shown["clock_offset_s"] == expected
