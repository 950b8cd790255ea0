"""The settings of reserves, quotas, expiry and supervision are typed and checked at
start: a wrong value names its key instead of running with a guess."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.backups.handlers import backup_config
from collector.config import ConfigError, load_config


@pytest.mark.parametrize(
    "line",
    [
        'report_reserve = "lots"',
        "report_reserve = true",
        "report_reserve = -1",
        "task_give_up_after = 0",
        'housekeeping_interval_s = "10"',
        "storage_check_interval_s = 0",
        "refusal_log_interval_s = 0",
    ],
)
def test_bad_collector_settings_are_refused(tmp_path: Path, line: str) -> None:
    cfg = tmp_path / "collector.toml"
    cfg.write_text(f"[collector]\n{line}\n")
    with pytest.raises(ConfigError) as err:
        load_config(cfg, tmp_path)
    assert line.split(" ")[0] in str(err.value)


def test_collector_sizes_take_binary_units(tmp_path: Path) -> None:
    cfg = tmp_path / "collector.toml"
    cfg.write_text('[collector]\nreport_reserve = "16MiB"\n')
    assert load_config(cfg, tmp_path).report_reserve == 16 * 1024 * 1024


@pytest.mark.parametrize(
    "table",
    [
        {"staging_quota": "1KiB"},  # below the chunk size
        {"staging_quota": False},
        {"upload_reserve": "much"},
        {"upload_ttl": "10s"},
    ],
)
def test_bad_backup_settings_are_refused(table: dict) -> None:
    with pytest.raises(ConfigError) as err:
        backup_config({"backup": table})
    assert next(iter(table)) in str(err.value)
