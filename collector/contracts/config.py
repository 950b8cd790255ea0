"""The collector's ``[contracts]`` table, read and checked when the configuration is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collector.config import ConfigError

CHECK_INTERVAL_S = 300.0
ENTITLEMENT_CACHE_S = 60.0


@dataclass(frozen=True)
class ContractsConfig:
    check_interval_s: float = CHECK_INTERVAL_S
    """How often every server is checked against its contract."""
    report_refresh_s: float = 60.0
    """How often each process brings the monthly reports people read up to date in the
    background (:mod:`collector.contracts.report_cache`); 0 turns that off."""
    entitlement_cache_s: float = ENTITLEMENT_CACHE_S
    """How long a process keeps a server's entitlement answers (the longest a contract
    that starts or ends waits to reach the agent's settings)."""


def _seconds(
    table: dict[str, Any], key: str, default: float, least: int, most: int, off: bool = False
) -> float:
    """``key`` in seconds, ``least`` to ``most`` (or 0 where ``off``)."""
    value = table.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (least <= value <= most or (off and value == 0))
    ):
        span = f"{least} to {most} seconds"
        raise ConfigError("[contracts]", key, f"0 (off) or {span}" if off else span)
    return float(value)


def contracts_config(raw: dict[str, Any]) -> ContractsConfig:
    """``[contracts]`` of the collector's whole TOML; a bad value is a :class:`ConfigError`."""
    table = raw.get("contracts", {})
    if not isinstance(table, dict):
        raise ConfigError("[contracts]", "contracts", "a table")
    return ContractsConfig(
        check_interval_s=_seconds(table, "check_interval_s", CHECK_INTERVAL_S, 1, 86400),
        report_refresh_s=_seconds(table, "report_refresh_s", 60.0, 10, 3600, off=True),
        entitlement_cache_s=_seconds(table, "entitlement_cache_s", ENTITLEMENT_CACHE_S, 1, 3600),
    )
