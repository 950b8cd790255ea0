"""Log lines in the three forms ``[log] format`` offers: one line per record, the record's
fields as keys, and a daemon started with ``format = "json"`` writes JSON only."""

from __future__ import annotations

import json
import logging
import shlex
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.processes import Collector
from protocol.log_format import LineFormatter


def _record(msg: str, **fields: object) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "vigil.test", "levelname": "ERROR", "msg": msg})
    record.__dict__.update(fields)
    return record


def test_logfmt_and_json_carry_the_fields() -> None:
    record = _record("configuration not reloaded", event="reload_refused", key="a b", n=3)
    line = LineFormatter("logfmt").format(record)
    pairs = dict(part.split("=", 1) for part in shlex.split(line))
    assert pairs["msg"] == "configuration not reloaded" and pairs["key"] == "a b"
    assert pairs["event"] == "reload_refused" and pairs["level"] == "error"
    data = json.loads(LineFormatter("json").format(record))
    assert data["msg"] == "configuration not reloaded" and data["n"] == 3
    text = LineFormatter("text").format(record)
    assert text.endswith('configuration not reloaded event=reload_refused key="a b" n=3')


@settings(max_examples=60, deadline=None)
@given(msg=st.text(), value=st.text(), kind=st.sampled_from(["text", "logfmt", "json"]))
def test_every_record_is_one_line(msg: str, value: str, kind: str) -> None:
    record = _record(msg.replace("%", "%%"), field=value)
    line = LineFormatter(kind).format(record)
    assert "\n" not in line and "\r" not in line
    if kind == "json":
        assert json.loads(line)["field"] == value


def test_exception_stays_on_the_line() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    for kind in ("text", "logfmt", "json"):
        line = LineFormatter(kind).format(record)
        assert "\n" not in line and "boom" in line


def test_collector_writes_json_lines(tmp_path) -> None:
    config = tmp_path / "collector.toml"
    config.write_text('[log]\nformat = "json"\n')
    collector = Collector(tmp_path / "collector", config=config).start()
    collector.stop()
    lines = [x for x in collector.log().splitlines() if x.strip()]
    assert lines and all(json.loads(x)["logger"].startswith("vigil") for x in lines), lines
    assert any("listening" in json.loads(x)["msg"] for x in lines)
    assert collector.proc.returncode == 0


def test_an_unknown_log_format_is_named(tmp_path) -> None:
    config = tmp_path / "collector.toml"
    config.write_text('[log]\nformat = "xml"\n')
    collector = Collector(tmp_path / "collector", config=config)
    out = collector.cli("servers", check=False)
    assert "log.format" in out and '"text", "logfmt" or "json"' in out
