"""Protocol versions spoken between agent and collector.

The major version changes only when an old peer could no longer understand a new one.
Within a major version, messages grow by adding optional fields: a receiver ignores the
fields it does not know and supplies defaults for the ones a sender left out.
"""

from __future__ import annotations

PROTOCOL_VERSION = 1
"""The major version this code speaks."""

SUPPORTED_VERSIONS: frozenset[int] = frozenset({1})
"""Major versions a collector built from this code accepts."""

HEADER = "X-Vigil-Protocol"
"""Request header carrying the sender's major protocol version."""
