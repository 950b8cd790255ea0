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
    HARDWARE_ID_FILE,
    MACHINE_ID_FILES,
    Mount,
    Unreadable,
    current_user,
    grant_hint,
    group_name,
    install_signal_handlers,
    kill_tree,
    lock_exclusive,
    lock_is_held,
    make_private,
    mounts,
    notify_service,
    open_to_others,
    owned_by_me,
    owner_of,
    owner_only,
    unlock,
    unreadable_under,
    user_name,
)

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_SEED",
    "DEFAULT_STATE_DIR",
    "HARDWARE_ID_FILE",
    "MACHINE_ID_FILES",
    "Mount",
    "Unreadable",
    "current_user",
    "grant_hint",
    "group_name",
    "install_signal_handlers",
    "kill_tree",
    "lock_exclusive",
    "lock_is_held",
    "make_private",
    "mounts",
    "notify_service",
    "open_to_others",
    "owned_by_me",
    "owner_of",
    "owner_only",
    "unlock",
    "unreadable_under",
    "user_name",
]
