"""Backup policy: how often, when, and how long to keep; per partner default, per server.

A policy row holds only what was set; a field left NULL inherits, field by field, from
the partner's default, then from :data:`DEFAULTS`. Pure parsing and merging live here;
the SQL is in :mod:`collector.backups.catalog`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from collector.backups.retention import RetentionPolicy

_UNIT_S = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def format_duration(seconds: int) -> str:
    if seconds == 0:
        return "0"
    out = ""
    for unit in ("d", "h", "m", "s"):
        n, seconds = divmod(seconds, _UNIT_S[unit])
        if n:
            out += f"{n}{unit}"
    return out


@dataclass(frozen=True)
class BackupPolicy:
    interval_s: int | None = None
    window: str | None = None
    keep_last: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_yearly: int | None = None

    def over(self, base: BackupPolicy) -> BackupPolicy:
        """This policy's set fields over ``base``'s."""
        changes = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(base, **{k: v for k, v in changes.items() if v is not None})

    def retention(self) -> RetentionPolicy:
        return RetentionPolicy(
            keep_last=self.keep_last or 0,
            keep_daily=self.keep_daily or 0,
            keep_weekly=self.keep_weekly or 0,
            keep_monthly=self.keep_monthly or 0,
            keep_yearly=self.keep_yearly or 0,
        )


DEFAULTS = BackupPolicy(
    interval_s=86400,
    window="",
    keep_last=3,
    keep_daily=7,
    keep_weekly=4,
    keep_monthly=12,
    keep_yearly=0,
)
"""Daily backups at any time; about a year of history (3 + 7 daily + 4 weekly + 12 monthly)."""


def effective(partner: BackupPolicy | None, server: BackupPolicy | None) -> BackupPolicy:
    """Server override over partner default over :data:`DEFAULTS`."""
    result = DEFAULTS
    if partner is not None:
        result = partner.over(result)
    if server is not None:
        result = server.over(result)
    return result
