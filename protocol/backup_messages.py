"""Messages of the backup upload protocol (docs/protocol.md, "backups";
docs/backup-storage.md).

The signed envelope itself is ``protocol.backup_envelope``; these are the collector's
replies and the run record the agent sends after every run. Replies carry every field
(``omit_defaults=False``): their bytes are what the collector has always sent. Defaults
on reply fields say what the agent assumes when an older or odd collector leaves one out.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from protocol import limits
from protocol.messages import Message

_Count = Annotated[int, msgspec.Meta(ge=0, le=limits.MAX_INT)]
_Time = Annotated[float, msgspec.Meta(ge=0, le=limits.MAX_TIMESTAMP)]

RUN_OUTCOMES = ("ok", "unchanged", "failed")


class BackupRun(Message, kw_only=True, gc=False):
    """One run's outcome (``POST /api/v1/agent/backup-runs``); numbers bounded where they
    enter the collector. The agent also keeps unacknowledged ones in its state file."""

    outcome: str
    """``ok``, ``unchanged`` or ``failed`` (the collector refuses anything else)."""
    reason: str = ""
    started_at: _Time
    finished_at: _Time
    seq: _Count | None = None
    backup_id: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    files: _Count | None = None
    bytes: _Count | None = None


class Reply(msgspec.Struct, kw_only=True, omit_defaults=False, gc=False):
    """Base of the collector's backup replies: every field is sent."""


class UploadOpened(Reply, kw_only=True, gc=False):
    """``201`` (new) or ``200`` (resumed) answer to a full backup's envelope."""

    upload_id: str
    offset: int = 0
    """Bytes the collector already holds: the agent continues there."""
    chunk_size: int = 0
    """Largest chunk the collector takes; 0 = not said (the agent picks its own)."""
    chunk_body_bound: bool = False
    """The collector takes chunks signed with ``request_auth.BODY_IN_ENVELOPE`` in place of
    the body's SHA-256 (an older collector leaves this out: the agent hashes each chunk)."""


class UnchangedStored(Reply, kw_only=True, gc=False):
    """``201`` answer to an ``unchanged`` envelope: the record is stored."""

    backup_id: str | None = None
    status: str = "unchanged"
    seq: int | None = None


class ChunkAccepted(Reply, kw_only=True, gc=False):
    """Answer to ``PUT`` of a chunk: the new acknowledged offset."""

    offset: int


class UploadState(Reply, kw_only=True, gc=False):
    """Answer to ``GET`` of an upload: where it stands."""

    offset: int
    size: int = 0


class BackupStored(Reply, kw_only=True, gc=False):
    """``201`` answer to ``complete``: the backup is verified and stored."""

    backup_id: str | None = None
    seq: int | None = None


class RunRecorded(Reply, kw_only=True, gc=False):
    """``201`` answer to a run record."""

    id: str


def reply_body(reply: Reply) -> dict[str, Any]:
    """The reply as plain data for a JSON response."""
    body: dict[str, Any] = msgspec.to_builtins(reply)
    return body
