"""What the agent asks of the operating system beyond Python's portable library: default
paths, advisory file locks, "is this file mine and private", the machine's identity,
user and group names, stopping a process tree.

This is the POSIX side (Linux is what it is tested on). A Windows port replaces the
functions here, one for one (``docs/windows.md`` says with what); nothing else in the
agent calls ``fcntl``, ``pwd``, ``grp``, ``os.killpg`` or ``geteuid``. Importing this module
on a platform without ``fcntl`` fails at once with that message, rather than half-working.
"""

from __future__ import annotations

import os
import signal
import stat
import sys
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - only on Windows
    raise ImportError(
        f"the Vigil agent runs on Linux; {sys.platform} needs its own platform module "
        "(see docs/windows.md)"
    ) from None

DEFAULT_CONFIG = Path("/etc/vigil/agent.toml")
DEFAULT_STATE_DIR = Path("/var/lib/vigil-agent")

MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")
"""Where the OS keeps a stable id of this installation (systemd's, then D-Bus's)."""
HARDWARE_ID_FILE = "/sys/class/dmi/id/product_uuid"
"""The board's UUID (readable by root only on most systems): the fallback."""


def try_lock(fd: int, *, shared: bool = False) -> bool:
    """Take an advisory lock on the open file ``fd`` without waiting; False when another
    process holds it. Released by :func:`unlock` or when the descriptor is closed."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def unlock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)


def owned_by_me(st: os.stat_result) -> bool:
    """The file belongs to the user the agent runs as."""
    return st.st_uid == os.geteuid()


def owner_of(st: os.stat_result) -> str:
    """The file's owner as an error message names it."""
    return f"uid {st.st_uid}"


def current_user() -> str:
    return f"uid {os.geteuid()}"


def open_to_others(st: os.stat_result) -> int:
    """The permission bits that let other users in (0 for a private file)."""
    return stat.S_IMODE(st.st_mode) & 0o077


def make_private(path: Path, *, directory: bool) -> None:
    """Only the agent's user may read or write ``path`` (mode 0700 or 0600)."""
    os.chmod(path, 0o700 if directory else 0o600)


def user_name(uid: int) -> str:
    """The user's name, or "" when the system has none for ``uid``."""
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


def group_name(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


def kill_tree(pid: int) -> None:
    """Kill a child started in its own session (``start_new_session=True``) and every
    process it started."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
