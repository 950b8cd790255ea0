"""The durable report spool: nothing collected is lost while the collector is away.

One file per report, ``<seq>.json``, written whole (temporary file, fsync, rename, fsync
of the directory) before the agent tries to send it; deleted only after the collector
acknowledged it. Reports go out oldest first. Past ``max_bytes`` the oldest reports are
dropped and counted; the count travels in the next report.

Sequence numbers never repeat and never skip, whatever moment a kill -9 hits: the next
number is one past the largest of the spooled files, the last acknowledged, the last
dropped and the last *reserved*, and the marks are written down *before* the files they
cover are deleted.

A full disk loses nothing silently:

- a report is written whole or not at all (``write_atomic`` checks every byte), so a
  short write never leaves a truncated report to be refused later;
- when the marks cannot be written while acknowledging, the acknowledged reports leave
  the queue anyway (they are not sent again), the files below the highest are deleted
  (freeing room) and the highest stays until the marks are written: a crash before then
  sends that one report again, and the collector counts it a duplicate;
- a report the agent holds in memory because the spool cannot be written gets its
  number *reserved* first, in a small file written in place (overwriting allocated
  space needs none free). If the agent stops before the report reaches the spool, the
  next start counts every reserved number that has no file as dropped: a gap with a
  dropped count, never a number used twice.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from agent.identity import write_atomic

log = logging.getLogger("vigil.agent.spool")

_MARKS = "marks.json"
_RESERVED = "reserved"
_RESERVED_SIZE = 32


@dataclass(frozen=True)
class Entry:
    seq: int
    path: Path
    size: int


class Spool:
    def __init__(self, directory: Path, max_bytes: int, *, readonly: bool = False) -> None:
        """``readonly``: look without changing anything (``status``, ``doctor``)."""
        self.dir = directory
        self.max_bytes = max_bytes
        self.readonly = readonly
        if not readonly:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._marks = self._load_marks()
        self._marks_dirty = False
        self._marks_failing = False
        self._kept: dict[int, Path] = {}
        """Acknowledged, but kept on disk until the marks say so (see the module doc)."""
        self._entries: dict[int, Entry] = {}
        paths = list(self.dir.iterdir()) if self.dir.is_dir() else []
        for p in paths:
            if p.name.startswith(".") and p.name.endswith(".tmp"):
                if not readonly:
                    with contextlib.suppress(OSError):  # cut short by a crash: never acknowledged
                        p.unlink(missing_ok=True)
                continue
            if p.suffix == ".json" and p.stem.isdigit():
                seq = int(p.stem)
                if seq <= self._marks["acked"]:
                    if not readonly:
                        p.unlink(missing_ok=True)  # acknowledged before a crash cut the cleanup
                    continue
                try:
                    self._entries[seq] = Entry(seq, p, p.stat().st_size)
                except FileNotFoundError:
                    continue
        self._bytes = sum(e.size for e in self._entries.values())
        self._count_lost_reserved()
        if not readonly:
            self._prepare_reserved()

    # -- marks --------------------------------------------------------------------------

    def _load_marks(self) -> dict[str, int]:
        try:
            data = json.loads((self.dir / _MARKS).read_text())
            return {k: int(data.get(k, 0)) for k in ("acked", "dropped_upto", "dropped_total")}
        except (OSError, ValueError, AttributeError):
            return {"acked": 0, "dropped_upto": 0, "dropped_total": 0}

    def _save_marks(self) -> bool:
        """Write the marks down; False (and remembered, to retry) when the disk refuses."""
        if self.readonly:
            return False
        try:
            write_atomic(self.dir / _MARKS, json.dumps(self._marks).encode())
        except OSError as exc:
            self._marks_dirty = True
            if not self._marks_failing:
                log.error("cannot write the spool's marks (%s); will retry", exc)
                self._marks_failing = True
            return False
        self._marks_dirty = False
        if self._marks_failing:
            log.info("the spool's marks are written again")
            self._marks_failing = False
        for seq in list(self._kept):
            self._kept.pop(seq).unlink(missing_ok=True)
        return True

    def flush_marks(self) -> bool:
        """Retry writing marks that a full disk refused; True when nothing is pending."""
        return not self._marks_dirty or self._save_marks()

    # -- reserved numbers ---------------------------------------------------------------

    def _load_reserved(self) -> int:
        try:
            return int((self.dir / _RESERVED).read_bytes().strip() or b"0")
        except (OSError, ValueError):
            return 0

    def _count_lost_reserved(self) -> None:
        """Numbers reserved for reports that never reached the spool (the agent stopped
        while the disk was full) are counted as dropped."""
        reserved = self._load_reserved()
        base = max(max(self._entries, default=0), self._marks["acked"], self._marks["dropped_upto"])
        if reserved <= base:
            return
        lost = reserved - base
        self._marks["dropped_upto"] = reserved
        self._marks["dropped_total"] += lost
        if not self.readonly:
            log.warning(
                "%d report(s) (numbers %d to %d) were collected but never reached the spool "
                "(the agent stopped while the disk was full): counted as dropped",
                lost,
                base + 1,
                reserved,
            )
            self._save_marks()

    def _prepare_reserved(self) -> None:
        """Allocate the reservation file now, while there is room, so that reserving a
        number later overwrites it in place."""
        path = self.dir / _RESERVED
        try:
            if path.stat().st_size == _RESERVED_SIZE:
                return
        except OSError:
            pass
        try:
            write_atomic(path, self._reserved_bytes(self._load_reserved()))
        except OSError as exc:
            log.warning("cannot prepare %s (%s); will try again", path, exc)

    @staticmethod
    def _reserved_bytes(seq: int) -> bytes:
        return str(seq).encode().ljust(_RESERVED_SIZE - 1) + b"\n"

    def reserve(self, seq: int) -> bool:
        """Write down that numbers up to ``seq`` are taken, before a report with that
        number is held in memory; False if even that cannot be written."""
        if seq <= self._load_reserved():
            return True
        path = self.dir / _RESERVED
        try:
            if not path.exists():
                self._prepare_reserved()
            fd = os.open(path, os.O_WRONLY)
            try:
                data = self._reserved_bytes(seq)
                if os.pwrite(fd, data, 0) != len(data):
                    raise OSError(errno.ENOSPC, f"short write to {path}")
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.error("cannot reserve report number %d in %s: %s", seq, path, exc)
            return False
        return True

    def note_dropped(self, seqs: list[int]) -> None:
        """Reports that will never reach the spool (held in memory too long, or still held
        when the agent stops): counted, and their numbers never used again."""
        if not seqs:
            return
        self._marks["dropped_upto"] = max(self._marks["dropped_upto"], max(seqs))
        self._marks["dropped_total"] += len(seqs)
        self._save_marks()

    @property
    def dropped_total(self) -> int:
        return self._marks["dropped_total"]

    @property
    def last_acked(self) -> int:
        return self._marks["acked"]

    def next_seq(self) -> int:
        top = max(max(self._entries, default=0), max(self._kept, default=0))
        return max(top, self._marks["acked"], self._marks["dropped_upto"]) + 1

    # -- queue --------------------------------------------------------------------------

    def append(self, seq: int, data: bytes) -> None:
        """Store report ``seq`` durably, then make room within the bound."""
        path = self.dir / f"{seq:012d}.json"
        write_atomic(path, data)
        self._entries[seq] = Entry(seq, path, len(data))
        self._bytes += len(data)
        self.flush_marks()
        self._enforce_bound()

    def _enforce_bound(self) -> None:
        if self._bytes <= self.max_bytes:
            return
        victims = []
        freed = 0
        for seq in sorted(self._entries)[:-1]:  # never drop the report just written
            if self._bytes - freed <= self.max_bytes:
                break
            victims.append(self._entries[seq])
            freed += self._entries[seq].size
        if not victims:
            return
        self._marks["dropped_upto"] = max(self._marks["dropped_upto"], victims[-1].seq)
        self._marks["dropped_total"] += len(victims)
        if not self._save_marks():
            # The numbers stay covered: the newest report's file outlives the victims.
            log.error("spool full and its marks cannot be written: dropping anyway")
        for e in victims:
            e.path.unlink(missing_ok=True)
            del self._entries[e.seq]
        self._bytes -= freed
        log.warning(
            "spool full (%d bytes max): dropped %d oldest report(s), %d dropped in all",
            self.max_bytes,
            len(victims),
            self._marks["dropped_total"],
        )

    def peek(self, limit: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """The oldest reports, up to ``limit`` of them and about ``max_bytes`` in all."""
        out: list[tuple[int, bytes]] = []
        total = 0
        for seq in sorted(self._entries)[:limit]:
            e = self._entries[seq]
            if out and total + e.size > max_bytes:
                break
            try:
                data = e.path.read_bytes()
            except FileNotFoundError:
                self._forget(seq)
                continue
            out.append((seq, data))
            total += e.size
        return out

    def ack(self, seqs: list[int]) -> None:
        """The collector has these: mark them, then delete their files. Never raises for
        a full disk (see the module doc): they leave the queue whatever happens."""
        if not seqs:
            return
        top = max(seqs)
        if top > self._marks["acked"]:
            self._marks["acked"] = top
        done = {seq: self._entries[seq].path for seq in seqs if seq in self._entries}
        for seq in done:
            self._forget(seq)
        self._kept.update(done)
        if self._save_marks():
            self._sync_dir()
            return
        # Keep only the highest acknowledged file: it still carries the number forward.
        highest = max(self._kept)
        for seq in [s for s in self._kept if s != highest]:
            self._kept.pop(seq).unlink(missing_ok=True)
        self._sync_dir()
        self._save_marks()  # there may be room now

    def _sync_dir(self) -> None:
        try:
            dfd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass

    def quarantine(self, seq: int, reason: str) -> None:
        """Set aside a report the collector will never accept, so it blocks nothing."""
        e = self._entries.get(seq)
        if e is None:
            return
        bad = self.dir / "rejected"
        bad.mkdir(mode=0o700, exist_ok=True)
        # Sending is oldest first, so everything before ``seq`` is acknowledged already.
        self._marks["acked"] = max(self._marks["acked"], seq)
        if not self._save_marks():
            self.reserve(seq)  # the number stays taken though its file moves away
        os.replace(e.path, bad / e.path.name)
        self._forget(seq)
        try:
            (bad / f"{e.path.stem}.reason").write_text(reason)
        except OSError as exc:
            log.warning("cannot write why report %d was set aside: %s", seq, exc)
        log.error("report %d set aside in %s: the collector refused it: %s", seq, bad, reason)

    def _forget(self, seq: int) -> None:
        e = self._entries.pop(seq, None)
        if e is not None:
            self._bytes -= e.size

    # -- figures ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def oldest_seq(self) -> int | None:
        return min(self._entries, default=None)

    def oldest_mtime(self) -> float | None:
        seq = self.oldest_seq()
        if seq is None:
            return None
        try:
            return self._entries[seq].path.stat().st_mtime
        except OSError:
            return None
