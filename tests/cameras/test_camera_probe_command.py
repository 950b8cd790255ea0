"""``vigil-agent probe onvif://USER:PASS@HOST:PORT [--json]`` (run_probe)."""

from __future__ import annotations

import asyncio
import io
import json

from agent.cameras import run_probe
from agent.cameras.probe_command import EXIT_DEGRADED, EXIT_FAILED, EXIT_OK, EXIT_USAGE
from sim.fleet import SimulatedFleet

STEPS = [
    "tcp_connect",
    "get_system_date_and_time",
    "get_device_information",
    "get_services",
    "get_profiles",
    "get_stream_uri",
    "rtsp_describe",
    "snapshot",
]


def _probe(faults, as_json, index=0, url=None):
    async def go():
        async with SimulatedFleet(2, faults=faults) as fleet:
            out, err = io.StringIO(), io.StringIO()
            target = url or fleet.cameras[index].onvif_url
            code = await run_probe(target, as_json, timeout=1.5, out=out, err=err)
            return fleet, code, out.getvalue(), err.getvalue()

    return asyncio.run(go())


def test_text_output_lists_every_step_with_timing():
    fleet, code, out, _ = _probe(None, False)
    assert code == EXIT_OK
    lines = out.splitlines()
    assert lines[0] == f"probing {fleet.cameras[0].address} as admin"
    for step in STEPS:
        line = next(line for line in lines if line.strip().startswith(step))
        assert " ok " in line and " ms " in line
    assert "verdict: ok" in out
    assert fleet.cameras[0].identity.model in out
    assert "vigil-sim" not in out  # the password is not printed


def test_json_output_for_a_skewed_clock():
    fleet, code, out, _ = _probe({0: "clock=3600"}, True)
    assert code == EXIT_DEGRADED
    doc = json.loads(out)
    assert doc["verdict"] == "degraded"
    assert [s["name"] for s in doc["steps"]] == STEPS
    assert all(s["status"] == "ok" and s["ms"] >= 0 for s in doc["steps"])
    assert abs(doc["camera"]["clock_offset_s"] - 3600) < 2
    assert doc["camera"]["serial"] == fleet.cameras[0].serial
    assert any("clock off by" in r for r in doc["reasons"])


def test_json_output_for_a_wrong_password_and_a_silent_camera():
    _fleet, code, out, _ = _probe({0: "wrong_password"}, True)
    doc = json.loads(out)
    assert code == EXIT_FAILED and doc["verdict"] == "auth_failed"
    assert doc["steps"][-1] == {
        **doc["steps"][-1],
        "name": "get_device_information",
        "status": "failed",
    }

    _fleet, code, out, _ = _probe({1: "blackhole"}, True, index=1)
    doc = json.loads(out)
    assert code == EXIT_FAILED and doc["verdict"] == "unreachable"
    assert doc["steps"][-1]["status"] == "timeout"


def test_bad_urls_go_to_stderr_with_exit_64():
    for url in (
        "http//nope",
        "onvif://host-without-user:80",
        "onvif://u:p@h:notaport",
        "ftp://u:p@h",
    ):
        _fleet, code, out, err = _probe(None, False, url=url)
        assert code == EXIT_USAGE and out == "" and "vigil-agent probe:" in err


def test_offline_camera_text():
    _fleet, code, out, _ = _probe({0: "offline"}, False)
    assert code == EXIT_FAILED
    assert "tcp_connect" in out and "failed" in out and "verdict: unreachable" in out
