"""The settings of reserves, quotas, expiry and supervision are typed and checked at
start: a wrong value names its key instead of running with a guess."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.backups.config import backup_config
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


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[contracts]\ncheck_interval_s = 0\n", "contracts.check_interval_s"),
        ('[contracts]\ncheck_interval_s = "5m"\n', "contracts.check_interval_s"),
        ("[contracts]\nentitlement_cache_s = 0\n", "contracts.entitlement_cache_s"),
        ("[contracts]\nentitlement_cache_s = 7200\n", "contracts.entitlement_cache_s"),
        ("[contracts]\nreport_refresh_s = 5\n", "contracts.report_refresh_s"),
        ("[contracts]\nreport_refresh_s = true\n", "contracts.report_refresh_s"),
        ("contracts = 3\n", "contracts"),
        ('[backup]\nupload_ttl = "10s"\n', "backup.upload_ttl"),
        ('[backup]\nchunk_size = "1KiB"\n', "backup.chunk_size"),
    ],
)
def test_feature_sections_are_checked_when_the_file_is_loaded(
    tmp_path: Path, text: str, key: str
) -> None:
    # [contracts] used to be read when the scheduler started, and a bad value was logged
    # and replaced by the default; [backup] named "[backup]" instead of the file.
    cfg = tmp_path / "collector.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(cfg, tmp_path)
    assert err.value.source == str(cfg)
    assert err.value.key == key


def test_feature_sections_are_typed_on_the_configuration(tmp_path: Path) -> None:
    cfg = tmp_path / "collector.toml"
    cfg.write_text(
        "[contracts]\ncheck_interval_s = 60\nentitlement_cache_s = 5\nreport_refresh_s = 0\n"
        '[backup]\nupload_ttl = "2h"\n'
    )
    loaded = load_config(cfg, tmp_path)
    assert loaded.contracts.check_interval_s == 60.0
    assert loaded.contracts.entitlement_cache_s == 5.0
    assert loaded.contracts.report_refresh_s == 0.0  # off
    assert loaded.backup.limits.upload_ttl_s == 7200.0
    defaults = load_config(None, tmp_path)
    assert defaults.contracts.check_interval_s == 300.0
    assert defaults.contracts.entitlement_cache_s == 60.0
    assert defaults.contracts.report_refresh_s == 60.0
    assert defaults.backup == backup_config({})
