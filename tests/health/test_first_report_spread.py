"""An agent's first report after it starts waits a random delay within its first interval
(bounded by ``[report] first_spread_s``), so agents started together do not all send
their whole camera inventory in the same second; ``vigil-agent run --report-now`` (or
``first_spread_s = 0``) sends it at once."""

from __future__ import annotations

import json
import random
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import AgentConfigError, parse
from agent.health.first_report import DEFAULT_SPREAD_S, first_report_delay
from harness.net import wait_until
from harness.processes import Agent, Collector

SLOW = "\n[report]\ninterval_s = 3600\nfirst_spread_s = 3600\n"
"""A first report that may wait up to an hour unless the agent is told otherwise."""


@settings(max_examples=200, deadline=None)
@given(
    spread=st.floats(min_value=0, max_value=86400),
    interval=st.integers(min_value=1, max_value=86400),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_the_delay_lies_within_the_first_interval_and_the_bound(
    spread: float, interval: int, seed: int
) -> None:
    delay = first_report_delay(spread, interval, random.Random(seed))
    bound = min(spread, interval)
    assert delay == 0.0 if bound == 0 else 0.0 <= delay <= bound


def test_agents_draw_different_delays() -> None:
    rng = random.Random(7)
    delays = {first_report_delay(60, 60, rng) for _ in range(100)}
    assert len(delays) == 100
    assert max(delays) - min(delays) > 30, "spread over the interval, not bunched"


def test_first_spread_s_is_read_and_checked() -> None:
    assert parse({}, "agent.toml").first_report_spread_s == DEFAULT_SPREAD_S
    assert parse({"report": {"first_spread_s": 0}}, "agent.toml").first_report_spread_s == 0.0
    with pytest.raises(AgentConfigError, match=r"report.first_spread_s: expected a number"):
        parse({"report": {"first_spread_s": -1}}, "agent.toml")


def _next_report(agent: Agent) -> float:
    """The running agent's next report time, once its status file says it."""
    found: list[float] = []

    def scheduled() -> bool:
        out = agent.cmd("status", "--json", check=False)
        if out.returncode == 0 and json.loads(out.stdout).get("next_report_at"):
            found.append(json.loads(out.stdout)["next_report_at"])
        return bool(found)

    wait_until(scheduled, 30, 0.2, "the agent's schedule")
    return found[0]


def test_a_started_agent_waits_within_its_first_interval(collector: Collector, make_agent) -> None:
    _, token = collector.partner("acme")
    agents = [make_agent(f"a{i}", extra_config=SLOW) for i in range(2)]
    for agent in agents:
        agent.enroll(collector.url, token)
    before = time.time()
    for agent in agents:
        agent.start(report_now=False)
    firsts = []
    for agent in agents:
        first = _next_report(agent)
        assert before <= first <= time.time() + 3600
        said = re.search(r"first report in (\d+) s", agent.log_path.read_text())
        assert said is not None and int(said.group(1)) <= 3600, agent.log_path.read_text()
        firsts.append(first)
    assert firsts[0] != firsts[1], "each agent draws its own delay"


def test_report_now_sends_the_first_report_at_once(collector: Collector, make_agent) -> None:
    key, token = collector.partner("acme")
    agent = make_agent(extra_config=SLOW)
    server_id = agent.enroll(collector.url, token)
    agent.start(report_now=True)

    def received() -> bool:
        status, body = collector.api(key, f"/api/v1/servers/{server_id}")
        return status == 200 and body["reports_received"] >= 1

    wait_until(received, 60, what="the first report, sent at once")
    assert "first report in" not in agent.log_path.read_text()
