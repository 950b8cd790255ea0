"""The limits on backups the collector accepts (sizes, chunk size, how long an upload may
stay half-finished): values only, so that reading the configuration does not load the
upload service, the object store's clients and the HTTP stack behind them."""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3
DEFAULT_MAX_SIZE = 4 * GIB
DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
DEFAULT_UPLOAD_TTL_S = 6 * 3600
DEFAULT_STAGING_QUOTA = 8 * GIB
DEFAULT_UPLOAD_RESERVE = 1 * GIB


@dataclass(frozen=True)
class BackupLimits:
    max_size: int = DEFAULT_MAX_SIZE
    chunk_size: int = DEFAULT_CHUNK_SIZE
    upload_ttl_s: float = DEFAULT_UPLOAD_TTL_S
    staging_quota: int = DEFAULT_STAGING_QUOTA
    """All half-finished uploads together hold at most this many staged bytes."""


STAGING_MODES = ("auto", "disk", "store")
"""``[backup] staging``: where half-finished uploads wait (``collector.backups.staging``)."""
