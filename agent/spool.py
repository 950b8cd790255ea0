"""The durable report spool: nothing collected is lost while the collector is away.

One file per report, ``<seq>.json``, written whole (temporary file, fsync, rename, fsync
of the directory) before the agent tries to send it; deleted only after the collector
acknowledged it. Reports go out oldest first. Past ``max_bytes`` the oldest reports are
dropped and counted; the count travels in the next report.

Sequence numbers never repeat and never skip, whatever moment a kill -9 hits: the next
number is one past the largest of the spooled files, the last acknowledged and the last
dropped, and those two marks are written down *before* the files they cover are deleted.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from agent.identity import write_atomic

log = logging.getLogger("vigil.agent.spool")

_MARKS = "marks.json"


@dataclass(frozen=True)
class Entry:
    seq: int
    path: Path
    size: int


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.dir = directory
        self.max_bytes = max_bytes
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._marks = self._load_marks()
        self._entries: dict[int, Entry] = {}
        for p in self.dir.iterdir():
            if p.name.startswith(".") and p.name.endswith(".tmp"):
                p.unlink(missing_ok=True)  # a write cut short by a crash: never acknowledged
                continue
            if p.suffix == ".json" and p.stem.isdigit():
                seq = int(p.stem)
                if seq <= self._marks["acked"]:
                    p.unlink(missing_ok=True)  # acknowledged before a crash cut the cleanup
                    continue
                self._entries[seq] = Entry(seq, p, p.stat().st_size)
        self._bytes = sum(e.size for e in self._entries.values())

    # -- marks --------------------------------------------------------------------------

    def _load_marks(self) -> dict[str, int]:
        try:
            data = json.loads((self.dir / _MARKS).read_text())
            return {k: int(data.get(k, 0)) for k in ("acked", "dropped_upto", "dropped_total")}
        except (OSError, ValueError):
            return {"acked": 0, "dropped_upto": 0, "dropped_total": 0}

    def _save_marks(self) -> None:
        write_atomic(self.dir / _MARKS, json.dumps(self._marks).encode())

    @property
    def dropped_total(self) -> int:
        return self._marks["dropped_total"]

    @property
    def last_acked(self) -> int:
        return self._marks["acked"]

    def next_seq(self) -> int:
        top = max(self._entries, default=0)
        return max(top, self._marks["acked"], self._marks["dropped_upto"]) + 1

    # -- queue --------------------------------------------------------------------------

    def append(self, seq: int, data: bytes) -> None:
        """Store report ``seq`` durably, then make room within the bound."""
        path = self.dir / f"{seq:012d}.json"
        write_atomic(path, data)
        self._entries[seq] = Entry(seq, path, len(data))
        self._bytes += len(data)
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
        self._save_marks()
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
        """The collector has these: mark them, then delete their files."""
        if not seqs:
            return
        top = max(seqs)
        if top > self._marks["acked"]:
            self._marks["acked"] = top
            self._save_marks()
        for seq in seqs:
            e = self._entries.get(seq)
            if e is not None:
                e.path.unlink(missing_ok=True)
                self._forget(seq)
        try:
            dfd = os.open(self.dir, os.O_RDONLY)
            os.fsync(dfd)
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
        self._save_marks()
        os.replace(e.path, bad / e.path.name)
        (bad / f"{e.path.stem}.reason").write_text(reason)
        self._forget(seq)
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
