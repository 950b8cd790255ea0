"""The collector's ``[backup]`` table, read and checked when the configuration is loaded
(``[backup.storage]`` is handed to the object store, which checks it when it opens)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collector.backups.limits import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_SIZE,
    DEFAULT_STAGING_QUOTA,
    DEFAULT_UPLOAD_RESERVE,
    DEFAULT_UPLOAD_TTL_S,
    STAGING_MODES,
    BackupLimits,
)
from collector.backups.objectstore import STORE_KEYS, parse_size
from collector.config import ConfigError
from collector.config_keys import refused_key
from collector.durations import parse_interval


@dataclass(frozen=True)
class BackupConfig:
    """The collector's ``[backup]`` table (``[backup.storage]`` is the object store's)."""

    storage: dict[str, Any]
    limits: BackupLimits
    maintenance_interval_s: float = 3600.0
    """How often uploads are expired and retention is applied."""
    integrity_every_s: float = 7 * 86400.0
    """Each stored object is re-read and re-hashed at least this often (0 = never)."""
    runs_keep_s: float = 400 * 86400.0
    upload_reserve: int = DEFAULT_UPLOAD_RESERVE
    """Uploads are refused (507) below this much free space in the data directory: more
    than reports need (``[collector] report_reserve``), so uploads stop first."""
    staging: str = "auto"
    """Where half-finished uploads wait: ``disk`` (``<data>/uploads``, this process
    only), ``store`` (chunk objects in the object store, any process), ``auto`` (the
    store when it is S3, else the disk)."""


def backup_config(raw: dict[str, Any]) -> BackupConfig:
    """Read ``[backup]`` from the collector's whole TOML; :func:`collector.config.load_config`
    calls it, so a bad value stops the collector at start with the file and key."""
    table = raw.get("backup", {}) or {}
    if not isinstance(table, dict):
        raise ConfigError("[backup]", "backup", "a table")

    def dur(key: str, default: float) -> float:
        value = table.get(key)
        if value is None:
            return default
        try:
            return float(parse_interval(str(value)))
        except ValueError:
            raise ConfigError("[backup]", key, "a duration (e.g. 48h, 7d, 0)") from None

    storage = table.get("storage", {}) or {}
    if not isinstance(storage, dict):
        raise ConfigError("[backup]", "storage", "a table")
    # The store opens when the backup feature starts; a misspelt key is refused now.
    for key in storage:
        if key not in STORE_KEYS:
            said = refused_key(f"backup.storage.{key}", STORE_KEYS)
            raise ConfigError("[backup]", f"storage.{key}", said)
    limits = BackupLimits(
        max_size=parse_size(table.get("max_size", DEFAULT_MAX_SIZE), "max_size"),
        chunk_size=parse_size(table.get("chunk_size", DEFAULT_CHUNK_SIZE), "chunk_size"),
        upload_ttl_s=dur("upload_ttl", DEFAULT_UPLOAD_TTL_S),
        staging_quota=parse_size(
            table.get("staging_quota", DEFAULT_STAGING_QUOTA), "staging_quota"
        ),
    )
    if limits.chunk_size < 64 * 1024 or limits.chunk_size > 8 * 1024 * 1024:
        raise ConfigError("[backup]", "chunk_size", "between 64KiB and 8MiB")
    if limits.staging_quota < limits.chunk_size:
        raise ConfigError("[backup]", "staging_quota", "a size of at least chunk_size")
    if limits.upload_ttl_s < 60:
        raise ConfigError("[backup]", "upload_ttl", "a duration of at least 60s")
    staging = table.get("staging", "auto")
    if staging not in STAGING_MODES:
        raise ConfigError("[backup]", "staging", '"auto", "disk" or "store"')
    interval = dur("maintenance_interval", 3600.0)
    if interval < 10:
        raise ConfigError("[backup]", "maintenance_interval", "a duration of at least 10s")
    return BackupConfig(
        storage=storage,
        limits=limits,
        maintenance_interval_s=interval,
        integrity_every_s=dur("integrity_every", 7 * 86400.0),
        runs_keep_s=dur("runs_keep", 400 * 86400.0),
        upload_reserve=parse_size(
            table.get("upload_reserve", DEFAULT_UPLOAD_RESERVE), "upload_reserve"
        ),
        staging=staging,
    )
