"""Directories a restore makes spread their subdirectories over the file system's groups.

ext4 without a journal does not hand out an inode deleted in the last minute (six while its
inode table block is unwritten) while a free one remains in the group: before each create it
skips every such inode of the group, one buffer look-up each (``find_inode_bit`` and
``recently_deleted`` in ``fs/ext4/ialloc.c``). Subdirectories, and with them their files, are
placed in the group of their parent's, so a tree restored where the same tree was just
deleted (the usual way to put an older configuration back) lands in the groups the deletion
emptied, and every create scans thousands of deleted inodes. On the benchmark's machine the
1 GiB tree's restore (20,000 files) spent 2.1, 6.5 and 10.1 s in the kernel in three rounds,
each after the previous tree was deleted (``docs/benchmarks.md``).

ext4 places the subdirectories of a directory flagged ``TOPDIR`` (``chattr +T``) as it does
those of the root: in groups with free inodes to spare. Each directory the restore makes is
flagged while the restore runs and unflagged when it gets its mode at the end, so the tree
comes out as if restored without the flag. With a journal ext4 skips nothing and the flag
only spreads the directories; a file system without the flag (tmpfs, XFS, Btrfs) refuses the
first try and no other is made.
"""

from __future__ import annotations

import array
import fcntl
import os
import struct
import sys

_LONG = struct.calcsize("l")
FS_IOC_GETFLAGS = (2 << 30) | (_LONG << 16) | (ord("f") << 8) | 1
FS_IOC_SETFLAGS = (1 << 30) | (_LONG << 16) | (ord("f") << 8) | 2
"""``_IOR('f', 1, long)`` and ``_IOW('f', 2, long)``; the kernel reads and writes an int."""
FS_TOPDIR_FL = 0x00020000


class DirSpread:
    """``mark(path)`` flags a directory just made; ``unmark(path)`` takes the flag off a
    marked one. Both are best effort: the first refusal turns the marking off."""

    def __init__(self) -> None:
        self.enabled = sys.platform.startswith("linux")

    def mark(self, path: str) -> bool:
        """Flag ``path``; True when it now carries the flag (``unmark`` it later)."""
        if not self.enabled:
            return False
        if not _change(path, set_flag=True):
            self.enabled = False
            return False
        return True

    def unmark(self, path: str) -> None:
        _change(path, set_flag=False)


def flags(path: str) -> int:
    """The inode flags of the directory ``path`` (``lsattr``'s); OSError where unsupported."""
    fd = _open_dir(path)
    try:
        return _get(fd)
    finally:
        os.close(fd)


def _open_dir(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)


def _get(fd: int) -> int:
    buf = array.array("i", [0])
    fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf)
    return buf[0]


def _change(path: str, set_flag: bool) -> bool:
    try:
        fd = _open_dir(path)
    except OSError:
        return False
    try:
        old = _get(fd)
        new = old | FS_TOPDIR_FL if set_flag else old & ~FS_TOPDIR_FL
        if new != old:
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, array.array("i", [new]))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
