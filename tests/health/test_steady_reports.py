"""Steady reports: an agent whose camera inventory is the one the collector acknowledged
leaves it out, so a report's size does not grow with the cameras; the collector keeps the
cameras and their counts, and asks for the whole inventory whenever it cannot vouch for it."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from harness.cameras import simulated_cameras
from harness.net import http, wait_until
from harness.processes import Collector
from harness.signed import batch, post_signed, report
from protocol.camera_digest import cameras_digest
from protocol.messages import Camera

REPORTS = "/api/v1/agent/reports"


def _cameras(*verdicts: str) -> list[dict[str, object]]:
    return [
        {"key": f"cam-{i}", "address": f"10.0.0.{i + 1}", "verdict": v, "model": "P1"}
        for i, v in enumerate(verdicts)
    ]


def _digest(cams: list[dict[str, object]]) -> str:
    return cameras_digest(msgspec.convert(cams, list[Camera]))


def _unchanged(seq: int, digest: str) -> dict[str, object]:
    return report(seq, cameras_digest=digest, cameras_unchanged=True)


def _counts(collector: Collector, key: str, server_id: str) -> dict[str, object]:
    return collector.api(key, f"/api/v1/servers/{server_id}")[1]["cameras"]


def test_an_unchanged_inventory_is_left_out_and_the_cameras_are_kept(
    collector: Collector, enrolled
) -> None:
    key, _agent, server_id, session = enrolled
    cams = _cameras("ok", "ok", "unreachable")
    digest = _digest(cams)

    full = report(1, cameras=cams, cameras_digest=digest)
    status, ack = post_signed(collector.url, session, REPORTS, batch(full))
    assert status == 200 and ack["cameras_digest"] == digest
    before = _counts(collector, key, server_id)
    assert before["total"] == 3 and before["by_verdict"] == {"ok": 2, "unreachable": 1}

    steady = _unchanged(2, digest)
    assert len(json.dumps(steady)) < len(json.dumps(full)) < 4096
    status, ack = post_signed(collector.url, session, REPORTS, batch(steady))
    assert status == 200 and ack["accepted"] == [steady["report_id"]]
    assert ack["cameras_digest"] == digest
    view = collector.api(key, f"/api/v1/servers/{server_id}")[1]
    assert view["last_seq"] == 2 and view["cameras"] == before
    listed = collector.api(key, f"/api/v1/servers/{server_id}/cameras")[1]
    assert sorted(c["key"] for c in listed["cameras"]) == ["cam-0", "cam-1", "cam-2"]

    # A full report in the same batch as a steady one after it: the steady one carries
    # the counts of the report just before it, not of the stored state.
    changed = _cameras("ok", "ok", "ok")
    new_digest = _digest(changed)
    both = batch(report(3, cameras=changed, cameras_digest=new_digest), _unchanged(4, new_digest))
    status, ack = post_signed(collector.url, session, REPORTS, both)
    assert status == 200 and ack["cameras_digest"] == new_digest
    assert _counts(collector, key, server_id)["by_verdict"] == {"ok": 3}
    _, _, metrics = http("GET", collector.url + "/metrics")
    assert b"vigil_reports_cameras_unchanged_total 2.0" in metrics


def test_an_inventory_the_collector_does_not_hold_is_asked_for_again(
    collector: Collector, enrolled
) -> None:
    key, _agent, server_id, session = enrolled
    cams = _cameras("ok", "degraded")
    digest = _digest(cams)

    # Nothing stored yet: a report that leaves its cameras out changes none, and the
    # acknowledgement names no digest, so the agent sends them whole next time.
    status, ack = post_signed(collector.url, session, REPORTS, batch(_unchanged(1, digest)))
    assert status == 200 and ack.get("cameras_digest") is None
    assert _counts(collector, key, server_id)["total"] == 0

    status, ack = post_signed(
        collector.url, session, REPORTS, batch(report(2, cameras=cams, cameras_digest=digest))
    )
    assert status == 200 and ack["cameras_digest"] == digest
    # A digest that is not the stored one (another inventory the collector never saw).
    other = _digest(_cameras("ok"))
    status, ack = post_signed(collector.url, session, REPORTS, batch(_unchanged(3, other)))
    assert status == 200 and ack.get("cameras_digest") is None
    assert _counts(collector, key, server_id)["by_verdict"] == {"degraded": 1, "ok": 1}


def test_a_running_agent_leaves_out_its_steady_inventory(
    collector: Collector, make_agent, tmp_path: Path
) -> None:
    """A real agent probing simulated cameras: once the collector acknowledged the
    inventory, the next reports leave it out, and the partner still sees every camera."""
    key, token = collector.partner("acme")
    collector.cli("server", "interval", "--partner", "acme", "1s")
    with simulated_cameras(3, tmp_path) as fleet:
        assert len(fleet.cameras) == 3
        agent = make_agent()
        cameras = fleet.table.replace("[cameras]", "[cameras]\ntimeout_s = 4", 1)
        agent.config.write_text(agent.config.read_text() + "\n" + cameras)
        server_id = agent.enroll(collector.url, token)
        agent.start()

        def left_out() -> float | None:
            _, _, body = http("GET", collector.url + "/metrics")
            for line in body.decode().splitlines():
                if line.startswith("vigil_reports_cameras_unchanged_total "):
                    n = float(line.split()[1])
                    return n if n >= 2 else None
            return None

        wait_until(left_out, 60, interval=0.5, what="two reports without their cameras")
        view = collector.api(key, f"/api/v1/servers/{server_id}")[1]
        assert view["cameras"]["total"] == 3 and view["cameras"]["by_verdict"] == {"ok": 3}
        assert view["last_seq"] >= 3 and view["last_seen"] is not None
