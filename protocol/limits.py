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
MAX_DISKS = 256
MAX_DISK_ATTRIBUTES = 64
"""Volumes in one report."""

MAX_TEXT = 1024
"""Free text fields (fault text, versions, names)."""

CLOCK_SKEW_S = 300
"""How far an authenticated request's timestamp may be from the collector's clock."""

MAX_INT = 2**63 - 1
"""Every integer on the wire (sizes, counts, sequence numbers) fits a signed 64-bit column."""

MAX_TIMESTAMP = 253402300799.0
"""9999-12-31 23:59:59 UTC: every time on the wire lies in years 1970 to 9999."""

MAX_FUTURE_S = 86400
"""How far ahead of the collector's clock a report may say it was collected."""
