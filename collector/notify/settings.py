"""The ``[notify]`` section of the collector's configuration."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from collector.config import ConfigError
from collector.notify.delivery import RetryPolicy


@dataclass(frozen=True)
class NotifySettings:
    interval_s: float = 2.0
    """How often events are routed and due messages sent."""
    sweep_interval_s: float = 30.0
    """How often offline servers, overdue backups and SLA clocks are judged."""
    retry_base_s: float = 30.0
    retry_max_s: float = 3600.0
    give_up_s: float = 26 * 3600.0
    lease_s: float = 60.0
    public_url: str = ""
    """The collector's address as partners open it, for links in messages."""
    allow_private_targets: bool = False
    """Send to private, loopback and link-local addresses too (:mod:`.targets`)."""
    key_file: str = ""
    """The key channel secrets are sealed under, the same file on every collector machine
    (:mod:`.channel_secrets`); unset: ``notify.key`` in the data directory."""

    def policy(self) -> RetryPolicy:
        return RetryPolicy(self.retry_base_s, self.retry_max_s, self.give_up_s, self.lease_s)


def notify_settings(raw: dict[str, Any]) -> NotifySettings:
    table = raw.get("notify", {}) or {}
    if not isinstance(table, dict):
        raise ConfigError("config", "notify", "a table")
    values: dict[str, Any] = {}
    for f in fields(NotifySettings):
        if f.name not in table:
            continue
        v = table[f.name]
        if f.name == "allow_private_targets":
            if not isinstance(v, bool):
                raise ConfigError("config", f"notify.{f.name}", "true or false")
            values[f.name] = v
            continue
        if f.name in ("public_url", "key_file"):
            if not isinstance(v, str) or "\0" in v:
                raise ConfigError("config", f"notify.{f.name}", "a string")
            values[f.name] = v
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
            raise ConfigError("config", f"notify.{f.name}", "a positive number of seconds")
        values[f.name] = float(v)
    return NotifySettings(**values)
