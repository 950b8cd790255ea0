"""Encrypted configuration backups, agent side (format in docs/backup-format.md).

The daemon sets ``agent.backup = BackupService.for_agent(agent)`` (scheduling, status);
``vigil-agent backup --now`` runs ``BackupRunner.run_once`` with a ``ProgressPrinter``; the
agent configuration loader calls ``parse_backup_config``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.backup.config import BackupConfigError, BackupSettings, parse_backup_config
    from agent.backup.progress import ProgressPrinter
    from agent.backup.runner import BackupRunner, RunOutcome, load_state
    from agent.backup.schedule import next_run_time
    from agent.backup.service import BackupService

_WHERE = {
    "BackupConfigError": "config",
    "BackupSettings": "config",
    "parse_backup_config": "config",
    "ProgressPrinter": "progress",
    "BackupRunner": "runner",
    "RunOutcome": "runner",
    "load_state": "runner",
    "next_run_time": "schedule",
    "BackupService": "service",
}


def __getattr__(name: str) -> Any:
    """The names below, imported on first use: importing one light submodule (the agent
    reads ``recipient_pin`` and ``config`` at every start) must not load the archive,
    compression and encryption stack an idle agent never uses."""
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"agent.backup.{_WHERE[name]}"), name)


__all__ = [
    "BackupConfigError",
    "BackupRunner",
    "BackupService",
    "BackupSettings",
    "ProgressPrinter",
    "RunOutcome",
    "load_state",
    "next_run_time",
    "parse_backup_config",
]
