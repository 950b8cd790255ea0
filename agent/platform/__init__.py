"""What the agent does differently per operating system, behind one interface.

Everything that depends on the platform goes through this package: where the files live
(configuration, state, enrollment seed), telling the service manager that the agent is
ready or reloading, which disks to report, and who the agent runs as and whether it can
read what it backs up (with the grant to ask for when it cannot). ``linux`` is the side
that exists and is tested; a Windows side implements the same functions (see
``docs/windows.md``) and is picked here, so nothing else in the agent changes.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # pragma: no cover - not written yet, see docs/windows.md
    raise ImportError("the agent's Windows platform module is not written yet (docs/windows.md)")

from agent.platform.linux import (
    DEFAULT_CONFIG,
    DEFAULT_SEED,
    DEFAULT_STATE_DIR,
    Mount,
    Unreadable,
    current_user,
    grant_hint,
    install_signal_handlers,
    lock_exclusive,
    lock_is_held,
    mounts,
    notify_service,
    owner_only,
    unreadable_under,
)

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_SEED",
    "DEFAULT_STATE_DIR",
    "Mount",
    "Unreadable",
    "current_user",
    "grant_hint",
    "install_signal_handlers",
    "lock_exclusive",
    "lock_is_held",
    "mounts",
    "notify_service",
    "owner_only",
    "unreadable_under",
]
