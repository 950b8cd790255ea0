"""What the backup service refuses, in its own terms: each refusal carries a stable code
(the ``error`` an agent or partner sees), plain words and, where one field is at fault, its
name. The classes say what kind of refusal it is; only ``collector.backups.handlers`` turns
them into HTTP answers, so the service below it stays free of HTTP.
"""

from __future__ import annotations


class BackupRefused(Exception):
    """A request the backup service will not carry out, and why."""

    def __init__(
        self,
        code: str,
        message: str,
        field: str | None = None,
        extra: dict[str, object] | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.extra = extra or {}
        self.retry_after_s = retry_after_s


class Invalid(BackupRefused):
    """The request itself is malformed or its envelope does not verify."""


class NotEntitled(BackupRefused):
    """The server's contract does not include online backup."""


class UploadNotFound(BackupRefused):
    """No upload in progress with this id for this server."""


class Conflict(BackupRefused):
    """The request is valid but no longer fits the stored state (sequence, offset, base)."""


class TooLarge(BackupRefused):
    """The backup or chunk is above a limit of this collector or of its signed header."""


class Mismatch(BackupRefused):
    """What arrived differs from what was signed or stored (size, hash, named backup)."""


class StorageUnavailable(BackupRefused):
    """The collector cannot stage or store the bytes right now; the agent retries."""


class StagingFull(BackupRefused):
    """Half-finished uploads already hold the staging quota; the agent retries later."""


class BreaksPromise(BackupRefused):
    """A backup policy that would break a contract's promise, set without an override
    reason; ``extra["breaks"]`` lists each promise broken, in words."""
