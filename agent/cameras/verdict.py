"""From a probe result to a raw verdict with its evidence (pure logic, no I/O)."""

from __future__ import annotations

from agent.cameras.probe import ProbeResult


def judge(
    result: ProbeResult,
    clock_threshold_s: float,
    known_serial: str = "",
) -> tuple[str, list[str]]:
    """The verdict of one probe, before flap damping, and the reasons for it.

    ``known_serial`` is the serial number recorded for this camera before; a different one
    now means the device was replaced.
    """
    target = result.target
    if result.outcome == "unreachable":
        return "unreachable", [result.failure]
    if result.outcome == "timeout":
        if not result.answered:
            return "unreachable", [
                f"no ONVIF answer from {target.address}:{target.port}: {result.failure}"
                + (" (TCP connect succeeded)" if result.latency_ms is not None else "")
            ]
        return "degraded", [f"too slow: {result.failure}"]
    if result.outcome == "auth_failed":
        return "auth_failed", [result.failure]
    if result.outcome == "error":
        return "error", [result.failure]

    reasons: list[str] = []
    offset = result.clock_offset_s
    if offset is not None and abs(offset) > clock_threshold_s:
        reasons.append(
            f"clock off by {offset:+.0f} s from the recording server "
            f"(threshold {clock_threshold_s:g} s)"
        )
    if result.stream_ok is False:
        reasons.append(f"stream not answering while the device does: {result.stream_detail}")
    if result.snapshot_ok is False:
        reasons.append(f"snapshot failed: {result.snapshot_detail}")
    if known_serial and result.serial and result.serial != known_serial:
        reasons.append(
            f"serial number changed from {known_serial} to {result.serial}: device replaced"
        )
    return ("degraded" if reasons else "ok"), reasons


def replacement_reason(reasons: list[str]) -> bool:
    return any("device replaced" in reason for reason in reasons)
