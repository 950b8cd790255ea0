"""A bad agent configuration stops the agent at start, naming file, key and expectation."""

from __future__ import annotations

import pytest

from agent.config import AgentConfigError, parse


@pytest.mark.parametrize(
    ("raw", "key", "expected"),
    [
        ({"agent": {"state_dir": 5}}, "agent.state_dir", "a non-empty string"),
        ({"agent": {"stat_dir": "/x"}}, "agent.stat_dir", "one of the known keys"),
        ({"report": {"interval_s": 0}}, "report.interval_s", "an integer from 1 to 86400"),
        ({"report": {"recording_volumes": "/video"}}, "report.recording_volumes", "a list"),
        ({"spool": {"max_bytes": 10}}, "spool.max_bytes", "an integer from 65536"),
        ({"software": {"version_regex": "("}}, "software.version_regex", "a regular expression"),
        ({"agnet": {}}, "agnet", "one of the tables"),
    ],
)
def test_errors_name_key_and_expectation(raw: dict, key: str, expected: str) -> None:
    with pytest.raises(AgentConfigError) as err:
        parse(raw, "/etc/vigil/agent.toml")
    assert err.value.key == key
    assert expected in err.value.expected
    assert str(err.value).startswith("/etc/vigil/agent.toml: ")


def test_defaults(tmp_path) -> None:
    cfg = parse({"agent": {"state_dir": str(tmp_path)}}, "x.toml")
    assert cfg.report_interval_s == 60 and cfg.spool_max_bytes == 64 * 1024 * 1024
    assert cfg.cameras is None and cfg.backup is None


def test_run_with_bad_config_exits_2_naming_file_and_key(make_agent) -> None:
    agent = make_agent()
    agent.config.write_text('[agent]\nstate_dir = "/tmp/x"\n[report]\ninterval_s = "fast"\n')
    out = agent.cmd("run", check=False, timeout=30)
    assert out.returncode == 2
    assert str(agent.config) in out.stderr and "report.interval_s" in out.stderr
    assert "expected an integer" in out.stderr
    syntax = make_agent("b")
    syntax.config.write_text("[agent\n")
    out = syntax.cmd("run", check=False, timeout=30)
    assert out.returncode == 2 and "valid TOML" in out.stderr


def test_run_without_enrollment_says_what_to_do(make_agent) -> None:
    out = make_agent().cmd("run", check=False, timeout=30)
    assert out.returncode == 2 and "vigil-agent enroll" in out.stderr
