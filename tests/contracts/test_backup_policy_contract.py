"""The backup policy follows the contract: the stricter of the partner's policy and the
contract's promise reaches the agent and the store; a policy that breaks a promise is
refused with the promise it breaks, or run only with an override the report shows."""

from __future__ import annotations

import json
import time
from pathlib import Path

from harness.processes import Collector
from harness.signed import batch, post_signed, report, session_for


def contract_file(tmp_path: Path, plan: str, licence: str, name: str = "C-1") -> Path:
    today = time.strftime("%Y-%m-%d")
    p = tmp_path / f"{plan}.csv"
    p.write_text(
        "contract_id,customer,partner,plan,licence_ids,start,installed_on\n"
        f"{name},Museum,acme,{plan},{licence},{today},{today}\n"
    )
    return p


def policy(collector: Collector, server_id: str) -> dict:
    return json.loads(collector.cli("backup", "policy", "show", "--server", server_id, "--json"))


def test_policy_is_held_to_the_promise_and_follows_a_plan_change(
    collector: Collector, make_agent, tmp_path: Path
) -> None:
    _, token = collector.partner("acme")
    collector.cli("contracts", "import", str(contract_file(tmp_path, "premium-24x7", "LIC-P")))
    agent = make_agent(extra_config='licence_id = "LIC-P"\n')
    server_id = agent.enroll(collector.url, token)
    # The built-in default (every 24 h, keep last 3) breaks premium's every 6 h / keep 28:
    # the server runs the promise.
    shown = policy(collector, server_id)
    assert shown["interval_s"] == 6 * 3600
    assert (shown["keep_last"], shown["keep_daily"], shown["keep_weekly"]) == (28, 30, 8)
    assert shown["keep_monthly"] == 24 and shown["promise"].startswith("contract C-1")
    session = session_for(agent.state_dir, collector.url)
    status, ack = post_signed(collector.url, session, "/api/v1/agent/reports", batch(report(1)))
    assert status == 200 and ack["settings"]["backup_interval_s"] == 6 * 3600

    # The contract becomes maintenance-support (daily, keep 7): the next report says so.
    collector.cli(
        "contracts", "import", str(contract_file(tmp_path, "maintenance-support", "LIC-P"))
    )
    assert policy(collector, server_id)["interval_s"] == 86400
    assert policy(collector, server_id)["keep_last"] == 7
    seq, interval = 2, None
    deadline = time.monotonic() + 30  # the settings are cached a few seconds per server
    while interval != 86400 and time.monotonic() < deadline:
        _, ack = post_signed(collector.url, session, "/api/v1/agent/reports", batch(report(seq)))
        interval, seq = ack["settings"]["backup_interval_s"], seq + 1
        time.sleep(0.5)
    assert interval == 86400


def test_a_policy_breaking_the_promise_is_refused_or_overridden(
    collector: Collector, make_agent, tmp_path: Path
) -> None:
    _, token = collector.partner("acme")
    collector.cli(
        "contracts", "import", str(contract_file(tmp_path, "maintenance-support", "LIC-M"))
    )
    agent = make_agent(extra_config='licence_id = "LIC-M"\n')
    server_id = agent.enroll(collector.url, token)
    out = collector.cli(
        "backup", "policy", "set", "--partner", "acme", "--keep-last", "3", check=False
    )
    assert "refused" in out
    assert f"server {server_id}: keep_last 3 is below the 7 promised by contract C-1" in out
    assert policy(collector, server_id)["keep_last"] == 7
    # A stricter policy is accepted as is.
    collector.cli("backup", "policy", "set", "--partner", "acme", "--keep-last", "10")
    assert policy(collector, server_id)["keep_last"] == 10
    # An override runs the policy as set and says which promise it breaks.
    collector.cli(
        "backup",
        "policy",
        "set",
        "--server",
        server_id,
        "--keep-last",
        "2",
        "--override-contract",
        "customer's storage is full",
    )
    shown = policy(collector, server_id)
    assert shown["keep_last"] == 2
    assert shown["contract_override"] == "customer's storage is full"
    assert shown["breaks"] == [
        "keep_last 2 is below the 7 promised by contract C-1 (Maintenance & Support)"
    ]
    month = time.strftime("%Y-%m")
    (row,) = json.loads(collector.cli("report", "--month", month, "--format", "json"))
    assert row["backup_policy_overrides"] == (
        f"{server_id}: customer's storage is full (breaks: keep_last 2 is below the 7 "
        "promised by contract C-1 (Maintenance & Support))"
    )
