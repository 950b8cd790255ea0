"""The agent daemon: collect on a schedule, spool, send; probe cameras; run backups.

Like Home Assistant's coordinator, I/O lives here and the pure parts (forecast, spool
bookkeeping, verdicts) beside it; a failure is logged once and its recovery once. Like
uvicorn's server, configuration is apart from runtime state and shutdown is ordered:
stop the schedule, let the collection in progress finish into the spool, give the
sender a last short chance, close.

Every loop and scheduled job runs under one :class:`~agent.supervisor.Supervisor`: an
unexpected exception is logged with its traceback and the work restarts; work that
keeps failing stops the process with a non-zero status so systemd restarts it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from agent import platform
from agent.agent_key import AgentKey
from agent.client import CollectorClient
from agent.config import AgentConfig
from agent.health.disks import DiskProbe
from agent.health.first_report import first_report_delay
from agent.health.host import HostProbe
from agent.health.software import read_software
from agent.health.volumes import VolumeProbe
from agent.identity import Identity, hostname, load_identity, write_atomic
from agent.sender import Refusal, Sender
from agent.spool import Spool
from agent.status_file import write_status
from agent.supervisor import Supervisor
from protocol.camera_digest import cameras_digest
from protocol.messages import AgentSettings, Camera, Report, encode

if TYPE_CHECKING:  # imported when configured: the feature's libraries load only then
    from agent.backup.config import BackupSettings
    from agent.backup.service import BackupService
    from agent.cameras.config import CameraSettings
    from agent.cameras.monitor import CameraMonitor

log = logging.getLogger("vigil.agent")

SHUTDOWN_FLUSH_S = 5.0
EXIT_TASK_FAILED = 1
"""A task kept failing: systemd should start a fresh process."""
ENROLLMENT_CHECK_S = 5
"""How often a refused agent looks whether it was enrolled again (two small files)."""
REVOKED_FILE = "revoked.json"
"""Kept while the collector has revoked this identity, so that a restarted daemon does
not collect again before it has asked the collector."""
EXIT_REENROLLED = 75
"""The identity changed under the running daemon (enrolled again): start afresh with it
(``Restart=always`` in the unit does)."""
HELD_MAX_BYTES = 8 * 1024 * 1024
"""Reports kept in memory while the spool cannot be written (a full disk)."""


class Agent:
    def __init__(
        self, config: AgentConfig, identity: Identity, key: AgentKey, *, report_now: bool = False
    ) -> None:
        self.config = config
        self.report_now = report_now
        """``run --report-now``: the first report at once, not after its spread delay."""
        self.identity = identity
        self.key = key
        self.state_dir = config.state_dir
        self.spool = Spool(self.state_dir / "spool", config.spool_max_bytes)
        self.settings = AgentSettings(report_interval_s=config.report_interval_s)
        self.client = CollectorClient(
            identity.collector_url,
            identity.server_id,
            key,
            on_settings=self._apply_settings,
            proxy=config.collector_proxy,
        )
        self.sender = Sender(
            self.spool,
            self.client,
            retry_max_s=config.retry_max_s,
            refused_check_s=config.refused_check_s,
            on_settings=self._apply_settings,
            on_event=self._on_send_event,
        )
        self.host = HostProbe(hostname(config.hostname))
        self.volumes = VolumeProbe(self.state_dir, config.recording_volumes, config.ignore_fstypes)
        self.disks = DiskProbe(config.disks, self.state_dir)
        self.cameras: CameraMonitor | None = None
        self.latest_cameras: list[Camera] | None = None
        self._last_cameras_digest: str | None = None
        if config.cameras is not None:
            from agent.cameras.monitor import CameraMonitor

            self.cameras = CameraMonitor(config.cameras, self.state_dir)
        self.scheduler = AsyncIOScheduler()
        self._held: list[tuple[int, bytes]] = []
        self._spool_failing = False
        self._status_failing = False
        self.supervisor = Supervisor(self._write_status)
        self.exit_code = 0
        self.backup: BackupService | None = None
        if config.backup is not None:
            from agent.backup.service import BackupService

            self.backup = BackupService.for_agent(self)
        self.stop_event = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._reloads: set[asyncio.Future[None]] = set()
        self._load_revocation()
        self.status: dict[str, Any] = self._first_status()

    def _first_status(self) -> dict[str, Any]:
        """What ``vigil-agent status`` shows before the first report."""
        return {
            "pid": os.getpid(),
            "started_at": time.time(),
            "server_id": self.identity.server_id,
            "collector": self.identity.collector_url,
            "last_success_at": None,
            "last_error": None,
            "last_error_at": None,
            "revoked": self.sender.revoked,
            "refusal": self._refusal_status(),
            "last_report_seq": self.spool.next_seq() - 1,
        }

    # -- settings from the collector ---------------------------------------------------

    def _apply_settings(self, settings: AgentSettings) -> None:
        old = self.settings
        self.settings = settings
        backup = getattr(self, "backup", None)  # None too while __init__ makes the client
        if backup is not None:
            backup.on_settings(settings)
        self.status["settings"] = {
            "report_interval_s": settings.report_interval_s,
            "probe_interval_s": settings.probe_interval_s,
            "backup_interval_s": settings.backup_interval_s,
            "monitoring_entitled": settings.monitoring_entitled,
            "backup_entitled": settings.backup_entitled,
            "notice": settings.notice,
        }
        if settings.report_interval_s != old.report_interval_s and self.scheduler.running:
            log.info("report interval set by the collector: %d s", settings.report_interval_s)
            self.scheduler.reschedule_job(
                "report", trigger=IntervalTrigger(seconds=settings.report_interval_s)
            )
        if (
            self.cameras is not None
            and settings.probe_interval_s != old.probe_interval_s
            and self.scheduler.running
            and self.scheduler.get_job("cameras")
        ):
            self.scheduler.reschedule_job(
                "cameras", trigger=IntervalTrigger(seconds=settings.probe_interval_s)
            )

    def _on_send_event(self, kind: str, info: dict[str, object]) -> None:
        now = time.time()
        if kind == "sent":
            self.status["last_success_at"] = now
            self.status["last_error"] = None
        elif kind == "error":
            self.status["last_error"] = info.get("message")
            self.status["last_error_at"] = now
        self.status["revoked"] = self.sender.revoked
        self.status["refusal"] = self._refusal_status()
        self._keep_revocation()
        self._write_status()

    def _refusal_status(self) -> dict[str, Any] | None:
        refusal = self.sender.refusal
        return None if refusal is None else dataclasses.asdict(refusal)

    def _load_revocation(self) -> None:
        """A revocation seen before a restart holds for this identity until the collector
        accepts it again (checked at the first send)."""
        try:
            data = json.loads((self.state_dir / REVOKED_FILE).read_text())
            if data["public_key"] != self.identity.public_key:
                return
            self.sender.refusal = Refusal(
                "revoked", str(data["message"]), since=float(data["since"]), checked_at=0.0
            )
        except (OSError, ValueError, KeyError, TypeError):
            return
        self.sender.revoked = True
        self.sender.refusal_logged()
        log.error("%s", self.sender.refusal_words())

    def _keep_revocation(self) -> None:
        path = self.state_dir / REVOKED_FILE
        refusal = self.sender.refusal
        try:
            if refusal is None or refusal.code != "revoked":
                path.unlink(missing_ok=True)
            elif not path.exists():
                data = {**dataclasses.asdict(refusal), "public_key": self.identity.public_key}
                write_atomic(path, json.dumps(data).encode())
        except OSError as exc:
            log.warning("cannot record the revocation in %s: %s", path, exc)

    def _write_status(self) -> None:
        self.status["spool"] = {
            "reports": len(self.spool),
            "bytes": self.spool.bytes,
            "oldest_seq": self.spool.oldest_seq(),
            "oldest_at": self.spool.oldest_mtime(),
            "dropped_total": self.spool.dropped_total,
            "max_bytes": self.spool.max_bytes,
        }
        if self.backup is not None:
            self.status["backup"] = self.backup.status()
        self.status["tasks"] = self.supervisor.snapshot()
        self.status["held_in_memory"] = len(self._held)
        offset = self.client.clock_offset
        # Our clock minus the collector's, the sign `doctor` uses too.
        self.status["clock_offset_s"] = None if offset is None else -offset
        job = self.scheduler.get_job("report") if self.scheduler.running else None
        self.status["next_report_at"] = (
            job.next_run_time.timestamp() if job and job.next_run_time else None
        )
        try:
            write_status(self.state_dir, self.status)
        except OSError as exc:
            if not self._status_failing:
                log.warning("cannot write the status file (will retry): %s", exc)
            self._status_failing = True
        else:
            self._status_failing = False

    # -- jobs ---------------------------------------------------------------------------

    def _spool_held(self) -> None:
        """Move collected reports into the spool, oldest first. When the disk is full they
        wait here (their numbers reserved first, so never used twice; up to
        ``HELD_MAX_BYTES``, then the oldest are dropped and counted) and go to the spool
        as soon as there is room again."""
        while self._held:
            seq, data = self._held[0]
            try:
                self.spool.append(seq, data)
            except OSError as exc:
                if not self._spool_failing:
                    log.error("cannot write the spool (%s); holding reports in memory", exc)
                    self._spool_failing = True
                self.status["last_error"] = f"cannot write the spool: {exc}"
                self.spool.reserve(self._held[-1][0])
                dropped = []
                while sum(len(d) for _, d in self._held) > HELD_MAX_BYTES and len(self._held) > 1:
                    dropped.append(self._held.pop(0)[0])
                self.spool.note_dropped(dropped)
                return
            self._held.pop(0)
            if self._spool_failing:
                log.info("spool writable again")
                self._spool_failing = False

    def _drop_held_at_exit(self) -> None:
        """Last chance for reports held in memory; those that cannot be written are
        counted as dropped, and their numbers stay taken."""
        self._spool_held()
        if not self._held:
            return
        seqs = [seq for seq, _ in self._held]
        self.spool.reserve(seqs[-1])
        self.spool.note_dropped(seqs)
        log.error(
            "stopping with %d report(s) (numbers %d to %d) that could not be written to the "
            "spool (disk full): they are lost and counted as dropped",
            len(seqs),
            seqs[0],
            seqs[-1],
        )
        self._held.clear()

    def build_report(self) -> Report:
        """Collect one report (blocking I/O: run it in a thread)."""
        seq = max(self.spool.next_seq(), self._held[-1][0] + 1 if self._held else 0)
        cams = self.latest_cameras
        digest = None if cams is None else cameras_digest(cams)
        # Left out when the collector acknowledged this very inventory and no report in
        # between carried another (which it may not have stored yet).
        unchanged = digest is not None and digest == self.sender.acked_cameras_digest
        unchanged = unchanged and digest == self._last_cameras_digest
        self._last_cameras_digest = digest
        return Report(
            report_id=f"{self.identity.server_id}-{seq}-{uuid.uuid4().hex[:12]}",
            seq=seq,
            collected_at=time.time(),
            host=self.host.read(),
            volumes=self.volumes.read(),
            software=read_software(self.config.software),
            cameras=None if unchanged else cams,
            cameras_unchanged=unchanged,
            disks=self.disks.read(),
            dropped_reports=self.spool.dropped_total,
            cameras_digest=digest,
            firmware_check=bool(
                self.config.cameras is not None and self.config.cameras.firmware_check
            ),
        )

    async def check_enrollment(self) -> None:
        """While the collector refuses this agent, look for a new enrollment."""
        if self.sender.refusal is not None:
            self._identity_changed()

    async def collect(self) -> None:
        if self.sender.revoked:
            # A revoked agent keeps what it has but collects nothing more.
            self.status["last_error"] = self.sender.refusal_words()
            self._write_status()
            return
        try:
            report = await asyncio.to_thread(self.build_report)
        except Exception:
            log.exception("collecting a report failed; the next run will try again")
            return
        self._held.append((report.seq, encode(report)))
        self._spool_held()
        self.status["last_report_seq"] = report.seq
        self.status["last_collected_at"] = report.collected_at
        self._write_status()
        self.sender.wake()

    def _job_event(self, event: JobExecutionEvent) -> None:
        """Jobs scheduled by features themselves (backups) count like supervised ones."""
        if event.exception is not None:
            self.supervisor.job_failed(event.job_id, event.exception)
        else:
            self.supervisor.job_succeeded(event.job_id)

    def _identity_changed(self) -> bool:
        """Enrolled again while refused: stop, so that a fresh process uses the new identity."""
        try:
            loaded = load_identity(self.state_dir)
        except Exception as exc:  # half-written by a concurrent enroll: look next time
            log.debug("cannot read the identity: %s", exc)
            return False
        if loaded is None or (
            loaded[0].server_id == self.identity.server_id
            and loaded[0].public_key == self.identity.public_key
        ):
            return False
        log.warning("enrolled again as %s: restarting to use the new identity", loaded[0].server_id)
        self.exit_code = EXIT_REENROLLED
        self.stop_event.set()
        return True

    async def probe_cameras(self) -> None:
        if self.cameras is None:
            return
        try:
            self.latest_cameras = await self.cameras.probe_cycle()
        except Exception:
            log.exception("camera probe cycle failed; the next cycle will try again")
            return
        counts: dict[str, int] = {}
        for c in self.latest_cameras:
            counts[c.verdict] = counts.get(c.verdict, 0) + 1
        self.status["cameras"] = {
            "probed_at": time.time(),
            "by_verdict": counts,
            "list": [
                {
                    "key": c.key,
                    "name": c.name,
                    "address": f"{c.address}:{c.port}",
                    "verdict": c.verdict,
                    "reason": "; ".join(c.reasons),
                }
                for c in self.latest_cameras
            ],
        }

    async def check_disks(self) -> None:
        """Read SMART (in a thread: smartctl takes its time) and note it in the status."""
        disks = await asyncio.to_thread(self.disks.refresh)
        if disks is not None:
            by_health: dict[str, int] = {}
            for d in disks:
                by_health[d.health] = by_health.get(d.health, 0) + 1
            self.status["disks"] = {"checked_at": self.disks.checked_at, "by_health": by_health}

    # -- lifecycle ----------------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT (0) or a task that keeps failing (non-zero)."""
        loop = asyncio.get_running_loop()
        platform.install_signal_handlers(loop, self.stop_event.set, self._reload_soon)
        log.info(
            "agent %s reporting to %s every %d s (spool %d report(s) pending)",
            self.identity.server_id,
            self.identity.collector_url,
            self.settings.report_interval_s,
            len(self.spool),
        )
        await self._schedule_jobs()
        self.scheduler.start()
        self.supervisor.start("sender", lambda: self.sender.run(self.stop_event))
        self._write_status()
        platform.notify_service("READY=1")
        stop = asyncio.ensure_future(self.stop_event.wait())
        gave_up = asyncio.ensure_future(self.supervisor.gave_up.wait())
        await asyncio.wait([stop, gave_up], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        gave_up.cancel()
        await self._shutdown()
        return self.exit_code

    # -- reload (SIGHUP) ------------------------------------------------------------------

    def _reload_soon(self) -> None:
        """SIGHUP: re-read the configuration file in the loop, one reload at a time."""
        task = asyncio.ensure_future(self._reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def _reload(self) -> None:
        from agent.reload import reload

        async with self._reload_lock:
            platform.notify_service("RELOADING=1")
            try:
                await reload(self)
            except Exception:
                log.exception("reloading the configuration failed; running as before")
            self._write_status()
            platform.notify_service("READY=1")

    def _every(
        self, name: str, fn: Callable[[], Awaitable[Any]], seconds: float, **kw: Any
    ) -> None:
        """Run ``fn`` under the supervisor every ``seconds``, one run at a time, late runs
        folded into one."""
        self.scheduler.add_job(
            self.supervisor.job(name, fn),
            IntervalTrigger(seconds=seconds),
            id=name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            **kw,
        )

    def _schedule_cameras(self) -> None:
        self._every(
            "cameras", self.probe_cameras, self.settings.probe_interval_s, replace_existing=True
        )

    async def replace_cameras(self, settings: CameraSettings | None) -> None:
        """A reloaded ``[cameras]`` table: a new monitor; the old one closes after the
        cycle it may be in."""
        old = self.cameras
        if settings is None:
            self.cameras = None
            self.latest_cameras = None
            self.status.pop("cameras", None)
            if self.scheduler.get_job("cameras"):
                self.scheduler.remove_job("cameras")
        else:
            from agent.cameras.monitor import CameraMonitor

            self.cameras = CameraMonitor(settings, self.state_dir)
            self._schedule_cameras()
            self.scheduler.modify_job("cameras", next_run_time=datetime.now(UTC))
        if old is not None:
            await old.close_when_idle()

    async def replace_backup(self, settings: BackupSettings | None) -> None:
        """A reloaded ``[backup]`` table; a run in progress ends as it started."""
        if settings is None:
            if self.backup is not None:
                self.backup.retire()
            self.backup = None
        elif self.backup is None:
            from agent.backup.service import BackupService

            self.backup = BackupService.for_agent(self)
            await self.backup.start(self)
        else:
            self.backup.replace_settings(settings)

    async def _schedule_jobs(self) -> None:
        """Cameras (probed once before anything else), reports, the enrollment check and
        the backup job; then the listener that counts feature-scheduled jobs."""
        if self.cameras is not None:
            await self.supervisor.job("cameras", self.probe_cameras)()
            self._schedule_cameras()
        if self.disks.available:
            self._every(
                "disks",
                self.check_disks,
                self.config.disks.check_interval_s,
                next_run_time=datetime.now(UTC),
            )
        self._every(
            "report",
            self.collect,
            self.settings.report_interval_s,
            next_run_time=self._first_report(),
        )
        self._every("enrollment", self.check_enrollment, ENROLLMENT_CHECK_S)
        if self.backup is not None:
            await self.backup.start(self)
        self.scheduler.add_listener(self._job_event, EVENT_JOB_ERROR | EVENT_JOB_EXECUTED)

    def _first_report(self) -> datetime:
        """When the first report goes out: after a random delay within the first
        interval (bounded by ``[report] first_spread_s``), so agents started together do
        not all send their whole inventory at once (:mod:`agent.health.first_report`)."""
        spread = 0.0 if self.report_now else self.config.first_report_spread_s
        delay = first_report_delay(spread, self.settings.report_interval_s)
        at = datetime.now(UTC) + timedelta(seconds=delay)
        if delay:
            log.info("first report in %.0f s (spread over the first interval)", delay)
        return at

    async def _shutdown(self) -> None:
        """Stop the schedule, a last short chance for the sender, then close."""
        if self.supervisor.gave_up.is_set():
            self.exit_code = EXIT_TASK_FAILED
            self.status["exit_reason"] = f"task {self.supervisor.failed_task} kept failing"
        platform.notify_service("STOPPING=1")
        log.info("stopping: schedule stopped, flushing the spool")
        self.scheduler.shutdown(wait=False)
        self.stop_event.set()
        await self.supervisor.stop()
        if len(self.spool) and not self.supervisor.gave_up.is_set():
            try:
                await asyncio.wait_for(self.sender.send_pending(limit_batches=20), SHUTDOWN_FLUSH_S)
            except TimeoutError:
                pass
            except Exception:
                log.exception("last send before stopping failed; the spool keeps the reports")
        self._drop_held_at_exit()
        self.status["stopped_at"] = time.time()
        self._write_status()
        if self.cameras is not None:
            await self.cameras.close()
        await self.client.close()
        log.info("stopped; %d report(s) kept in the spool for next time", len(self.spool))
