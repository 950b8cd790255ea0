"""Disk health from SMART, read with smartmontools' ``smartctl --json``.

smartctl needs raw access to the disks (root, or ``CAP_SYS_RAWIO`` and the ``disk`` group),
which the agent does not have when it runs unprivileged: the ``[disks] smartctl`` command
can then be ``["sudo", "-n", "/usr/sbin/smartctl"]`` with a sudo rule for that command only.
A disk smartctl cannot open is reported with health ``unknown`` and the reason, never
dropped; when smartctl is not installed at all the agent reports no disks.

SMART changes slowly and reading it wakes sleeping disks, so it is read every
``check_interval_s`` (an hour by default), not on every report.

The verdict of one disk, from smartctl's JSON:

- ``failing``: the overall self-assessment failed (``smart_status.passed`` false), a
  pre-failure attribute is at or below its threshold now or was in the past
  (``when_failed`` ``"now"`` or ``"past"``: the drive maker's own line for "expect this
  drive to fail"), the count of reallocated, pending or offline-uncorrectable sectors
  grew since the first reading the agent kept for that disk, or an NVMe critical warning
  bit is set. Each reason names the attribute;
- ``passed`` with ``warnings``: an old-age attribute at its threshold (now or in the
  past), reallocated, pending or uncorrectable sectors that have not grown, NVMe media
  errors or wear above 90 %, entries in the error or self-test log;
- ``unknown``: the device could not be opened or answered no SMART status.

The sector counts of each disk (by serial number) are kept in the state directory
(``disk-sectors.json``) from the first reading on, so growth is seen across restarts of
the agent; a count that only ever stays where it was is a warning, not a failure.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.identity import write_atomic
from protocol.messages import Disk

log = logging.getLogger("vigil.agent.disks")

COMMAND_TIMEOUT_S = 60.0

# smartctl's exit status is a bit mask (smartctl(8), "RETURN VALUES").
_OPEN_FAILED = 1 << 1
_ERROR_LOG = 1 << 6
_SELF_TEST_LOG = 1 << 7

# ATA attributes whose raw count above zero is a warning even before any threshold.
_SECTOR_COUNTS = {5: "reallocated", 197: "pending", 198: "offline uncorrectable"}

# NVMe critical_warning bits (NVMe base specification, SMART / Health log).
_NVME_WARNINGS = {
    0: "available spare below threshold",
    1: "temperature outside its limits",
    2: "reliability degraded",
    3: "media placed in read-only mode",
    4: "volatile memory backup failed",
    5: "persistent memory region read-only",
}


@dataclass(frozen=True)
class DiskSettings:
    """The ``[disks]`` table."""

    enabled: bool = True
    smartctl: tuple[str, ...] = ()
    """The command to run; empty = ``smartctl`` from ``PATH`` when it is installed."""
    devices: tuple[str, ...] = ()
    """Devices to read (``/dev/sda`` or ``/dev/sda:sat``); empty = all that smartctl finds."""
    check_interval_s: float = 3600.0


def disk_verdict(
    data: dict[str, Any], device: str, at: float, baseline: Mapping[int, int] | None = None
) -> Disk:
    """One disk from ``smartctl --json -i -H -A``'s output (already parsed).
    ``baseline``: the sector counts (attribute id -> raw value) first read on this disk;
    a count above it is failing."""
    status = int((data.get("smartctl") or {}).get("exit_status") or 0)
    dev = data.get("device") or {}
    base: dict[str, Any] = {
        "device": str(dev.get("name") or device)[:256],
        "protocol": str(dev.get("protocol") or "")[:256],
        "model": str(data.get("model_name") or "")[:256],
        "serial": str(data.get("serial_number") or "")[:256],
        "checked_at": at,
    }
    smart = data.get("smart_status")
    if status & _OPEN_FAILED or not isinstance(smart, dict) or "passed" not in smart:
        return Disk(health="unknown", error=_messages(data) or "no SMART status", **base)
    failing: list[str] = []
    warnings: list[str] = []
    _ata(data, failing, warnings, baseline or {})
    _nvme(data, failing, warnings)
    if not smart.get("passed"):  # last: the attribute that failed says more
        failing.append("overall self-assessment: FAILED")
    if status & _ERROR_LOG:
        warnings.append("the device error log has entries")
    if status & _SELF_TEST_LOG:
        warnings.append("the self-test log has errors")
    temp = (data.get("temperature") or {}).get("current")
    hours = (data.get("power_on_time") or {}).get("hours")
    return Disk(
        health="failing" if failing else "passed",
        failing=[f[:256] for f in failing[:64]],
        warnings=[w[:256] for w in warnings[:64]],
        temperature_c=float(temp) if isinstance(temp, int | float) else None,
        power_on_hours=int(hours) if isinstance(hours, int) and hours >= 0 else None,
        **base,
    )


def _ata(
    data: dict[str, Any], failing: list[str], warnings: list[str], baseline: Mapping[int, int]
) -> None:
    for attr in _attributes(data):
        name = str(attr.get("name") or f"attribute {attr.get('id')}")
        when = attr.get("when_failed") or ""
        prefail = bool((attr.get("flags") or {}).get("prefailure"))
        if when == "now":
            line = f"{name} at or below its threshold ({attr.get('value')} <= {attr.get('thresh')})"
            (failing if prefail else warnings).append(line)
        elif when == "past" and prefail:
            failing.append(
                f"{name} was at or below its threshold in the past (worst {attr.get('worst')} "
                f"<= {attr.get('thresh')})"
            )
        elif when == "past":
            warnings.append(f"{name} was at its threshold in the past")
        raw = (attr.get("raw") or {}).get("value")
        kind = _SECTOR_COUNTS.get(_attr_id(attr))
        if not kind or not isinstance(raw, int) or raw <= 0:
            continue
        before = baseline.get(_attr_id(attr))
        if before is not None and raw > before:
            failing.append(f"{name} grew from {before} to {raw} {kind} sector(s)")
        else:
            warnings.append(f"{raw} {kind} sector(s) ({name})")


def _attributes(data: dict[str, Any]) -> list[dict[str, Any]]:
    table = (data.get("ata_smart_attributes") or {}).get("table") or []
    return [a for a in table if isinstance(a, dict)] if isinstance(table, list) else []


def _attr_id(attr: dict[str, Any]) -> int:
    value = attr.get("id")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def sector_counts(data: dict[str, Any]) -> dict[int, int]:
    """The reallocated, pending and offline-uncorrectable sector counts of an ATA disk."""
    out = {}
    for attr in _attributes(data):
        raw = (attr.get("raw") or {}).get("value")
        if _attr_id(attr) in _SECTOR_COUNTS and isinstance(raw, int) and raw >= 0:
            out[_attr_id(attr)] = raw
    return out


def _nvme(data: dict[str, Any], failing: list[str], warnings: list[str]) -> None:
    log_page = data.get("nvme_smart_health_information_log")
    if not isinstance(log_page, dict):
        return
    critical = int(log_page.get("critical_warning") or 0)
    for bit, text in _NVME_WARNINGS.items():
        if critical & (1 << bit):
            failing.append(f"NVMe critical warning: {text}")
    media = int(log_page.get("media_errors") or 0)
    if media > 0:
        warnings.append(f"{media} NVMe media error(s)")
    used = int(log_page.get("percentage_used") or 0)
    if used >= 90:
        warnings.append(f"endurance {used} % used")


def _messages(data: dict[str, Any]) -> str:
    msgs = (data.get("smartctl") or {}).get("messages") or []
    return "; ".join(str(m.get("string", "")) for m in msgs if isinstance(m, dict))[:4000]


class DiskProbe:
    """Reads every disk's SMART, at most every ``check_interval_s``; ``read()`` answers
    the last result (None when SMART is off or smartctl is not installed)."""

    def __init__(self, settings: DiskSettings, state_dir: Path | None = None) -> None:
        self.settings = settings
        self.command = self._command(settings)
        self.latest: list[Disk] | None = None
        self.checked_at = 0.0
        self.baseline_path = None if state_dir is None else state_dir / "disk-sectors.json"
        self.baselines = self._load_baselines()

    def _load_baselines(self) -> dict[str, dict[int, int]]:
        """Sector counts first read per disk (serial number), from the state directory."""
        if self.baseline_path is None:
            return {}
        try:
            raw = json.loads(self.baseline_path.read_text())
            return {
                str(disk): {int(k): int(v) for k, v in counts.items()}
                for disk, counts in raw.items()
                if isinstance(counts, dict)
            }
        except (OSError, ValueError, TypeError, AttributeError):
            return {}

    def _keep_baseline(self, key: str, counts: dict[int, int]) -> dict[int, int]:
        """The disk's baseline, extended by attributes seen for the first time."""
        known = self.baselines.setdefault(key, {})
        new = {k: v for k, v in counts.items() if k not in known}
        if new:
            known.update(new)
            if self.baseline_path is not None:
                try:
                    write_atomic(self.baseline_path, json.dumps(self.baselines).encode())
                except OSError as exc:
                    log.warning("cannot keep SMART sector counts: %s", exc)
        return known

    @staticmethod
    def _command(settings: DiskSettings) -> tuple[str, ...] | None:
        if not settings.enabled:
            return None
        if settings.smartctl:
            return settings.smartctl
        found = shutil.which("smartctl") or shutil.which("smartctl", path="/usr/sbin:/sbin")
        return (found,) if found else None

    @property
    def available(self) -> bool:
        return self.command is not None

    def due(self, now: float) -> bool:
        return self.available and now - self.checked_at >= self.settings.check_interval_s

    def read(self) -> list[Disk] | None:
        return self.latest

    def refresh(self, now: float | None = None) -> list[Disk] | None:
        """Read SMART now (blocking: run it in a thread)."""
        if self.command is None:
            return None
        now = time.time() if now is None else now
        try:
            devices = self._devices()
        except _SmartctlFailed as exc:
            self.latest = [Disk(device="(scan)", health="unknown", error=str(exc), checked_at=now)]
        else:
            self.latest = [self._one(name, kind, now) for name, kind in devices]
        self.checked_at = now
        failing = [d.device for d in self.latest if d.health == "failing"]
        if failing:
            log.warning("SMART: failing disk(s): %s", ", ".join(failing))
        return self.latest

    def _devices(self) -> list[tuple[str, str]]:
        if self.settings.devices:
            return [_named(d) for d in self.settings.devices]
        data = self._run(["--scan-open"])
        out = []
        for d in data.get("devices") or []:
            if isinstance(d, dict) and d.get("name"):
                out.append((str(d["name"]), str(d.get("type") or "")))
        return out[:256]

    def _one(self, name: str, kind: str, now: float) -> Disk:
        args = ["--info", "--health", "--attributes"]
        if kind:
            args += ["--device", kind]
        try:
            data = self._run([*args, name])
        except _SmartctlFailed as exc:
            return Disk(device=name[:256], health="unknown", error=str(exc), checked_at=now)
        key = str(data.get("serial_number") or name)
        baseline = dict(self._keep_baseline(key, sector_counts(data)))
        return disk_verdict(data, name, now, baseline)

    def _run(self, args: Sequence[str]) -> dict[str, Any]:
        assert self.command is not None
        cmd = [*self.command, "--json=c", *args]
        try:
            out = subprocess.run(
                cmd, capture_output=True, timeout=COMMAND_TIMEOUT_S, check=False, text=True
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise _SmartctlFailed(f"{' '.join(cmd[:-1])}: {exc}") from None
        try:
            data = json.loads(out.stdout)
        except ValueError:
            err = (out.stderr or out.stdout).strip()[:500]
            raise _SmartctlFailed(
                f"smartctl exited {out.returncode} without JSON output: {err or 'no output'}"
            ) from None
        if not isinstance(data, dict):
            raise _SmartctlFailed("smartctl answered JSON that is not an object")
        return data


class _SmartctlFailed(Exception):
    pass


def _named(device: str) -> tuple[str, str]:
    """``/dev/sda:sat`` -> (``/dev/sda``, ``sat``); ``/dev/sda`` -> (``/dev/sda``, "")."""
    name, _, kind = device.partition(":")
    return name, kind
