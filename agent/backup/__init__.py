"""Encrypted configuration backups, agent side (issue 4; format in docs/backup-format.md).

The daemon uses ``BackupRunner``; ``vigil-agent backup --now`` runs ``run_once`` with a
``ProgressPrinter``; the agent configuration loader calls ``parse_backup_config``.
"""

from agent.backup.config import BackupConfigError, BackupSettings, parse_backup_config
from agent.backup.progress import ProgressPrinter
from agent.backup.runner import BackupRunner, RunOutcome, load_state
from agent.backup.schedule import next_run_time

__all__ = [
    "BackupConfigError",
    "BackupRunner",
    "BackupSettings",
    "ProgressPrinter",
    "RunOutcome",
    "load_state",
    "next_run_time",
    "parse_backup_config",
]
