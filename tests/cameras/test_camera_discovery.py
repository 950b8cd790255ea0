"""WS-Discovery: unconfigured cameras are reported as "discovered" and never probed.

The simulator's responder listens on a UDP port of 127.0.0.1 and the agent sends a unicast
Probe there (``discovery_targets``): no multicast leaves the machine in the tests.
"""

from __future__ import annotations

import asyncio

from agent.cameras import CameraMonitor
from agent.cameras.discovery import interface_addresses, parse_matches, probe_message
from cameras.support import by_key, settings_for
from sim.fleet import SimulatedFleet


def test_unconfigured_cameras_are_discovered_and_not_probed(tmp_path):
    async def go():
        async with SimulatedFleet(5, discovery=True) as fleet:
            configured = fleet.cameras[:3]
            settings = settings_for(
                configured,
                tmp_path,
                discovery=True,
                discovery_targets=[f"127.0.0.1:{fleet.discovery_port}"],
                discovery_timeout_s=0.5,
            )
            monitor = CameraMonitor(settings, tmp_path)
            try:
                return fleet, by_key(await monitor.probe_cycle())
            finally:
                await monitor.close()

    fleet, cams = asyncio.run(go())
    assert fleet.discovery_responder.probes == 1
    assert {cams[f"cam{i}"].verdict for i in range(3)} == {"ok"}
    discovered = [c for c in cams.values() if c.verdict == "discovered"]
    assert sorted(c.key for c in discovered) == sorted(c.address for c in fleet.cameras[3:])
    for cam in discovered:
        assert "not probed" in cam.reasons[0]
        sim_cam = next(c for c in fleet.cameras if c.address == cam.key)
        assert cam.model == sim_cam.identity.model
    # Nothing was sent to the unconfigured cameras: no credentials, no request at all.
    assert not fleet.cameras[3].requests and not fleet.cameras[4].requests


def test_probe_message_and_parsing():
    message = probe_message("urn:uuid:1234")
    assert b"NetworkVideoTransmitter" in message and b"urn:uuid:1234" in message
    assert parse_matches(b"not xml") == []
    assert interface_addresses(["lo"]) == ["127.0.0.1"]
    assert interface_addresses(["127.0.0.1", "no-such-interface0"]) == ["127.0.0.1"]
