"""Fixtures of the health tests."""

from __future__ import annotations

import pytest

from harness.processes import Collector
from harness.signed import session_for


@pytest.fixture
def enrolled(collector: Collector, make_agent):
    """Partner ``acme`` with one enrolled agent: (API key, agent, server id, session)."""
    key, token = collector.partner("acme")
    agent = make_agent()
    server_id = agent.enroll(collector.url, token)
    return key, agent, server_id, session_for(agent.state_dir, collector.url)
