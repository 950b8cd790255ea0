"""The one exception a reader of backup archives raises for an archive it must not accept.

Its own module so that the reader's parts (``recovery.extract``, ``recovery.seen_members``,
``recovery.manifest_stream``) raise the same class without importing one another in a
circle; ``recovery.extract`` re-exports it.
"""

from __future__ import annotations


class ArchiveRefused(Exception):
    """The archive is damaged, altered, or holds something a restore must not write."""
