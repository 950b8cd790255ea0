"""Route paths of the collector's HTTP interface that agent, collector and the partner's
``vigil-backup`` tool all spell: one place, so no side spells one differently.

A path with ``{name}`` parts is an aiohttp route pattern as the collector registers it;
a client fills it with ``str.format`` (quoting each value where it may hold ``/``).
"""

from __future__ import annotations

HEALTHZ = "/healthz"
"""The collector's health check; the agent's ``doctor`` asks it too."""

# --- agent endpoints (docs/protocol.md) ----------------------------------------------------

AGENT_PREFIX = "/api/v1/agent/"
ENROLL = "/api/v1/agent/enroll"
SESSION = "/api/v1/agent/session"
REPORTS = "/api/v1/agent/reports"
BACKUPS = "/api/v1/agent/backups"
"""``POST`` a signed envelope: opens (or resumes) an upload, or records an unchanged run."""
BACKUP_UPLOAD = "/api/v1/agent/backups/uploads/{upload_id}"
"""``PUT`` a chunk at ``?offset=``; ``GET`` where the upload stands."""
BACKUP_UPLOAD_COMPLETE = "/api/v1/agent/backups/uploads/{upload_id}/complete"
BACKUP_RUNS = "/api/v1/agent/backup-runs"

# --- partner endpoints the recovery tool uses (docs/backup-storage.md) -------------------

SERVER_BACKUPS = "/api/v1/servers/{server_id}/backups"
SERVER_BACKUP_ENVELOPE = "/api/v1/servers/{server_id}/backups/{backup_id}/envelope"
SERVER_BACKUP_OBJECT = "/api/v1/servers/{server_id}/backups/{backup_id}/object"
SERVER_BACKUP_STATUS = "/api/v1/servers/{server_id}/backup-status"
SERVER_PUBLIC_KEY = "/api/v1/servers/{server_id}/public-key"
