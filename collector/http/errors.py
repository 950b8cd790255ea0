"""Errors a handler raises for a client; the error middleware renders them as JSON."""

from __future__ import annotations


class ApiError(Exception):
    """A refusal with an HTTP status, a machine-readable code and plain words."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}
        self.extra = extra or {}
