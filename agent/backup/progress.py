"""A progress printer for ``vigil-agent backup --now``: files and bytes done of total."""

from __future__ import annotations

import sys
import time
from typing import TextIO

_LABELS = {"files": "files", "bytes": "read", "upload": "upload"}


class ProgressPrinter:
    """``run_once(progress=ProgressPrinter())``: one status line, rewritten in place on a
    terminal, a line every few seconds otherwise (logs, systemd)."""

    def __init__(self, stream: TextIO | None = None, interval_s: float | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval_s = interval_s if interval_s is not None else (0.2 if self.tty else 5.0)
        self._state: dict[str, tuple[int, int]] = {}
        self._last = 0.0

    def __call__(self, what: str, done: int, total: int) -> None:
        self._state[what] = (done, total)
        now = time.monotonic()
        final = what == "upload" and done >= total
        if now - self._last < self.interval_s and not final:
            return
        self._last = now
        parts = []
        for key in ("files", "bytes", "upload"):
            if key in self._state:
                d, t = self._state[key]
                if key == "files":
                    parts.append(f"files {d}/{t}")
                else:
                    parts.append(f"{_LABELS[key]} {d / 2**20:.1f}/{t / 2**20:.1f} MiB")
        line = "backup: " + ", ".join(parts)
        if self.tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and self._state:
            self.stream.write("\n")
            self.stream.flush()
