"""The agent's configuration: one TOML file, checked whole at start.

A mistake stops the agent at once with the file, the key and what is expected, rather
than showing up next week as an agent that silently does nothing.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.health.disks import DiskSettings
from agent.health.first_report import DEFAULT_SPREAD_S
from agent.platform import DEFAULT_CONFIG, DEFAULT_STATE_DIR

if TYPE_CHECKING:  # each feature's modules load only when its table is present
    from agent.backup.config import BackupSettings
    from agent.cameras.config import CameraSettings

DEFAULT_SPOOL_BYTES = 64 * 1024 * 1024

_TABLES = (
    "agent",
    "report",
    "software",
    "spool",
    "disks",
    "cameras",
    "backup",
    "log",
    "collector",
)


def _shown(key: object) -> str:
    """A key as the error names it: quoted when it is empty or unusual."""
    text = str(key)
    return text if re.fullmatch(r"[A-Za-z0-9_.-]+", text) else json.dumps(text)


class AgentConfigError(ValueError):
    """Names the file, the key and what is expected."""

    def __init__(self, source: str, key: str, expected: str) -> None:
        super().__init__(f"{source}: {key}: expected {expected}")
        self.source, self.key, self.expected = source, key, expected


@dataclass(frozen=True)
class SoftwareConfig:
    """Where the video software's product and version come from (first that is set)."""

    product: str = ""
    version: str = ""
    version_file: str = ""
    version_command: tuple[str, ...] = ()
    version_regex: str = ""
    modules: tuple[str, ...] = ()


@dataclass(frozen=True)
class AgentConfig:
    source: str
    state_dir: Path = DEFAULT_STATE_DIR
    licence_id: str | None = None
    machine_id: str | None = None
    hostname: str | None = None
    log_level: str = "info"
    log_format: str = "text"
    """``[log] format``: "text" (for people), "logfmt" or "json" (for log shippers)."""
    collector_proxy: str | None = None
    """``[collector] proxy``: an HTTP(S) proxy for the link to the collector only."""
    report_interval_s: int = 60
    first_report_spread_s: float = DEFAULT_SPREAD_S
    """``[report] first_spread_s``: the first report after a start waits a random delay
    below this and the interval (0: at once; ``vigil-agent run --report-now`` too)."""
    recording_volumes: tuple[str, ...] = ()
    ignore_fstypes: tuple[str, ...] = ("squashfs", "tmpfs", "devtmpfs", "overlay", "iso9660")
    spool_max_bytes: int = DEFAULT_SPOOL_BYTES
    retry_max_s: float = 300.0
    refused_check_s: float = 600.0
    """How often an agent the collector refuses (unknown or revoked) checks again."""
    software: SoftwareConfig = field(default_factory=SoftwareConfig)
    disks: DiskSettings = field(default_factory=DiskSettings)
    """SMART disk health (``[disks]``): on by default where smartctl is installed."""
    cameras: CameraSettings | None = None
    """Present with a ``[cameras]`` table."""
    backup: BackupSettings | None = None
    """Present with a ``[backup]`` table."""


class _Table:
    def __init__(self, data: Any, name: str, source: str) -> None:
        if not isinstance(data, dict):
            raise AgentConfigError(source, name, "a table")
        self.data, self.name, self.source = data, name, source

    def key(self, k: str) -> str:
        return f"{self.name}.{_shown(k)}"

    def text(self, k: str, default: str | None) -> str | None:
        if k not in self.data:
            return default
        v = self.data[k]
        if not isinstance(v, str) or not v.strip():
            raise AgentConfigError(self.source, self.key(k), "a non-empty string")
        return v

    def int(self, k: str, default: int, low: int, high: int) -> int:
        v = self.data.get(k, default)
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise AgentConfigError(self.source, self.key(k), f"an integer from {low} to {high}")
        return v

    def num(self, k: str, default: float, low: float, high: float) -> float:
        v = self.data.get(k, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high:
            raise AgentConfigError(self.source, self.key(k), f"a number from {low} to {high}")
        return float(v)

    def strs(self, k: str) -> tuple[str, ...]:
        v = self.data.get(k, [])
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
            raise AgentConfigError(self.source, self.key(k), "a list of non-empty strings")
        return tuple(v)

    def only(self, allowed: set[str]) -> None:
        for k in self.data:
            if k not in allowed:
                raise AgentConfigError(
                    self.source,
                    self.key(k),
                    f"one of the known keys ({', '.join(sorted(allowed))})",
                )


def load(path: str | Path | None) -> AgentConfig:
    """Read and check the configuration; a missing default file means all defaults."""
    p = Path(path) if path is not None else DEFAULT_CONFIG
    source = str(p)
    try:
        with open(p, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        if path is not None:
            raise AgentConfigError(source, "(file)", "an existing TOML file") from None
        raw = {}
    except PermissionError:
        raise AgentConfigError(source, "(file)", "a file this user can read") from None
    except tomllib.TOMLDecodeError as exc:
        raise AgentConfigError(source, "(syntax)", f"valid TOML ({exc})") from None
    except UnicodeDecodeError as exc:
        raise AgentConfigError(source, "(encoding)", f"UTF-8 text ({exc.reason})") from None
    except IsADirectoryError:
        raise AgentConfigError(source, "(file)", "a file, not a directory") from None
    return parse(raw, source)


def _software(sw: _Table, source: str) -> SoftwareConfig:
    cmd = sw.data.get("version_command", [])
    if isinstance(cmd, str):
        cmd = [cmd]
    if not isinstance(cmd, list) or not all(isinstance(x, str) and x for x in cmd):
        raise AgentConfigError(source, "software.version_command", "a command as a list of strings")
    regex = sw.text("version_regex", "") or ""
    if regex:
        try:
            re.compile(regex)
        except re.error as exc:
            raise AgentConfigError(
                source, "software.version_regex", f"a regular expression ({exc})"
            ) from None
    return SoftwareConfig(
        product=sw.text("product", "") or "",
        version=sw.text("version", "") or "",
        version_file=sw.text("version_file", "") or "",
        version_command=tuple(cmd),
        version_regex=regex,
        modules=sw.strs("modules"),
    )


def _disks(d: _Table, source: str) -> DiskSettings:
    d.only({"enabled", "smartctl", "devices", "check_interval_s"})
    enabled = d.data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise AgentConfigError(source, "disks.enabled", "true or false")
    cmd = d.data.get("smartctl", [])
    if isinstance(cmd, str):
        cmd = [cmd]
    if not isinstance(cmd, list) or not all(isinstance(x, str) and x for x in cmd):
        raise AgentConfigError(source, "disks.smartctl", "a command as a list of strings")
    return DiskSettings(
        enabled=enabled,
        smartctl=tuple(cmd),
        devices=d.strs("devices"),
        check_interval_s=d.num("check_interval_s", 3600.0, 1.0, 7 * 86400.0),
    )


def _features(
    raw: dict[str, Any], source: str
) -> tuple[CameraSettings | None, BackupSettings | None]:
    """The ``[cameras]`` and ``[backup]`` tables (their modules load only when configured)."""
    cameras = backup = None
    if "cameras" in raw:
        from agent.cameras.config import CameraConfigError, parse_camera_config

        try:
            cameras = parse_camera_config(raw["cameras"], source)
        except CameraConfigError as exc:
            raise AgentConfigError(source, exc.key or "cameras", exc.expected) from None
    if "backup" in raw:
        from agent.backup.config import BackupConfigError, parse_backup_config

        try:
            backup = parse_backup_config(raw["backup"], source)
        except BackupConfigError as exc:
            key = exc.key if exc.key.startswith("[backup]") else f"backup.{_shown(exc.key)}"
            raise AgentConfigError(source, key, exc.expected) from None
    return cameras, backup


def _log_table(raw: dict[str, Any], level: str, source: str) -> tuple[str, str]:
    """``[log]``: the format, and the level (``[agent] log_level`` unless set here)."""
    lg = _Table(raw.get("log", {}), "log", source)
    lg.only({"format", "level"})
    log_format = lg.text("format", "text") or "text"
    if log_format not in ("text", "logfmt", "json"):
        raise AgentConfigError(source, "log.format", '"text", "logfmt" or "json"')
    if "level" in lg.data:
        level = lg.text("level", level) or level
        if level not in ("debug", "info", "warning", "error"):
            raise AgentConfigError(source, "log.level", '"debug", "info", "warning" or "error"')
    return log_format, level


def _collector_proxy(raw: dict[str, Any], source: str) -> str | None:
    co = _Table(raw.get("collector", {}), "collector", source)
    co.only({"proxy"})
    proxy = co.text("proxy", None)
    if proxy is not None and not re.fullmatch(r"https?://[^/\s]+/?", proxy):
        raise AgentConfigError(source, "collector.proxy", 'a proxy URL such as "http://proxy:3128"')
    return proxy


def parse(raw: dict[str, Any], source: str) -> AgentConfig:
    for k in raw:
        if k not in _TABLES:
            raise AgentConfigError(source, _shown(k), f"one of the tables [{'], ['.join(_TABLES)}]")
    a = _Table(raw.get("agent", {}), "agent", source)
    a.only(
        {
            "state_dir",
            "licence_id",
            "machine_id",
            "hostname",
            "log_level",
            "retry_max_s",
            "refused_check_s",
        }
    )
    level = a.text("log_level", "info") or "info"
    if level not in ("debug", "info", "warning", "error"):
        raise AgentConfigError(source, "agent.log_level", '"debug", "info", "warning" or "error"')
    r = _Table(raw.get("report", {}), "report", source)
    r.only({"interval_s", "first_spread_s", "recording_volumes", "ignore_fstypes"})
    s = _Table(raw.get("spool", {}), "spool", source)
    s.only({"max_bytes"})
    sw = _Table(raw.get("software", {}), "software", source)
    sw.only({"product", "version", "version_file", "version_command", "version_regex", "modules"})
    software = _software(sw, source)
    disks = _disks(_Table(raw.get("disks", {}), "disks", source), source)
    log_format, level = _log_table(raw, level, source)
    proxy = _collector_proxy(raw, source)
    cameras, backup = _features(raw, source)
    return AgentConfig(
        source=source,
        state_dir=Path(a.text("state_dir", str(DEFAULT_STATE_DIR)) or DEFAULT_STATE_DIR),
        licence_id=a.text("licence_id", None),
        machine_id=a.text("machine_id", None),
        hostname=a.text("hostname", None),
        log_level=level,
        log_format=log_format,
        collector_proxy=proxy,
        retry_max_s=a.num("retry_max_s", 300.0, 1.0, 3600.0),
        refused_check_s=a.num("refused_check_s", 600.0, 1.0, 86400.0),
        report_interval_s=r.int("interval_s", 60, 1, 86400),
        first_report_spread_s=r.num("first_spread_s", DEFAULT_SPREAD_S, 0.0, 86400.0),
        recording_volumes=r.strs("recording_volumes"),
        ignore_fstypes=r.strs("ignore_fstypes") or AgentConfig.ignore_fstypes,
        spool_max_bytes=s.int("max_bytes", DEFAULT_SPOOL_BYTES, 64 * 1024, 16 * 1024**3),
        software=software,
        disks=disks,
        cameras=cameras,
        backup=backup,
    )
