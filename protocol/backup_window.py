"""The backup window, ``HH:MM-HH:MM`` in the recording server's local time.

The collector checks it where an operator sets it and sends it in ``AgentSettings``; the
agent schedules by it. Both read it here, so a window one side takes the other reads the
same way. The grammar is strict: two-digit hours 00-23 and minutes 00-59, one ``-``, no
seconds, offsets or spaces inside; start and end differ (``01:00-01:00`` would be either
no time or all day). A window may cross midnight (``22:00-04:00``). Empty = any time.
"""

from __future__ import annotations

import re
from datetime import time

_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


class WindowError(ValueError):
    """The window is not ``HH:MM-HH:MM`` with a start other than its end."""


def parse_window(text: str) -> tuple[time, time] | None:
    """``"01:00-05:00"`` -> (01:00, 05:00); empty (or blank) -> None, any time."""
    window = text.strip()
    if not window:
        return None
    m = _WINDOW.match(window)
    if not m or m.group(1, 2) == m.group(3, 4):
        raise WindowError(f"invalid window {text!r} (expected HH:MM-HH:MM, e.g. 01:00-05:00)")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    return time(h1, m1), time(h2, m2)


def check_window(text: str) -> str:
    """The window as it is stored and sent: stripped, ``""`` for any time. Only the
    empty string means any time here; a blank one is refused (an operator's typo)."""
    if text == "":
        return text
    if parse_window(text) is None:
        raise WindowError(f"invalid window {text!r} (expected HH:MM-HH:MM, e.g. 01:00-05:00)")
    return text.strip()
