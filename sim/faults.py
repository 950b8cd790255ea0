"""Fault modes of simulated cameras and the ``--faults`` specification.

A specification is a comma-separated list of ``INDEXES:MODE[=VALUE]`` items, where INDEXES
is one index (``3``), a range (``4-6``) or ``*`` (every camera), e.g.::

    0:offline,1:blackhole,2:slow=3,3:wrong_password,4:clock=3600,5:no_media,
    6:stream_down,7:garbage

Several items may name the same camera (``4:clock=3600,4:slow=0.5``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

FAULT_MODES: dict[str, str] = {
    "offline": "nothing listens on the camera's ports (connection refused)",
    "blackhole": "accepts TCP connections and never answers",
    "slow": "answers every request after a delay (seconds, default 2)",
    "wrong_password": "rejects the advertised credentials (SOAP fault NotAuthorized)",
    "clock": "its clock is off by N seconds (default 3600); it rejects WS-UsernameToken "
    "whose Created is too far from its own clock",
    "no_media": "has no media service (GetServices omits it; media calls fault)",
    "stream_down": "its RTSP server answers DESCRIBE with 503",
    "garbage": "answers every SOAP request with malformed XML",
    "legacy": "an old ONVIF 1.0 device: no GetServices (ActionNotSupported), only GetCapabilities",
}

DEFAULT_SLOW_S = 2.0
DEFAULT_CLOCK_S = 3600.0


class FaultSpecError(ValueError):
    """A ``--faults`` item that cannot be understood."""


@dataclass
class Faults:
    """The faults of one camera; all off by default."""

    offline: bool = False
    blackhole: bool = False
    slow_s: float = 0.0
    wrong_password: bool = False
    clock_offset_s: float = 0.0
    no_media: bool = False
    stream_down: bool = False
    garbage: bool = False
    legacy: bool = False

    def names(self) -> list[str]:
        """The faults switched on, as ``--faults`` modes (``slow=2.0``, ``clock=3600``)."""
        out: list[str] = []
        for mode in (
            "offline",
            "blackhole",
            "wrong_password",
            "no_media",
            "stream_down",
            "garbage",
        ):
            if getattr(self, mode):
                out.append(mode)
        if self.slow_s:
            out.append(f"slow={self.slow_s:g}")
        if self.clock_offset_s:
            out.append(f"clock={self.clock_offset_s:g}")
        return out

    def apply(self, mode: str, value: str | None) -> None:
        if mode not in FAULT_MODES:
            raise FaultSpecError(f"unknown fault mode {mode!r}; known: {', '.join(FAULT_MODES)}")
        if mode in ("slow", "clock"):
            default = DEFAULT_SLOW_S if mode == "slow" else DEFAULT_CLOCK_S
            try:
                number = float(value) if value not in (None, "") else default
            except ValueError:
                raise FaultSpecError(f"{mode}={value}: expected a number of seconds") from None
            if mode == "slow":
                if number < 0:
                    raise FaultSpecError("slow: expected a delay >= 0")
                self.slow_s = number
            else:
                self.clock_offset_s = number
            return
        if value not in (None, ""):
            raise FaultSpecError(f"{mode} takes no value (got {value!r})")
        setattr(self, mode, True)


@dataclass
class FaultPlan:
    """Faults per camera index, as parsed from a specification."""

    by_index: dict[int, Faults] = field(default_factory=dict)

    def for_index(self, index: int) -> Faults:
        return self.by_index.get(index, Faults())


def parse_faults(spec: str | dict[int, str | list[str]] | None, count: int) -> FaultPlan:
    """Parse a ``--faults`` specification (or ``{index: "mode[=value]" | [...]}``) for
    ``count`` cameras."""
    plan = FaultPlan()
    if not spec:
        return plan
    items: list[tuple[list[int], str]] = []
    if isinstance(spec, dict):
        for index, modes in spec.items():
            for mode in [modes] if isinstance(modes, str) else modes:
                items.append(([int(index)], mode))
    else:
        for raw in spec.split(","):
            raw = raw.strip()
            if not raw:
                continue
            where, sep, mode = raw.partition(":")
            if not sep or not mode:
                raise FaultSpecError(f"{raw!r}: expected INDEXES:MODE[=VALUE], e.g. 3:offline")
            items.append((_indexes(where.strip(), count), mode.strip()))
    for indexes, item in items:
        mode, _, value = item.partition("=")
        for index in indexes:
            if not 0 <= index < count:
                raise FaultSpecError(f"camera index {index} out of range 0-{count - 1}")
            plan.by_index.setdefault(index, Faults()).apply(mode.strip(), value.strip() or None)
    return plan


def _indexes(where: str, count: int) -> list[int]:
    if where == "*":
        return list(range(count))
    try:
        if "-" in where:
            low, high = (int(x) for x in where.split("-", 1))
            return list(range(low, high + 1))
        return [int(where)]
    except ValueError:
        raise FaultSpecError(f"{where!r}: expected an index, a range like 2-5, or *") from None
