"""``vigil-collector sla due`` through the module's ``main(argv)``."""

from __future__ import annotations

import json

import pytest

from collector.contracts.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_sla_due_json_with_calendar_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "sla",
        "due",
        "--plan",
        "maintenance-support",
        "--priority",
        "high",
        "--opened",
        "2026-11-25T15:00-05:00",
        "--country",
        "US",
        "--tz",
        "America/New_York",
        "--hours",
        "08:00-18:00",
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    # Wednesday 25 Nov 2026 15:00 New York: 3 h until 18:00; Thursday 26 Nov is
    # Thanksgiving (US federal holiday) -> 1 h on Friday 27 Nov from 08:00 -> 09:00 EST.
    assert data["response_due"] == "2026-11-27T09:00:00-05:00"
    # No resolution target in maintenance & support -> null.
    assert data["resolution_due"] is None


def test_sla_due_premium_next_release_is_null(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "sla",
        "due",
        "--plan",
        "premium-24x7",
        "--priority",
        "P4",
        "--opened",
        "2026-11-20T10:00:00Z",
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    # 10:00 UTC = 11:00 Berlin (default calendar); 3 business days: Mon, Tue, Wed 25 Nov 11:00.
    assert data["response_due"] == "2026-11-25T11:00:00+01:00"
    assert data["resolution_due"] is None


def test_sla_due_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "sla",
        "due",
        "--plan",
        "warranty",
        "--priority",
        "high",
        "--opened",
        "2025-12-24T16:00+01:00",
    )
    assert code == 0
    # Over Christmas: Monday 29 Dec closing (see test_calendar).
    assert "response_due    2025-12-29T17:00:00+01:00" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--plan", "gold", "--priority", "high", "--opened", "2026-01-01T10:00Z"], "unknown plan"),
        (["--plan", "warranty", "--priority", "P1", "--opened", "2026-01-01T10:00Z"], "priority"),
        (["--plan", "warranty", "--priority", "high", "--opened", "2026-01-01T10:00"], "offset"),
        (["--plan", "warranty", "--priority", "high", "--opened", "soon"], "--opened"),
        (
            [
                "--plan",
                "warranty",
                "--priority",
                "high",
                "--opened",
                "2026-01-01T10:00Z",
                "--tz",
                "Nowhere/City",
            ],
            "time zone",
        ),
        (
            [
                "--plan",
                "warranty",
                "--priority",
                "high",
                "--opened",
                "2026-01-01T10:00Z",
                "--hours",
                "9-5",
            ],
            "opening hours",
        ),
        (
            [
                "--plan",
                "warranty",
                "--priority",
                "high",
                "--opened",
                "2026-01-01T10:00Z",
                "--country",
                "DE",
                "--subdiv",
                "ZZ",
            ],
            "subdivision",
        ),
    ],
)
def test_sla_due_errors_go_to_stderr(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    code, out, err = run(capsys, "sla", "due", *argv)
    assert code != 0
    assert out == ""
    assert needle in err


def test_priority_in_any_case(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "sla",
        "due",
        "--plan",
        "premium-24x7",
        "--priority",
        "p1",
        "--opened",
        "2026-10-25T02:30+02:00",
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    # 02:30 CEST = 00:30 UTC, + 1 h (24x7) = 01:30 UTC = the second 02:30, in CET.
    assert (data["priority"], data["response_due"]) == ("P1", "2026-10-25T02:30:00+01:00")
