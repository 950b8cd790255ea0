"""onvif-zeep-async's known problems, and the simulator's WS-UsernameToken checks."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import textwrap

import pytest

from agent.cameras import onvif_lib
from sim.fleet import SimulatedFleet


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_wsdls_load_offline_and_import_leaves_logging_alone():
    """In a fresh process: no socket is opened while the WSDLs are parsed, and the root
    logger has no handler after the import (the library calls logging.basicConfig)."""
    proc = _python(
        """
        import asyncio, logging, sys
        connects = []
        def hook(event, args):
            if event == "socket.connect":
                connects.append(args)
        sys.addaudithook(hook)
        from agent.cameras import onvif_lib
        onvif_lib.onvif_client()
        root = logging.getLogger()
        assert root.handlers == [], root.handlers
        assert root.level == logging.WARNING, root.level
        asyncio.run(onvif_lib.warm_documents())
        assert set(onvif_lib._documents) == {"devicemgmt", "media"}
        assert connects == [], connects
        print("fine")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "fine"


def test_documents_are_parsed_once_under_concurrency():
    async def go():
        await asyncio.gather(*(onvif_lib.warm_documents() for _ in range(20)))
        return onvif_lib._documents["devicemgmt"], onvif_lib._documents["media"]

    first = asyncio.run(go())
    second = asyncio.run(go())
    assert first[0] is second[0] and first[1] is second[1]


def test_a_skewed_camera_rejects_a_token_without_the_offset():
    """What makes the offset necessary: the simulator checks Created against its clock."""

    async def go(offset_s):
        import aiohttp

        async with SimulatedFleet(1, faults={0: "clock=3600"}) as fleet:
            await onvif_lib.warm_documents()
            async with aiohttp.ClientSession() as session:
                clients = onvif_lib.OnvifClients(
                    onvif_lib.make_transport(session), "admin", fleet.cameras[0].password
                )
                if offset_s is not None:
                    clients.wsse.dt_diff = dt.timedelta(seconds=offset_s)
                device = clients.service(onvif_lib.DEVICE, fleet.cameras[0].device_url)
                return await device.GetDeviceInformation()

    import zeep.exceptions

    with pytest.raises(zeep.exceptions.Fault, match="away from the camera's clock"):
        asyncio.run(go(None))
    assert asyncio.run(go(3600)).Manufacturer == "AXIS"


def test_a_server_without_cameras_does_not_load_the_onvif_library(tmp_path):
    proc = _python(
        f"""
        import asyncio, sys
        from agent.cameras import CameraMonitor, parse_camera_config
        monitor = CameraMonitor(parse_camera_config({{}}, "agent.toml"), {str(tmp_path)!r})
        assert asyncio.run(monitor.probe_cycle()) == []
        asyncio.run(monitor.close())
        assert "onvif" not in sys.modules and "zeep" not in sys.modules
        print("fine")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "fine"
