"""The collector's ``[contracts]`` table, read and checked when the configuration is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collector.config import ConfigError

CHECK_INTERVAL_S = 300.0


@dataclass(frozen=True)
class ContractsConfig:
    check_interval_s: float = CHECK_INTERVAL_S
    """How often every server is checked against its contract."""
    report_refresh_s: float = 60.0
    """How often each process brings the monthly reports people read up to date in the
    background (:mod:`collector.contracts.report_cache`); 0 turns that off."""


def contracts_config(raw: dict[str, Any]) -> ContractsConfig:
    """``[contracts]`` of the collector's whole TOML; a bad value is a :class:`ConfigError`."""
    table = raw.get("contracts", {})
    if not isinstance(table, dict):
        raise ConfigError("[contracts]", "contracts", "a table")
    value = table.get("check_interval_s", CHECK_INTERVAL_S)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 86400:
        raise ConfigError("[contracts]", "check_interval_s", "1 to 86400 seconds")
    refresh = table.get("report_refresh_s", 60.0)
    if (
        isinstance(refresh, bool)
        or not isinstance(refresh, int | float)
        or not (refresh == 0 or 10 <= refresh <= 3600)
    ):
        raise ConfigError("[contracts]", "report_refresh_s", "0 (off) or 10 to 3600 seconds")
    return ContractsConfig(check_interval_s=float(value), report_refresh_s=float(refresh))
