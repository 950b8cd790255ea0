"""Size limits both sides enforce; the collector refuses anything larger with 413."""

from __future__ import annotations

MAX_REPORT_BYTES = 512 * 1024
"""One health report, JSON-encoded (a 256-camera report is about 150 KB)."""

MAX_BATCH_REPORTS = 50
"""Reports in one upload when the agent drains its spool after an outage."""

MAX_BATCH_BYTES = 4 * 1024 * 1024
"""One request body on the agent endpoints (except backup chunks)."""

MAX_ENROLL_BYTES = 8 * 1024
"""An enrollment request."""

MAX_CAMERAS = 1024
"""Cameras in one report."""

MAX_VOLUMES = 256
"""Volumes in one report."""

MAX_TEXT = 1024
"""Free text fields (fault text, versions, names)."""

CLOCK_SKEW_S = 300
"""How far an authenticated request's timestamp may be from the collector's clock."""
