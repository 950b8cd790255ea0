"""Flap damping and device replacement, pure and over the wire, and the state file."""

from __future__ import annotations

import asyncio
import json

from agent.cameras import CameraMonitor
from agent.cameras.damping import STATE_FILE, DampingStore
from cameras.support import by_key, settings_for
from sim.fleet import SimulatedFleet


def test_verdict_changes_only_after_n_equal_results(tmp_path):
    store = DampingStore(tmp_path, threshold=2)
    assert store.apply("c", "ok", []).verdict == "ok"  # first sight: nothing to damp
    assert store.apply("c", "unreachable", ["down"]).verdict == "ok"
    assert store.apply("c", "ok", []).verdict == "ok"  # the blip is forgotten
    assert store.apply("c", "unreachable", ["down"]).verdict == "ok"
    state = store.apply("c", "unreachable", ["down again"])
    assert (state.verdict, state.reasons) == ("unreachable", ["down again"])
    # A different failure restarts the count.
    assert store.apply("c", "auth_failed", ["no"]).verdict == "unreachable"
    assert store.apply("c", "error", ["x"]).verdict == "unreachable"
    assert store.apply("c", "error", ["x"]).verdict == "error"


def test_threshold_three_and_one(tmp_path):
    three = DampingStore(tmp_path / "a", threshold=3)
    three.apply("c", "ok", [])
    assert [three.apply("c", "degraded", ["slow"]).verdict for _ in range(3)] == [
        "ok",
        "ok",
        "degraded",
    ]
    one = DampingStore(tmp_path / "b", threshold=1)
    one.apply("c", "ok", [])
    assert one.apply("c", "error", ["e"]).verdict == "error"


def test_state_survives_a_restart_and_is_written_atomically(tmp_path):
    store = DampingStore(tmp_path, threshold=2)
    store.apply("c", "ok", [])
    store.apply("c", "unreachable", ["down"])  # 1 of 2
    store.record_serial("c", "SN1")
    store.save()
    doc = json.loads((tmp_path / STATE_FILE).read_text())
    assert doc["version"] == 1 and doc["cameras"]["c"]["candidate"] == "unreachable"
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]  # no temporary left over

    again = DampingStore(tmp_path, threshold=2)
    again.load()
    assert again.serial("c") == "SN1"
    assert again.apply("c", "unreachable", ["down"]).verdict == "unreachable"  # 2 of 2


def test_unreadable_state_starts_afresh(tmp_path):
    (tmp_path / STATE_FILE).write_text("{not json")
    store = DampingStore(tmp_path, threshold=2)
    store.load()
    assert store.cameras == {}


def test_damping_over_the_wire_across_a_restart(tmp_path):
    """A stream going down is reported after two probes, even with a restart between."""

    async def go():
        async with SimulatedFleet(2) as fleet:
            settings = settings_for(fleet.cameras, tmp_path, flap_threshold=2)
            seen = []
            monitor = CameraMonitor(settings, tmp_path)
            try:
                seen.append(by_key(await monitor.probe_cycle()))
                fleet.cameras[1].faults.stream_down = True
                seen.append(by_key(await monitor.probe_cycle()))
            finally:
                await monitor.close()
            monitor = CameraMonitor(settings, tmp_path)  # the agent restarts
            try:
                seen.append(by_key(await monitor.probe_cycle()))
                fleet.cameras[1].faults.stream_down = False
                seen.append(by_key(await monitor.probe_cycle()))
                seen.append(by_key(await monitor.probe_cycle()))
            finally:
                await monitor.close()
            return seen

    seen = asyncio.run(go())
    cam = [cycle["cam1"] for cycle in seen]
    assert [c.verdict for c in cam] == ["ok", "ok", "degraded", "degraded", "ok"]
    assert [c.raw_verdict for c in cam] == ["ok", "degraded", "degraded", "ok", "ok"]
    assert cam[1].raw_reasons and "stream not answering" in cam[1].raw_reasons[0]
    assert "stream not answering" in cam[2].reasons[0]
    assert all(cycle["cam0"].verdict == "ok" for cycle in seen)


def test_serial_change_is_reported_as_replaced_then_accepted(tmp_path):
    async def go():
        async with SimulatedFleet(1) as fleet:
            settings = settings_for(fleet.cameras, tmp_path, flap_threshold=2)
            monitor = CameraMonitor(settings, tmp_path)
            try:
                out = [(await monitor.probe_cycle())[0]]
                old = fleet.cameras[0].serial
                fleet.cameras[0].replace("NEWUNIT0001")
                for _ in range(4):
                    out.append((await monitor.probe_cycle())[0])
                return old, out
            finally:
                await monitor.close()

    old, out = asyncio.run(go())
    assert [c.verdict for c in out] == ["ok", "ok", "degraded", "degraded", "ok"]
    assert out[2].serial == "NEWUNIT0001"
    assert f"serial number changed from {old} to NEWUNIT0001" in out[2].reasons[0]
    assert "device replaced" in out[2].reasons[0]
