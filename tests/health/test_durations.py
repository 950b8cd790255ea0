"""The collector's one duration parser: what an operator may type, and what is refused."""

from __future__ import annotations

import pytest

from collector.durations import parse_duration, parse_interval


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("1.5h", 5400.0), ("1d12h", 129600.0), (" 2w ", 1209600.0), ("15m", 900.0)],
)
def test_durations_people_type(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e3", "-5", "0", "", "5x", "h", "1h 2"])
def test_durations_refused(text: str) -> None:
    # float() would take "nan", "inf" and "1e3": a --ttl of nan once slipped through.
    with pytest.raises(ValueError):
        parse_duration(text)


def test_interval_whole_seconds() -> None:
    assert parse_interval("1d12h") == 129600
    assert parse_interval("90 m") == 5400
    assert parse_interval("0") == 0
    assert isinstance(parse_interval("1h"), int)
    with pytest.raises(ValueError):
        parse_interval("1.5h")
