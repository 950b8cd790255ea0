"""Deterministic identities of simulated cameras (maker, model, firmware, serial).

Camera ``i`` always gets the same identity, so a test or a demo can name what it expects.
Several cameras share a model; every fourth camera of a model runs an older firmware line,
so "firmware older than the newest seen for the same model" has something to find.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelLine:
    manufacturer: str
    model: str
    firmwares: tuple[str, ...]
    """Firmware versions of this model, oldest first."""
    serial_prefix: str
    encoding: str
    width: int
    height: int
    fps: float


MODELS: tuple[ModelLine, ...] = (
    ModelLine("AXIS", "P3245-LVE", ("10.12.182", "11.5.64"), "ACCC8E", "H264", 1920, 1080, 30),
    ModelLine(
        "Hikvision",
        "DS-2CD2143G2-I",
        ("V5.7.3 build 220112", "V5.7.15 build 230412"),
        "DS2CD",
        "H265",
        2688,
        1520,
        25,
    ),
    ModelLine("Hanwha Vision", "XNV-6080R", ("2.10.02", "2.21.00"), "ZNV", "H264", 1920, 1080, 30),
    ModelLine(
        "Bosch", "FLEXIDOME IP 5000i", ("7.80.0128", "8.48.0026"), "BOS", "H264", 1920, 1080, 30
    ),
    ModelLine(
        "Dahua",
        "IPC-HFW2431S-S-S2",
        ("2.800.0000000.24.R", "2.840.0000000.9.R"),
        "DH",
        "H265",
        2688,
        1520,
        20,
    ),
)


@dataclass(frozen=True)
class Identity:
    manufacturer: str
    model: str
    firmware: str
    serial: str
    hardware_id: str
    encoding: str
    width: int
    height: int
    fps: float


def identity_for(index: int) -> Identity:
    """The identity of simulated camera ``index`` (0-based)."""
    line = MODELS[index % len(MODELS)]
    nth_of_model = index // len(MODELS)
    # Every fourth camera of a model (the 2nd, 6th, ...) lags one firmware behind.
    firmware = line.firmwares[0] if nth_of_model % 4 == 1 else line.firmwares[-1]
    digest = hashlib.sha256(f"vigil-sim-{index}".encode()).hexdigest().upper()
    return Identity(
        manufacturer=line.manufacturer,
        model=line.model,
        firmware=firmware,
        serial=f"{line.serial_prefix}{digest[:10]}",
        hardware_id=f"{line.model.split()[0]}-HW{index % 3 + 1}",
        encoding=line.encoding,
        width=line.width,
        height=line.height,
        fps=line.fps,
    )
