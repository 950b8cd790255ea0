"""The daemon's backup job: APScheduler holds the next due run; each run schedules the next.
The agent's client speaks to the real collector for a server enrolled on it."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from agent.backup.config import parse_backup_config
from agent.backup.service import JOB_ID, BackupService
from protocol.backup_archive import generate_identity
from protocol.messages import AgentSettings
from tests.backups.backup_site import BackupSite


def test_service_schedules_runs_and_reschedules(
    site: BackupSite, tree: Path, tmp_path: Path
) -> None:
    _, recipient = generate_identity()
    settings = AgentSettings(
        backup_interval_s=86400, backup_window="", backup_recipients=[recipient]
    )

    async def scenario() -> None:
        scheduler = AsyncIOScheduler()
        agent = SimpleNamespace(
            config=SimpleNamespace(backup=parse_backup_config({"paths": [str(tree)]})),
            state_dir=tmp_path / "state",
            key=site.key,
            identity=SimpleNamespace(server_id=site.server_id),
            client=site.client(),
            scheduler=scheduler,
            settings=settings,
        )
        service = BackupService.for_agent(agent)
        await service.start(agent)
        scheduler.start(paused=True)
        try:
            job = scheduler.get_job(JOB_ID)
            assert job is not None  # never ran: due within minutes of start
            assert job.next_run_time.timestamp() <= time.time() + 300

            outcome = await service.run_job()
            assert outcome.outcome == "ok"
            last_run = service.runner.status()["last_run_at"]
            job = scheduler.get_job(JOB_ID)
            assert abs(job.next_run_time.timestamp() - (last_run + 86400)) < 1e-3

            # backups switched off by the collector: the job goes away
            service.on_settings(AgentSettings(backup_interval_s=0))
            assert scheduler.get_job(JOB_ID) is None
            service.on_settings(settings)
            assert scheduler.get_job(JOB_ID) is not None
            assert service.status()["scheduled_at"] is not None
        finally:
            scheduler.shutdown(wait=False)

    site.run(scenario())
    assert [r["outcome"] for r in site.runs()] == ["ok"]
    assert [b["kind"] for b in site.backups()] == ["full"]


def test_failed_run_is_retried_sooner(site: BackupSite, tmp_path: Path) -> None:
    settings = AgentSettings(backup_interval_s=86400, backup_recipients=[])

    async def scenario() -> None:
        service = BackupService(
            parse_backup_config({"paths": [str(tmp_path)]}),
            tmp_path / "state",
            site.key,
            site.server_id,
            site.client(),
        )
        service.runner.apply(settings)
        outcome = await service.runner.run_once()
        assert outcome.outcome == "failed"  # no recovery key yet
        last = service.runner.status()["last_run_at"]
        due = service.runner.next_due(settings, now=last + 1)
        assert due == last + 1800

    site.run(scenario())


def test_a_bad_window_from_the_collector_keeps_the_last_good_one(
    site: BackupSite, tmp_path: Path, caplog
) -> None:
    service = BackupService(
        parse_backup_config({"paths": [str(tmp_path)]}),
        tmp_path / "state",
        site.key,
        site.server_id,
        site.client(),
    )
    good = AgentSettings(backup_interval_s=86400, backup_window="01:00-05:00")
    service.on_settings(good)
    for bad in ("25:00-26:00", "01:00-01:00", "nonsense"):
        service.on_settings(AgentSettings(backup_interval_s=3600, backup_window=bad))
        assert service.runner.status()["window"] == "01:00-05:00"
    assert service.runner.status()["interval_s"] == 3600
    assert "keeping the backup window '01:00-05:00'" in caplog.text
