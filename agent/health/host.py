"""Host facts: hostname, OS, uptime, CPU, memory, agent version."""

from __future__ import annotations

import platform
import time
from importlib import metadata

import psutil

from protocol.messages import HostInfo


def agent_version() -> str:
    try:
        return metadata.version("vigil")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def os_name() -> str:
    try:
        info = platform.freedesktop_os_release()
        return info.get("PRETTY_NAME") or info.get("NAME", platform.system())
    except OSError:
        return f"{platform.system()} {platform.release()}"


class HostProbe:
    """Reads host facts; the CPU figure is the average since the previous read."""

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname
        self._os = os_name()
        self._version = agent_version()
        psutil.cpu_percent(interval=None)  # prime the counter

    def read(self) -> HostInfo:
        mem = psutil.virtual_memory()
        boot = psutil.boot_time()
        try:
            load1 = psutil.getloadavg()[0]
        except (OSError, AttributeError):
            load1 = 0.0
        return HostInfo(
            hostname=self.hostname,
            os=self._os,
            kernel=platform.release(),
            uptime_s=max(0.0, time.time() - boot),
            cpu_percent=min(100.0, psutil.cpu_percent(interval=None)),
            cpu_count=psutil.cpu_count() or 0,
            load_1m=load1,
            memory_total=mem.total,
            memory_used=mem.total - mem.available,
            memory_percent=min(100.0, mem.percent),
            agent_version=self._version,
            boot_time=boot,
        )
