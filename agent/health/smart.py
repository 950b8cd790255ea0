"""Disk health from SMART: ``smartctl --json`` (smartmontools), where it is installed and
the agent may run it.

``smartctl --scan`` lists the disks, ``smartctl --json -i -H -A DEVICE`` reads each; the
JSON is judged by :func:`judge` (pure, tested with recorded outputs). smartctl needs raw
device access (root, or the ``disk`` group with the capabilities it asks for); a disk it
cannot open is reported as ``unknown`` with smartctl's words, never as an agent failure.
Reading every disk takes a second or two, so the answer is kept for ``every_s`` (an hour)
and read from the report thread. Only the standard library is used, imported when a read
happens: the agent's idle cost stays what it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from protocol.messages import Disk

REALLOCATION_IDS = {5: "reallocated sectors", 197: "pending sectors", 198: "uncorrectable sectors"}
"""ATA attributes whose raw count above zero predicts failure (Backblaze's drive stats)."""

TIMEOUT_S = 60.0


def judge(doc: Mapping[str, Any], device: str = "") -> Disk:
    """One disk's health from the JSON of ``smartctl --json -i -H -A``."""
    dev = doc.get("device") or {}
    name = str(dev.get("name") or device)
    failing: list[str] = []
    warning: list[str] = []
    status = doc.get("smart_status") or {}
    if status.get("passed") is False:
        failing.append("SMART overall-health self-assessment: FAILED")
    for attr in (doc.get("ata_smart_attributes") or {}).get("table") or []:
        _judge_attribute(attr, failing, warning)
    nvme = doc.get("nvme_smart_health_information_log")
    if isinstance(nvme, Mapping):
        _judge_nvme(nvme, failing, warning)
    temp = (doc.get("temperature") or {}).get("current")
    hours = (doc.get("power_on_time") or {}).get("hours")
    if failing:
        health = "failing"
    elif warning:
        health = "pre_failing"
    elif status.get("passed") is True:
        health = "ok"
    else:
        health = "unknown"
    error = "" if health != "unknown" else _messages(doc) or "no SMART health in the answer"
    return Disk(
        device=name[:200],
        model=str(doc.get("model_name") or "")[:200],
        serial=str(doc.get("serial_number") or "")[:200],
        health=health,  # type: ignore[arg-type]
        reasons=(failing + warning)[:20],
        temperature_c=float(temp) if isinstance(temp, int | float) else None,
        power_on_hours=int(hours) if isinstance(hours, int) and hours >= 0 else None,
        error=error[:1000],
    )


def _judge_attribute(attr: Mapping[str, Any], failing: list[str], warning: list[str]) -> None:
    name = str(attr.get("name") or f"attribute {attr.get('id')}")
    when = str(attr.get("when_failed") or "")
    prefail = bool((attr.get("flags") or {}).get("prefailure"))
    if when == "now":
        (failing if prefail else warning).append(
            f"{name} at {attr.get('value')} is at or below its threshold {attr.get('thresh')}"
        )
    elif when:
        warning.append(f"{name} was at or below its threshold in the past")
    what = REALLOCATION_IDS.get(int(attr.get("id") or 0))
    raw = (attr.get("raw") or {}).get("value")
    if what and isinstance(raw, int) and raw > 0:
        warning.append(f"{raw} {what}")


def _judge_nvme(log: Mapping[str, Any], failing: list[str], warning: list[str]) -> None:
    critical = log.get("critical_warning")
    if isinstance(critical, int) and critical:
        failing.append(f"NVMe critical warning 0x{critical:02x}")
    spare, threshold = log.get("available_spare"), log.get("available_spare_threshold")
    if isinstance(spare, int) and isinstance(threshold, int) and spare < threshold:
        warning.append(f"available spare {spare}% below its threshold {threshold}%")
    used = log.get("percentage_used")
    if isinstance(used, int) and used >= 100:
        warning.append(f"rated endurance used up ({used}%)")
    errors = log.get("media_errors")
    if isinstance(errors, int) and errors > 0:
        warning.append(f"{errors} media errors")


def _messages(doc: Mapping[str, Any]) -> str:
    msgs = (doc.get("smartctl") or {}).get("messages") or []
    return "; ".join(str(m.get("string", "")) for m in msgs if isinstance(m, Mapping))


Runner = Callable[[list[str]], Mapping[str, Any]]
"""Runs smartctl with these arguments and returns its JSON (tests pass recorded answers)."""


def run_smartctl(binary: str) -> Runner:
    def run(args: list[str]) -> Mapping[str, Any]:
        import json
        import subprocess

        out = subprocess.run(
            [binary, "--json", *args], capture_output=True, timeout=TIMEOUT_S, check=False
        )
        try:
            doc = json.loads(out.stdout or b"{}")
        except ValueError:
            doc = {}
        return doc if isinstance(doc, dict) else {}

    return run


def read_disks(run: Runner) -> list[Disk]:
    """Every disk ``smartctl --scan`` lists, judged."""
    disks = []
    for entry in (run(["--scan"]).get("devices") or [])[:256]:
        device = str(entry.get("name") or "")
        if not device:
            continue
        args = ["-i", "-H", "-A", device]
        kind = str(entry.get("type") or "")
        if kind:
            args[:0] = ["-d", kind]
        try:
            disks.append(judge(run(args), device))
        except Exception as exc:  # one odd disk must not hide the others
            disks.append(Disk(device=device[:200], error=f"cannot read: {exc}"[:1000]))
    return disks


class SmartProbe:
    """Cached SMART answers for the reports; None when smartctl is not installed."""

    def __init__(self, every_s: float = 3600.0, runner: Runner | None = None) -> None:
        self.every_s = every_s
        self._runner = runner
        self._looked = runner is not None
        self._at = 0.0
        self._disks: list[Disk] | None = None

    def read(self, now: float | None = None) -> list[Disk] | None:
        now = time.monotonic() if now is None else now
        if self._disks is not None and now - self._at < self.every_s:
            return self._disks
        if not self._looked:
            import shutil

            found = shutil.which("smartctl") or shutil.which("smartctl", path="/usr/sbin:/sbin")
            self._runner = None if found is None else run_smartctl(found)
            self._looked = True
        if self._runner is None:
            return None
        try:
            self._disks = read_disks(self._runner)
        except Exception as exc:  # smartctl missing meanwhile, timed out, killed
            self._disks = [Disk(device="(all)", error=f"smartctl failed: {exc}"[:1000])]
        self._at = now
        return self._disks
