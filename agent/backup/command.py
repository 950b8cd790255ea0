"""``vigil-agent backup --now``: one configuration backup, now, with progress."""

from __future__ import annotations

import asyncio
import json
import sys

from agent.backup.progress import ProgressPrinter
from agent.backup.runner import BackupRunner
from agent.client import CollectorClient, CollectorUnavailable, Refused
from agent.config import AgentConfig
from agent.identity import load_identity


async def _run(cfg: AgentConfig, as_json: bool) -> int:
    loaded = load_identity(cfg.state_dir)
    if loaded is None:
        print("vigil-agent: not enrolled: run 'vigil-agent enroll' first", file=sys.stderr)
        return 2
    ident, key = loaded
    assert cfg.backup is not None, "checked by backup_now"
    client = CollectorClient(ident.collector_url, ident.server_id, key, proxy=cfg.collector_proxy)
    runner = BackupRunner(cfg.backup, cfg.state_dir, key, ident.server_id, client)
    client.on_settings = runner.apply
    try:
        try:
            await client.open_session()
        except (CollectorUnavailable, Refused) as exc:
            print(f"vigil-agent: cannot reach the collector: {exc}", file=sys.stderr)
            return 1
        outcome = await runner.run_once(None if as_json else ProgressPrinter())
    finally:
        await client.close()
    result = outcome.to_dict()
    if as_json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        words = {
            "ok": "backup stored",
            "unchanged": "configuration unchanged since the last backup",
            "failed": "backup FAILED",
            "busy": "another backup is running",
        }
        print(
            f"{words.get(outcome.outcome, outcome.outcome)}"
            + (f": {result.get('reason')}" if result.get("reason") else "")
        )
    return 0 if outcome.outcome in ("ok", "unchanged") else 1


def backup_now(cfg: AgentConfig, *, as_json: bool = False) -> int:
    if cfg.backup is None:
        print(
            f"vigil-agent: {cfg.source} has no [backup] table: nothing to back up", file=sys.stderr
        )
        return 2
    return asyncio.run(_run(cfg, as_json))
