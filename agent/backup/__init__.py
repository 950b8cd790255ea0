"""Encrypted configuration backups, agent side (format in docs/backup-format.md).

The daemon sets ``agent.backup = BackupService.for_agent(agent)`` (scheduling, status);
``vigil-agent backup --now`` runs ``BackupRunner.run_once`` with a ``ProgressPrinter``; the
agent configuration loader calls ``parse_backup_config``.
"""

from agent.backup.config import BackupConfigError, BackupSettings, parse_backup_config
from agent.backup.progress import ProgressPrinter
from agent.backup.runner import BackupRunner, RunOutcome, load_state
from agent.backup.schedule import next_run_time
from agent.backup.service import BackupService

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
