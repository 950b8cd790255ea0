"""Running an enrolled agent's backup in the test process, through a client of the test's
choosing (a subclass that kills or swaps collectors between requests): the wiring the
daemon does (the runner follows the settings every answer carries)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


async def run_backups(
    config: Path,
    client_class: Any = None,
    *,
    runs: int = 1,
    retry_delays: tuple[float, ...] | None = None,
) -> list[Any]:
    """Each run's outcome (``agent.backup.runner`` ``RunOutcome``), ``runs`` runs in a
    row on one session of ``client_class`` (default: the agent's ``CollectorClient``)."""
    from agent.backup import BackupRunner
    from agent.client import CollectorClient
    from agent.config import load
    from agent.identity import load_identity

    cfg = load(config)
    loaded = load_identity(cfg.state_dir)
    assert loaded is not None, f"not enrolled: {cfg.state_dir}"
    identity, key = loaded
    assert cfg.backup is not None, f"no [backup] in {config}"
    holder: list[BackupRunner] = []

    def follow(settings: Any) -> None:
        if holder:
            holder[0].apply(settings)

    client = (client_class or CollectorClient)(
        identity.collector_url, identity.server_id, key, on_settings=follow
    )
    runner = BackupRunner(cfg.backup, cfg.state_dir, key, identity.server_id, client)
    if retry_delays is not None:
        runner.retry_delays = retry_delays
    holder.append(runner)
    await client.open_session()
    try:
        return [await runner.run_once() for _ in range(runs)]
    finally:
        await client.close()
