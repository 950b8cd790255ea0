"""The collector runs on uvloop when it is installed and on asyncio's own loop when it is
not, or when ``[collector] event_loop = "asyncio"`` says so; either way it serves."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from collector.config import CollectorConfig, ConfigError, load_config
from collector.server import event_loop_factory
from harness.enrolled import enroll_agent
from tests.conftest import MakeCollector


def test_the_loop_is_uvloop_when_installed_and_asyncio_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvloop

    assert event_loop_factory(CollectorConfig()) is uvloop.new_event_loop
    assert event_loop_factory(CollectorConfig(event_loop="asyncio")) is None
    monkeypatch.setitem(sys.modules, "uvloop", None)  # not installed: import fails
    assert event_loop_factory(CollectorConfig()) is None


def test_an_unknown_event_loop_is_refused_by_name(tmp_path: Path) -> None:
    cfg = tmp_path / "collector.toml"
    cfg.write_text('[collector]\nevent_loop = "trio"\n')
    with pytest.raises(ConfigError) as refused:
        load_config(cfg)
    assert "collector.event_loop" in str(refused.value)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_collector_on_either_loop_takes_reports(make_collector: MakeCollector, loop: str) -> None:
    collector = make_collector(f'[collector]\nevent_loop = "{loop}"\n')
    _, token = collector.partner("acme")
    agent = enroll_agent(collector.url, token)
    for _ in range(3):
        status, doc = agent.send_report()
        assert status == 200 and len(doc["accepted"]) == 1, doc
