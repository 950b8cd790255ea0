"""The words of a notification: a summary line, what to do, per event kind."""

from __future__ import annotations

from typing import Any

ADVICE: dict[str, str] = {
    "server.offline": "Check that the recording server is powered, on the network and that "
    "the Vigil agent service runs; it reports again by itself once it can.",
    "camera.down": "Check the camera's power (PoE), network link and credentials; the "
    "server's page lists the reason the agent gave.",
    "camera.degraded": "The camera answers but records poorly (stream, clock or storage): "
    "see the reasons on the server's page.",
    "volume.filling": "Free space on the recording volume or shorten retention before "
    "recordings are overwritten or stop.",
    "disk.failing": "Plan the disk's replacement; copy what must be kept.",
    "backup.overdue": "No configuration backup arrived in time: check the agent's log and "
    "the backup window.",
    "backup.failed": "The last configuration backup failed: its reason is on the server's page.",
    "backup.integrity": "A stored backup failed its integrity check: make a new backup now.",
    "incident.opened": "Acknowledge the incident within the response time of the contract.",
    "incident.resolved": "Confirm the resolution with the customer so it can be accepted.",
    "incident.accepted": "Nothing to do: the customer accepted the resolution.",
    "sla.warning": "The SLA clock is running out: act on the incident now.",
    "sla.breached": "The SLA time is exceeded: tell the customer and escalate.",
    "contract.finding": "See the contract finding: renew, extend coverage or upgrade.",
    "test": "Nothing to do: this is a test message.",
}

_BACK = {
    "server.offline": "back online",
    "camera.down": "back",
    "camera.degraded": "back to normal",
    "volume.filling": "no longer filling",
    "backup.overdue": "backup back on time",
    "backup.failed": "backup succeeded again",
}


def summary(kind: str, status: str, events: list[dict[str, Any]], where: str) -> str:
    """One line: ``3 × camera.down on site Lobby``, ``server offline: nvr-01``."""
    n = len(events)
    if n == 1:
        e = events[0]
        host = (e.get("server") or {}).get("hostname") or ""
        return f"{e['subject']}" + (f" on {host}" if host else "")
    what = _BACK.get(kind, "resolved") if status == "resolved" else kind.replace(".", " ")
    return f"{n} × {kind}" + (f" ({what})" if status == "resolved" else "") + f" on {where}"


def advice(kind: str, status: str) -> str:
    if status == "resolved":
        return "Nothing to do: it recovered."
    return ADVICE.get(kind, "See the collector's page for details.")
