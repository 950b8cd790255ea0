"""One reading of the backup window on both sides.

The agent used to read the window with ``time.fromisoformat``, which also takes ``01``,
``0100``, seconds, a leading ``T`` and spaces around the ``-``, and it took ``01:00-01:00``
as "any time"; the collector refused all of these with a strict ``HH:MM-HH:MM`` pattern.
Both now read it with ``protocol.backup_window``: the collector's stricter reading.
"""

from __future__ import annotations

from datetime import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.backup.schedule import next_run_time
from protocol.backup_window import WindowError, check_window, parse_window

# Windows the agent's old reading took and the collector refuses.
ONCE_DISAGREED = [
    "01-05",
    "0100-0500",
    "01:00:30-05:00",
    "01:00 - 05:00",
    "01:00-01:00",
    "T01:00-05:00",
]


@pytest.mark.parametrize("text", ONCE_DISAGREED)
def test_agent_refuses_what_the_collector_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        check_window(text)
    with pytest.raises(WindowError):
        parse_window(text)
    with pytest.raises(WindowError):
        next_run_time(interval_s=3600, window=text, server_id="s", last_run=None, now=0.0)


def test_valid_windows_read_the_same() -> None:
    assert parse_window("22:00-04:00") == (time(22, 0), time(4, 0))
    assert check_window(" 01:00-05:00 ") == "01:00-05:00"
    assert parse_window("") is None and check_window("") == ""


hhmm = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(st.text(max_size=14), st.builds(lambda a, b: f"{a}-{b}", hhmm, hhmm)))
def test_both_sides_agree_on_any_text(text: str) -> None:
    try:
        stored = check_window(text)
    except ValueError:
        stored = None
    try:
        parsed = parse_window(text)
    except WindowError:
        assert stored is None
        return
    if parsed is None:
        assert text.strip() == "" and stored in ("", None)
    else:
        assert stored == text.strip()
        assert parse_window(stored) == parsed
