"""Services, profiles and stream URI are re-read every ``inventory_every`` probes, and at
once when the device or its stream changed."""

from __future__ import annotations

import asyncio

from agent.cameras import CameraMonitor
from cameras.support import by_key, settings_for
from sim.fleet import SimulatedFleet


def _cycles(tmp_path, n, faults=None, between=None, **overrides):
    async def go():
        async with SimulatedFleet(3, faults=faults) as fleet:
            monitor = CameraMonitor(settings_for(fleet.cameras, tmp_path, **overrides), tmp_path)
            out = []
            try:
                for i in range(n):
                    if between:
                        between(i, fleet)
                    cams = by_key(await monitor.probe_cycle())
                    out.append((cams, {k: r.steps for k, r in monitor.last_results.items()}))
            finally:
                await monitor.close()
            return fleet, out

    return asyncio.run(go())


def test_inventory_is_reused_between_refreshes(tmp_path):
    fleet, out = _cycles(tmp_path, 4, faults={2: "no_media"}, inventory_every=3)
    assert fleet.cameras[0].requests["GetProfiles"] == 2  # cycles 1 and 4
    assert fleet.cameras[0].requests["GetDeviceInformation"] == 4  # every cycle
    assert fleet.cameras[0].requests["RTSP DESCRIBE"] >= 4  # the stream, every cycle
    steps = {s.name: s.status for s in out[1][1]["cam0"]}
    assert steps["get_profiles"] == "cached" and steps["rtsp_describe"] == "ok"
    for cams, _steps in out:
        assert cams["cam0"].verdict == "ok" and len(cams["cam0"].profiles) == 2
        assert cams["cam2"].verdict == "ok" and cams["cam2"].services_absent == ["media"]


def test_every_probe_reads_everything_with_inventory_every_1(tmp_path):
    fleet, _out = _cycles(tmp_path, 2, inventory_every=1)
    assert fleet.cameras[0].requests["GetProfiles"] == 2


def test_a_failing_stream_rereads_the_inventory_before_judging(tmp_path):
    def between(i, fleet):
        fleet.cameras[1].faults.stream_down = i >= 1

    fleet, out = _cycles(tmp_path, 2, between=between, inventory_every=10)
    cams, steps = out[1]
    assert cams["cam1"].verdict == "degraded" and cams["cam1"].stream_ok is False
    names = [(s.name, s.status) for s in steps["cam1"]]
    assert ("get_profiles", "cached") in names and ("get_profiles", "ok") in names
    assert fleet.cameras[1].requests["GetStreamUri"] == 2
