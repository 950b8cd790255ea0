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


def contracts_config(raw: dict[str, Any]) -> ContractsConfig:
    """``[contracts]`` of the collector's whole TOML; a bad value is a :class:`ConfigError`."""
    table = raw.get("contracts", {})
    if not isinstance(table, dict):
        raise ConfigError("[contracts]", "contracts", "a table")
    value = table.get("check_interval_s", CHECK_INTERVAL_S)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 86400:
        raise ConfigError("[contracts]", "check_interval_s", "1 to 86400 seconds")
    return ContractsConfig(check_interval_s=float(value))
