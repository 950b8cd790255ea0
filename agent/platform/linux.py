"""The agent's platform functions on Linux (systemd, POSIX permissions and ACLs, psutil).

See ``agent.platform`` for the interface; each function here has its Windows counterpart
described in ``docs/windows.md``.
"""

from __future__ import annotations

import asyncio
import fcntl
import grp
import os
import pwd
import signal
import socket
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CONFIG = Path("/etc/vigil/agent.toml")
DEFAULT_STATE_DIR = Path("/var/lib/vigil-agent")
DEFAULT_SEED = Path("/etc/vigil/enroll.toml")


# -- service manager -------------------------------------------------------------------------


def notify_service(state: str) -> bool:
    """Tell systemd ``state`` (``READY=1``, ``RELOADING=1``, ``STOPPING=1``) when it runs
    the agent with ``Type=notify``; False (and nothing done) otherwise."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "/@":
        return False
    if address[0] == "@":
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True


def install_signal_handlers(
    loop: asyncio.AbstractEventLoop, stop: Callable[[], None], reload: Callable[[], None]
) -> None:
    """SIGTERM and SIGINT stop the daemon in order; SIGHUP reloads its configuration."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    loop.add_signal_handler(signal.SIGHUP, reload)


# -- one daemon per state directory ---------------------------------------------------------


def lock_exclusive(fd: int) -> bool:
    """Take an exclusive lock on the open file without waiting; False when another
    process holds it. The kernel releases it when the process ends, however it ends."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def unlock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)


def lock_is_held(fd: int) -> bool:
    """Whether another process holds the lock on the open file (checked without keeping
    one)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


# -- disks -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    mountpoint: str
    device: str
    fstype: str


def mounts(ignore_fstypes: Iterable[str] = ()) -> list[Mount]:
    """Mounted file systems, each mount point once, without the ignored types."""
    import psutil  # here: reading the configuration needs none of it

    ignore = set(ignore_fstypes)
    seen: set[str] = set()
    out = []
    for part in psutil.disk_partitions(all=False):
        if part.fstype in ignore or part.mountpoint in seen:
            continue
        seen.add(part.mountpoint)
        out.append(Mount(part.mountpoint, part.device, part.fstype))
    return out


# -- who the agent runs as, and what it may read --------------------------------------------


def current_user() -> str:
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def owner_only(path: Path) -> bool:
    """The file is readable by its owner only (no group or other bits)."""
    return not path.stat().st_mode & 0o077


@dataclass(frozen=True)
class Unreadable:
    path: Path
    reason: str
    group: str | None
    """The file's group when that group may read it (joining the group is the grant)."""


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _check(path: Path, is_dir: bool) -> Unreadable | None:
    want = os.R_OK | (os.X_OK if is_dir else 0)
    if os.access(path, want):
        return None
    try:
        st = path.lstat()
    except OSError as exc:
        return Unreadable(path, exc.strerror or str(exc), None)
    group_bits = stat.S_IRGRP | (stat.S_IXGRP if is_dir else 0)
    group = _group_name(st.st_gid) if st.st_mode & group_bits == group_bits else None
    what = "directory" if is_dir else "file"
    mode = f"{stat.S_IMODE(st.st_mode):04o}"
    owner = pwd.getpwuid(st.st_uid).pw_name if _known_uid(st.st_uid) else str(st.st_uid)
    return Unreadable(path, f"{what} {mode} {owner}:{_group_name(st.st_gid)}", group)


def _known_uid(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def unreadable_under(root: Path, limit: int = 20, max_entries: int = 200_000) -> list[Unreadable]:
    """What under ``root`` this process cannot read (at most ``limit`` entries; directories
    it cannot enter are named once, not their contents). Symbolic links are not followed,
    as the backup does not follow them."""
    found: list[Unreadable] = []
    if not root.exists():
        return [Unreadable(root, "does not exist", None)]
    seen = 0
    stack = [root]
    while stack and len(found) < limit and seen < max_entries:
        path = stack.pop()
        seen += 1
        is_dir = path.is_dir() and not path.is_symlink()
        if path.is_symlink():
            continue
        problem = _check(path, is_dir)
        if problem is not None:
            found.append(problem)
            continue
        if is_dir:
            try:
                stack.extend(sorted(path.iterdir(), reverse=True))
            except OSError as exc:
                found.append(Unreadable(path, exc.strerror or str(exc), None))
    return found


def grant_hint(root: Path, problems: list[Unreadable], user: str) -> str:
    """The one command to run as root so that ``user`` can read ``root``: joining a group
    that can already read everything, else a read-only ACL (with a default ACL, so that
    files created later are readable too)."""
    groups = {p.group for p in problems}
    if len(groups) == 1 and None not in groups:
        return f"usermod -aG {groups.pop()} {user}  (then restart the agent)"
    return f"setfacl -R -m u:{user}:rX {root} && setfacl -R -d -m u:{user}:rX {root}"


# -- private files and ownership -------------------------------------------------------------


def owned_by_me(st: os.stat_result) -> bool:
    """The file belongs to the user the agent runs as."""
    return st.st_uid == os.geteuid()


def owner_of(st: os.stat_result) -> str:
    """The file's owner as an error message names it."""
    return f"uid {st.st_uid}"


def open_to_others(st: os.stat_result) -> int:
    """The permission bits that let other users in (0 for a private file)."""
    return stat.S_IMODE(st.st_mode) & 0o077


def make_private(path: Path, *, directory: bool) -> None:
    """Only the agent's user may read or write ``path`` (mode 0700 or 0600)."""
    os.chmod(path, 0o700 if directory else 0o600)


# -- this machine's identity, users and groups -----------------------------------------------

MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")
"""Where the OS keeps a stable id of this installation (systemd's, then D-Bus's)."""
HARDWARE_ID_FILE = "/sys/class/dmi/id/product_uuid"
"""The board's UUID (readable by root only on most systems): the fallback."""


def user_name(uid: int) -> str:
    """The user's name, or "" when the system has none for ``uid``."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


# -- child processes -------------------------------------------------------------------------


def kill_tree(pid: int) -> None:
    """Kill a child started in its own session (``start_new_session=True``) and every
    process it started."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
