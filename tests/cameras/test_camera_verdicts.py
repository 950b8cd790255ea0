"""Every fault mode of the simulator and every verdict, over real sockets."""

from __future__ import annotations

import asyncio
import logging
import os

import pytest

from agent.cameras import CameraMonitor
from cameras.support import TIMEOUT_S, by_key, settings_for
from protocol import messages
from sim.fleet import SimulatedFleet

FAULTS = {
    0: "offline",
    1: "blackhole",
    2: "slow=0.05",
    3: "slow=5",
    4: "wrong_password",
    5: "clock=3600",
    6: "no_media",
    7: "stream_down",
    8: "garbage",
    9: "clock=-7200",
    10: "legacy",
}
HEALTHY = 11


def _run_cycle(folder, **overrides):
    async def go():
        async with SimulatedFleet(HEALTHY + 1, faults=FAULTS) as fleet:
            monitor = CameraMonitor(settings_for(fleet.cameras, folder, **overrides), folder)
            try:
                cameras = await monitor.probe_cycle()
            finally:
                await monitor.close()
            return fleet, by_key(cameras)

    return asyncio.run(go())


PROXY = "http://proxy.invalid:3128"


@pytest.fixture(scope="module")
def fault_cycle(tmp_path_factory):
    """One cycle over every fault mode (snapshots on), with proxy variables set and the
    root logger's state noted before and after."""
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("http_proxy", PROXY)
        mp.setenv("https_proxy", PROXY)
        fleet, cams = _run_cycle(tmp_path_factory.mktemp("cycle"), snapshot=True)
        env = (os.environ.get("http_proxy"), os.environ.get("https_proxy"))
    after = (list(root.handlers), root.level)
    return fleet, cams, env, before, after


def test_every_fault_mode_gets_its_verdict(fault_cycle):
    fleet, cams, *_ = fault_cycle
    assert len(cams) == HEALTHY + 1

    healthy = cams[f"cam{HEALTHY}"]
    ident = fleet.cameras[HEALTHY].identity
    assert healthy.verdict == "ok", healthy.reasons
    assert (healthy.manufacturer, healthy.model, healthy.firmware, healthy.serial) == (
        ident.manufacturer,
        ident.model,
        ident.firmware,
        fleet.cameras[HEALTHY].serial,
    )
    assert healthy.stream_ok is True and healthy.snapshot_ok is True
    assert [p.token for p in healthy.profiles] == ["Profile_1", "Profile_2"]
    main = healthy.profiles[0]
    assert (main.encoding, main.width, main.height, main.fps) == (
        ident.encoding,
        ident.width,
        ident.height,
        ident.fps,
    )
    assert healthy.latency_ms is not None and abs(healthy.clock_offset_s) < 2
    assert healthy.services_absent == [] and healthy.reasons == []

    offline = cams["cam0"]
    assert offline.verdict == "unreachable"
    assert "TCP connect" in offline.reasons[0]

    blackhole = cams["cam1"]
    assert blackhole.verdict == "unreachable"
    assert f"no answer within {TIMEOUT_S:g} s" in blackhole.reasons[0]
    assert "TCP connect succeeded" in blackhole.reasons[0]

    assert cams["cam2"].verdict == "ok", cams["cam2"].reasons  # slow, within the timeout
    assert cams["cam3"].verdict == "unreachable"  # slower than the timeout
    assert "no answer within" in cams["cam3"].reasons[0]

    auth = cams["cam4"]
    assert auth.verdict == "auth_failed"
    assert "NotAuthorized" in auth.reasons[0] or "refused the credentials" in auth.reasons[0]

    for key, hours in (("cam5", 1), ("cam9", -2)):
        skewed = cams[key]
        # Probed successfully (the offset was applied to WS-UsernameToken) ...
        assert skewed.manufacturer and skewed.serial and skewed.stream_ok is True
        assert len(skewed.profiles) == 2
        # ... and reported degraded for its clock.
        assert skewed.verdict == "degraded"
        assert abs(skewed.clock_offset_s - hours * 3600) < 2
        assert any("clock off by" in r for r in skewed.reasons)

    no_media = cams["cam6"]
    assert no_media.verdict == "ok", no_media.reasons
    assert no_media.services_absent == ["media"]
    assert no_media.stream_ok is None and no_media.profiles == []

    stream = cams["cam7"]
    assert stream.verdict == "degraded"
    assert stream.stream_ok is False
    assert any("stream not answering" in r and "503" in r for r in stream.reasons)

    legacy = cams["cam10"]
    assert legacy.verdict == "ok", legacy.reasons
    assert len(legacy.profiles) == 2 and legacy.stream_ok is True

    garbage = cams["cam8"]
    assert garbage.verdict == "error"
    assert "malformed XML" in garbage.reasons[0]
    assert garbage.error


def test_every_camera_message_passes_the_collectors_validation(fault_cycle):
    _fleet, cams, *_ = fault_cycle
    for cam in cams.values():
        again = messages.decode(messages.encode(cam), messages.Camera)
        assert again == cam


def test_the_probe_never_writes_to_a_camera(fault_cycle):
    fleet, *_ = fault_cycle
    sent = set()
    for camera in fleet.cameras:
        sent |= set(camera.requests)
    assert sent  # the cameras were asked something
    allowed = {"RTSP DESCRIBE", "GET snapshot", "garbage"}
    assert all(op.startswith("Get") or op in allowed for op in sent), sent


def test_proxy_variables_and_root_logging_survive_a_cycle(fault_cycle):
    _fleet, cams, env, before, after = fault_cycle
    assert cams[f"cam{HEALTHY}"].verdict == "ok"  # camera traffic ignores the proxy
    assert env == (PROXY, PROXY)
    assert after == before


def test_one_silent_camera_of_twenty_delays_no_other(tmp_path):
    silent = 7

    async def go():
        async with SimulatedFleet(20, faults={silent: "blackhole"}) as fleet:
            monitor = CameraMonitor(settings_for(fleet.cameras, tmp_path), tmp_path)
            try:
                return by_key(await monitor.probe_cycle()), monitor.last_results
            finally:
                await monitor.close()

    cams, results = asyncio.run(go())
    assert len(cams) == 20
    assert cams[f"cam{silent}"].verdict == "unreachable"
    assert "no answer within" in cams[f"cam{silent}"].reasons[0]
    assert results[f"cam{silent}"].outcome == "timeout"
    for key, cam in cams.items():
        if key != f"cam{silent}":
            assert cam.verdict == "ok", (key, cam.reasons)
            assert results[key].outcome == "ok"
            # Each finished on its own, without reaching the timeout.
            assert all(step.status != "timeout" for step in results[key].steps)


def test_concurrency_bound_of_one_still_completes(tmp_path):
    async def go():
        async with SimulatedFleet(3, faults={1: "blackhole"}) as fleet:
            monitor = CameraMonitor(
                settings_for(fleet.cameras, tmp_path, concurrency=1, timeout_s=0.5), tmp_path
            )
            try:
                return by_key(await monitor.probe_cycle())
            finally:
                await monitor.close()

    cams = asyncio.run(go())
    assert [cams[f"cam{i}"].verdict for i in range(3)] == ["ok", "unreachable", "ok"]


def test_firmware_older_than_newest_of_the_model_on_this_server(tmp_path):
    # Identity: camera 5 is the second AXIS P3245-LVE and runs the older firmware line.
    async def go():
        async with SimulatedFleet(11) as fleet:
            chosen = [fleet.cameras[0], fleet.cameras[5], fleet.cameras[10]]
            monitor = CameraMonitor(settings_for(chosen, tmp_path, firmware_check=True), tmp_path)
            try:
                return fleet, by_key(await monitor.probe_cycle())
            finally:
                await monitor.close()

    fleet, cams = asyncio.run(go())
    assert fleet.cameras[5].identity.firmware != fleet.cameras[0].identity.firmware
    assert cams["cam0"].verdict == "ok" and cams["cam10"].verdict == "ok"
    assert cams["cam5"].verdict == "degraded"
    assert "older than" in cams["cam5"].reasons[0]
