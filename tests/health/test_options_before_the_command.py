"""``--config``/``--data`` typed before the command, as people do, reach the command
(`vigil-collector --data DIR servers`, `vigil-agent --config FILE status`); given after it
too, the one after wins. Both used to fail with "invalid choice" naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli import main as agent_main
from collector.cli import main as collector_main


def test_the_collectors_data_before_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert collector_main(["--data", str(data), "partner", "add", "acme"]) == 0
    assert "partner acme added" in capsys.readouterr().out
    assert collector_main(["--data", str(data), "servers", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"count": 0, "servers": []}
    config = tmp_path / "collector.toml"
    config.write_text(f'[collector]\ndata_dir = "{data}"\n')
    assert collector_main(["--config", str(config), "token", "create", "--partner", "acme"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("vgl_enr_")
    # After the command wins: here a file with a key nothing reads.
    bad = tmp_path / "bad.toml"
    bad.write_text("[collector]\nlisten_on = 1\n")
    assert collector_main(["--config", str(config), "servers", "--config", str(bad)]) == 2
    assert f"{bad}: collector.listen_on: expected a key" in capsys.readouterr().err
    # A command that takes no --data says so.
    with pytest.raises(SystemExit) as exit_:
        collector_main(
            ["--data", str(data), "migrate-storage", "--from", "sqlite:///a", "--to", "sqlite:///b"]
        )
    assert exit_.value.code == 2
    assert "migrate-storage takes no --data" in capsys.readouterr().err


def test_the_agents_config_before_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n')
    assert agent_main(["--config", str(config), "status"]) == 1
    assert f"not enrolled (state directory {tmp_path / 'state'})" in capsys.readouterr().out
    other = tmp_path / "other.toml"
    other.write_text(f'[agent]\nstate_dir = "{tmp_path / "other"}"\n')
    assert agent_main(["--config", str(config), "status", "--config", str(other)]) == 1
    assert f"(state directory {tmp_path / 'other'})" in capsys.readouterr().out
