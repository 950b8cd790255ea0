"""Refusing replayed requests: a request's nonce may be used once within the skew window."""

from __future__ import annotations

import time


class NonceCache:
    """Nonces seen in the last ``window_s`` seconds (twice the accepted clock skew).

    A request older than the window is refused by its timestamp alone, so forgetting a
    nonce after the window is safe. Memory: about 100 bytes a request in the window.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._seen: dict[str, float] = {}
        self._next_sweep = time.monotonic() + window_s

    def check_and_add(self, nonce: str, now: float | None = None) -> bool:
        """True if ``nonce`` is new (and remember it); False for a replay."""
        mono = time.monotonic() if now is None else now
        if mono >= self._next_sweep:
            cutoff = mono - self.window_s
            self._seen = {n: t for n, t in self._seen.items() if t >= cutoff}
            self._next_sweep = mono + self.window_s / 4
        if nonce in self._seen:
            return False
        self._seen[nonce] = mono
        return True

    def __len__(self) -> int:
        return len(self._seen)
