"""Camera health over ONVIF: configuration, probing, verdicts, flap damping, discovery.

The daemon calls :class:`CameraMonitor` (``probe_cycle()`` / ``close()``),
:func:`parse_camera_config` for the ``[cameras]`` table and :func:`run_probe` for
``vigil-agent probe``. Importing this package does not import onvif-zeep-async: that
happens, with its side effects undone, on the first probe (see ``onvif_lib``).
"""

from agent.cameras.config import (
    CameraConfigError,
    CameraDevice,
    CameraSettings,
    Credentials,
    DiscoverySettings,
    parse_camera_config,
)
from agent.cameras.monitor import CameraMonitor
from agent.cameras.probe_command import run_probe

__all__ = [
    "CameraConfigError",
    "CameraDevice",
    "CameraMonitor",
    "CameraSettings",
    "Credentials",
    "DiscoverySettings",
    "parse_camera_config",
    "run_probe",
]
