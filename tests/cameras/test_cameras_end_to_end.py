"""Agent, simulated cameras and collector as separate processes: the partner sees each
camera's verdict, the counts by verdict, and the server's status takes them into account."""

from __future__ import annotations

from pathlib import Path

from harness.cameras import simulated_cameras
from harness.net import wait_until
from harness.processes import Collector


def test_camera_verdicts_reach_the_partner(
    collector: Collector, make_agent, tmp_path: Path
) -> None:
    key, token = collector.partner("acme")
    collector.cli("server", "interval", "--partner", "acme", "2s")
    with simulated_cameras(4, tmp_path, "1:wrong_password,2:offline,3:clock=3600") as fleet:
        assert len(fleet.cameras) == 4
        extra = fleet.table.replace("[cameras]", "[cameras]\ntimeout_s = 4\nflap_threshold = 1", 1)
        agent = make_agent()
        agent.config.write_text(agent.config.read_text() + "\n" + extra)
        server_id = agent.enroll(collector.url, token)
        agent.start()

        def verdicts() -> dict[str, str] | None:
            status, body = collector.api(key, f"/api/v1/servers/{server_id}/cameras")
            if status != 200 or body["count"] < 4:
                return None
            return {c["key"]: c["verdict"] for c in body["cameras"]}

        got = wait_until(verdicts, 60, interval=0.5, what="four camera verdicts")
        assert set(got) == {f"sim-{i}" for i in range(4)}  # the ids --write-agent-config gave
        assert {int(k[4:]): v for k, v in got.items()} == {
            0: "ok",
            1: "auth_failed",
            2: "unreachable",
            3: "degraded",
        }
        cams = collector.api(key, f"/api/v1/servers/{server_id}/cameras")[1]["cameras"]
        skewed = next(c for c in cams if c["key"] == "sim-3")
        assert skewed["serial"] == fleet.cameras[3]["serial"], "probed in full despite the clock"
        assert any("clock" in r for r in skewed["reasons"])
        view = collector.api(key, f"/api/v1/servers/{server_id}")[1]
        assert view["cameras"]["total"] == 4
        assert view["cameras"]["by_verdict"] == {
            "ok": 1,
            "auth_failed": 1,
            "unreachable": 1,
            "degraded": 1,
        }
        assert view["status"] == "warning" and "2 camera(s) down" in view["status_reasons"]

        # The plain status names each camera and its verdict, not only the counts.
        def plain_status() -> str | None:
            out = agent.cmd("status").stdout
            return out if "sim-3" in out else None

        plain = wait_until(plain_status, 30, what="cameras in the plain status")
        lines = {line.split()[0]: line for line in plain.splitlines() if line.startswith("  ")}
        assert "1 auth_failed, 1 degraded, 1 ok, 1 unreachable" in plain
        assert lines["sim-2"].split()[1] == "unreachable" and "clock off" in lines["sim-3"]
