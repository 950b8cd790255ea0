"""The settings of reserves, quotas, expiry and supervision are typed and checked at
start: a wrong value names its key instead of running with a guess."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from collector.backups.config import backup_config
from collector.config import _COLLECTOR_INTS, ConfigError, load_config
from collector.notify.settings import notify_settings


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
    refused(tmp_path, text, key)


def refused(tmp_path: Path, text: str, key: str) -> ConfigError:
    """The error loading ``text`` as a file gives, naming the file and ``key``."""
    cfg = tmp_path / "collector.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(cfg, tmp_path)
    assert err.value.source == str(cfg)
    assert err.value.key == key
    return err.value


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


@pytest.mark.parametrize(
    ("text", "key", "meant"),
    [
        (
            "[collector]\nhousekeping_interval_s = 5\n",
            "collector.housekeping_interval_s",
            "collector.housekeeping_interval_s",
        ),
        ("[contract]\nreport_refresh_s = 0\n", "contract", "contracts"),
        (
            "[contracts]\nreport_refresh = 0\n",
            "contracts.report_refresh",
            "contracts.report_refresh_s",
        ),
        (
            '[backup.storage]\nkind = "s3"\nbuckett = "b"\n',
            "backup.storage.buckett",
            "backup.storage.bucket",
        ),
        ("[notify]\nintervall_s = 5\n", "notify.intervall_s", "notify.interval_s"),
        (
            '[storage]\nsqlite_synchronus = "FULL"\n',
            "storage.sqlite_synchronus",
            "storage.sqlite_synchronous",
        ),
        ("[collector]\nvolume_colour = 3\n", "collector.volume_colour", ""),
    ],
)
def test_a_key_nothing_reads_is_refused_naming_the_key_meant(
    tmp_path: Path, text: str, key: str, meant: str
) -> None:
    # Every key is optional: a misspelt one used to be ignored and its default used.
    said = str(refused(tmp_path, text, key))
    if meant:
        assert said.endswith(f"did you mean {meant}?")
    else:
        assert "did you mean" not in said


def test_every_key_of_the_shipped_example_is_read(tmp_path: Path) -> None:
    """The example configuration with every commented-out setting switched on loads: the
    refusal of unknown keys knows every key the collector documents there."""
    example = Path(__file__).parents[2] / "packaging" / "collector.toml.example"
    lines = []
    for line in example.read_text().splitlines():
        body = line[2:] if line.startswith("# ") else line
        head = body.split("#")[0].strip()
        if head.startswith("[") or (" = " in head and head.split(" ")[0].isidentifier()):
            line = body
        lines.append(line)
    text = "\n".join(lines).replace('token = "..."', 'token = "0123456789abcdef0123"')
    cfg = tmp_path / "collector.toml"
    cfg.write_text(text)
    assert text != example.read_text()  # something was switched on
    loaded = load_config(cfg, tmp_path)
    assert loaded.source == str(cfg)
    # The values it shows are the defaults.
    defaults = load_config(None, tmp_path)
    ints = [key for key, *_ in _COLLECTOR_INTS] + ["report_reserve"]
    assert {k: getattr(loaded, k) for k in ints} == {k: getattr(defaults, k) for k in ints}
    assert loaded.contracts == defaults.contracts
    assert loaded.rate_limits == defaults.rate_limits and loaded.pages == defaults.pages
    assert loaded.backup.limits == defaults.backup.limits
    assert dataclasses.replace(loaded.backup, storage={}) == defaults.backup
    shown = notify_settings(loaded.raw)
    assert dataclasses.replace(shown, public_url="", key_file="") == notify_settings({})


def test_a_bad_listen_address_names_where_it_came_from(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, tmp_path, listen="127.0.0.1:99999")
    assert (err.value.source, err.value.key) == ("command line", "--listen")
    cfg = tmp_path / "collector.toml"
    cfg.write_text('[collector]\nlisten = "127.0.0.1:99999"\n')
    with pytest.raises(ConfigError) as err:
        load_config(cfg, tmp_path)
    assert (err.value.source, err.value.key) == (str(cfg), "collector.listen")
    # The command line wins over the file; the file's value is still checked as a string.
    cfg.write_text('[collector]\nlisten = "127.0.0.1:8000"\ndata_dir = "/srv/vigil"\n')
    loaded = load_config(cfg, tmp_path / "data", listen="127.0.0.1:9000")
    assert (loaded.listen, loaded.data_dir) == ("127.0.0.1:9000", tmp_path / "data")
