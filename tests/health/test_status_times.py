"""How `vigil-agent status` writes a time: when, and how long ago in plain words."""

from __future__ import annotations

import time

from agent.cli import _when


def test_a_past_time_says_how_long_ago_without_a_sign() -> None:
    text = _when(time.time() - 4.2)
    assert text.endswith(" (4 s ago)"), text
    assert "+" not in text


def test_a_time_ahead_of_this_clock_says_in() -> None:
    assert _when(time.time() + 30.5).endswith(" (in 30 s)")


def test_no_time_is_never() -> None:
    assert _when(None) == "never"
