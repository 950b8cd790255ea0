"""Key files the collector keeps outside its database: 32 random bytes, 0600.

Each key is either made once in the data directory (one machine, any number of ``serve
--workers`` processes) or named by a setting (``[http] session_key_file``, ``[notify]
key_file``) that every machine of an installation is given: such a file must exist, and
the collector never makes one there.

Several collector processes may start at once on one data directory (``serve
--workers``); each must end up reading the same key, never a file another process has
made but not yet written. So a new key is written to a private temporary file and
linked into place, which fails for every process but the first.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

KEY_BYTES = 32


class KeyFileError(Exception):
    """A key file cannot be read or made: says which file and what to do."""


def make_once(path: Path, size: int = 32) -> None:
    """Write ``size`` random bytes to ``path`` unless a file is there already."""
    if path.exists():
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, os.urandom(size))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def load_key_file(path: Path, *, make: bool, setting: str, what: str) -> bytes:
    """The 32-byte key in ``path``, made there first when ``make`` (a data directory's
    own key). ``setting`` names the configuration key that chose ``path`` and ``what``
    the key's use, for the error an operator reads."""
    if make:
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            make_once(path, KEY_BYTES)
        except OSError as exc:
            reason = exc.strerror or exc
            raise KeyFileError(f"cannot make the {what} file {path}: {reason}") from None
    try:
        with open(path, "rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            key = fh.read(KEY_BYTES + 1)
    except FileNotFoundError:
        raise KeyFileError(
            f"{setting} {path} does not exist: make it once with "
            f"'head -c {KEY_BYTES} /dev/urandom > {path}; chmod 600 {path}' and give every "
            "collector machine of this installation the same file"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"cannot read the {what} file {path}: {exc.strerror or exc}") from None
    if len(key) != KEY_BYTES:
        raise KeyFileError(
            f"the {what} file {path} must hold exactly {KEY_BYTES} bytes "
            f"(it holds {len(key)}{' or more' if len(key) > KEY_BYTES else ''})"
        )
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"the {what} file {path} is readable by other users: chmod 600 {path}")
    return key
