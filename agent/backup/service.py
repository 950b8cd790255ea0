"""The backup job inside the agent daemon: APScheduler glue around ``BackupRunner``.

``agent.daemon.Agent`` keeps ``self.backup`` and calls ``await self.backup.start(self)``
before its scheduler starts; it should also call ``self.backup.on_settings(settings)``
from its settings callback. One ``DateTrigger`` job (id ``backup``) always holds the next
due run; each run reschedules the next when it ends, so runs never overlap and a run
missed while the agent was down is due soon after it starts (``schedule.next_run_time``).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from apscheduler.triggers.date import DateTrigger

from agent.backup.config import BackupSettings
from agent.backup.runner import BackupRunner, RunOutcome
from agent.backup.upload import BackupClient
from protocol.backup_window import WindowError, check_window
from protocol.messages import AgentSettings

if TYPE_CHECKING:  # the daemon imports this module; only the type goes the other way
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agent.agent_key import AgentKey
    from agent.daemon import Agent

log = logging.getLogger(__name__)

JOB_ID = "backup"
BUSY_RETRY_S = 300.0
"""A scheduled run that found another in progress (``vigil-agent backup --now``) tries again
after this long."""


class BackupService:
    def __init__(
        self,
        settings: BackupSettings,
        state_dir: Path,
        signing_key: AgentKey | Ed25519PrivateKey,
        server_id: str,
        client: BackupClient,
    ) -> None:
        self.runner = BackupRunner(settings, state_dir, signing_key, server_id, client)
        self._scheduler: Any = None
        self._settings = AgentSettings()
        self.last_outcome: RunOutcome | None = None
        self._next_settings: BackupSettings | None = None
        """A reloaded ``[backup]`` table waiting for the run in progress to end."""
        self._retired = False

    @classmethod
    def for_agent(cls, agent: Agent) -> BackupService:
        """From the daemon's ``Agent`` (its config's ``[backup]``, state dir, key, client)."""
        assert agent.config.backup is not None, "the backup feature runs only with [backup]"
        return cls(
            agent.config.backup,
            agent.state_dir,
            agent.key,
            agent.identity.server_id,
            agent.client,
        )

    async def start(self, agent: Agent) -> None:
        """Schedule the first run on ``agent.scheduler`` with ``agent.settings``."""
        self._scheduler = agent.scheduler
        self.on_settings(agent.settings)

    def on_settings(self, settings: AgentSettings) -> None:
        """New settings from the collector: reschedule only when the schedule changed."""
        old = self._settings
        try:
            check_window(settings.backup_window)
        except WindowError as exc:
            # The collector checks windows before it sends them; a collector that does not
            # must not stop backups: the last good window stays, and the log says why.
            log.warning(
                "the collector sent %s; keeping the backup window %r", exc, old.backup_window
            )
            settings = msgspec.structs.replace(settings, backup_window=old.backup_window)
        self._settings = settings
        self.runner.apply(settings)
        changed = (
            old.backup_interval_s,
            old.backup_window,
            old.backup_entitled,
            old.backup_recipients,
        ) != (
            settings.backup_interval_s,
            settings.backup_window,
            settings.backup_entitled,
            settings.backup_recipients,
        )
        if changed or self._scheduler is None or self._scheduler.get_job(JOB_ID) is None:
            self.reschedule()

    def reschedule(self, now: float | None = None, at: float | None = None) -> float | None:
        """Put the next run on the scheduler; returns its time (None = backups off). While a
        run is in progress nothing is scheduled: the run reschedules when it ends."""
        if self._scheduler is None or self.runner.status()["running"]:
            return None
        due = at if at is not None else self.runner.next_due(self._settings, now or time.time())
        if due is None:
            if self._scheduler.get_job(JOB_ID) is not None:
                self._scheduler.remove_job(JOB_ID)
            return None
        self._scheduler.add_job(
            self.run_job,
            DateTrigger(run_date=datetime.fromtimestamp(due, UTC)),
            id=JOB_ID,
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        return due

    def replace_settings(self, settings: BackupSettings) -> None:
        """A reloaded ``[backup]`` table: now, or when the run in progress has ended (a run
        keeps the paths, exclusions and pre-command it started with)."""
        if self.runner.status()["running"]:
            self._next_settings = settings
            return
        self.runner.settings = settings
        self.reschedule()

    def retire(self) -> None:
        """``[backup]`` left the configuration: no further run; one in progress finishes."""
        self._retired = True
        if self._scheduler is not None and self._scheduler.get_job(JOB_ID) is not None:
            self._scheduler.remove_job(JOB_ID)

    async def run_job(self) -> RunOutcome:
        """The scheduled run: one backup, then the next one on the schedule."""
        outcome = await self.runner.run_once()
        self.last_outcome = outcome
        if self._next_settings is not None:
            self.runner.settings, self._next_settings = self._next_settings, None
        if self._retired:
            return outcome
        if outcome.outcome == "busy":
            self.reschedule(at=time.time() + BUSY_RETRY_S)
        else:
            self.reschedule()
        return outcome

    def status(self) -> dict[str, Any]:
        """For ``vigil-agent status``: the runner's status plus the scheduled time."""
        st = self.runner.status()
        job = self._scheduler.get_job(JOB_ID) if self._scheduler is not None else None
        if job is not None and job.next_run_time is not None:
            st["scheduled_at"] = job.next_run_time.timestamp()
        return st
