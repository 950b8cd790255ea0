"""CameraMonitor: one probe cycle over every configured camera, concurrently and bounded.

I/O lives in the prober and the discovery; the verdicts, the firmware comparison and the
flap damping beside it are pure logic. A camera's failure is logged once when its reported
verdict changes, and its recovery once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path

from agent.cameras import firmware
from agent.cameras.config import CameraDevice, CameraSettings
from agent.cameras.damping import DampingStore
from agent.cameras.discovery import discover
from agent.cameras.probe import Prober, ProbeResult, Target
from agent.cameras.verdict import judge, replacement_reason
from protocol import limits
from protocol.messages import Camera

log = logging.getLogger(__name__)
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]")
"""Characters a camera key may not hold (protocol.messages.Id)."""


def target_for(device: CameraDevice) -> Target:
    return Target(
        key=device.key,
        address=device.address,
        port=device.port,
        username=device.credentials.username,
        password=device.credentials.password,
        name=device.name,
        site=device.site,
    )


def _t(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def camera_message(
    result: ProbeResult, verdict: str, reasons: list[str], raw: str, raw_reasons: list[str]
) -> Camera:
    """The protocol message for one camera (strings cut to the protocol's limits)."""
    target = result.target
    return Camera(
        key=target.key,
        address=_t(target.address, 256),
        port=target.port,
        name=_t(target.name, 256),
        site=_t(target.site, 256),
        verdict=verdict,  # type: ignore[arg-type]
        reasons=[_t(r, 1024) for r in reasons][:32],
        raw_verdict=raw,  # type: ignore[arg-type]
        # Evidence for the raw verdict only when it says something the reported one does not
        # (keeps a 256-camera report compact).
        raw_reasons=[] if raw_reasons == reasons else [_t(r, 1024) for r in raw_reasons][:32],
        manufacturer=result.manufacturer,
        model=result.model,
        firmware=result.firmware,
        serial=result.serial,
        hardware_id=result.hardware_id,
        clock_offset_s=result.clock_offset_s,
        latency_ms=result.latency_ms,
        services_absent=result.services_absent,
        profiles=result.profiles,
        stream_ok=result.stream_ok,
        snapshot_ok=result.snapshot_ok,
        error=_t(result.failure, 1024) if result.outcome != "ok" else "",
        probed_at=result.started_at,
        duration_ms=round(result.duration_ms, 3),
    )


class CameraMonitor:
    """Probes the configured cameras; ``probe_cycle()`` returns one Camera per camera
    (plus the ``discovered`` ones), after flap damping."""

    def __init__(self, settings: CameraSettings, state_dir: Path | str) -> None:
        self.settings = settings
        self._prober = Prober(
            timeout_s=settings.timeout_s,
            snapshot=settings.snapshot,
            inventory_every=settings.inventory_every,
        )
        self._store = DampingStore(Path(state_dir), settings.flap_threshold)
        self._store.load()
        self._cycle_lock = asyncio.Lock()
        self.last_results: dict[str, ProbeResult] = {}
        self._logged: dict[str, str] = {}

    async def start(self) -> None:
        """Optional: import onvif-zeep-async and parse its WSDLs now (about 0.7 s of CPU,
        in a worker thread) rather than in the first cycle. Nothing without cameras."""
        if self.settings.devices:
            await self._prober.start()

    async def probe_cycle(self) -> list[Camera]:
        """Probe every camera once (at most ``concurrency`` at a time, each within
        ``timeout_s``). Never raises because of what a camera does."""
        async with self._cycle_lock:
            return await self._cycle()

    async def _cycle(self) -> list[Camera]:
        settings = self.settings
        if settings.devices:
            # Only a server with cameras pays for onvif-zeep-async (about 15 MB).
            try:
                await self._prober.start()
            except Exception as exc:  # each probe retries and reports it as its error
                log.error("cannot load the ONVIF library: %s", exc)
        gate = asyncio.Semaphore(settings.concurrency)
        targets = [target_for(d) for d in settings.devices]

        async def one(target: Target) -> ProbeResult:
            async with gate:
                return await self._prober.probe(target)

        discovery_task = None
        if settings.discovery.enabled:
            discovery_task = asyncio.create_task(
                discover(
                    settings.discovery.interfaces,
                    settings.discovery.targets,
                    settings.discovery.timeout_s,
                )
            )
        results = await asyncio.gather(*(one(t) for t in targets))
        self.last_results = {r.target.key: r for r in results}

        raw = self._raw_verdicts(results)
        cameras: list[Camera] = []
        now = time.time()
        for result in results:
            key = result.target.key
            verdict, reasons = raw[key]
            state = self._store.apply(key, verdict, reasons, now)
            if result.serial and (
                not self._store.serial(key)
                or (state.verdict == verdict and replacement_reason(state.reasons))
            ):
                self._store.record_serial(key, result.serial)
            self._log_change(key, state.verdict, state.reasons)
            cameras.append(camera_message(result, state.verdict, state.reasons, verdict, reasons))
        self._store.retain({t.key for t in targets})
        self._prober.forget({t.key for t in targets})
        try:
            await asyncio.to_thread(self._store.save)
        except OSError as exc:
            log.warning("cannot save camera state to %s: %s", self._store.path, exc)

        if discovery_task is not None:
            cameras += await self._discovered(discovery_task, targets)
        return cameras

    def _raw_verdicts(self, results: list[ProbeResult]) -> dict[str, tuple[str, list[str]]]:
        """Each camera's verdict and reasons from this probe, before flap damping."""
        settings = self.settings
        raw: dict[str, tuple[str, list[str]]] = {}
        for result in results:
            raw[result.target.key] = judge(
                result, settings.clock_threshold_s, self._store.serial(result.target.key)
            )
        if settings.firmware_check:
            rows = [
                (r.target.key, r.manufacturer, r.model, r.firmware)
                for r in results
                if r.outcome == "ok"
            ]
            for key, reason in firmware.outdated(rows).items():
                _verdict, reasons = raw[key]
                raw[key] = ("degraded", [*reasons, reason])
        return raw

    async def _discovered(self, task: asyncio.Task, targets: list[Target]) -> list[Camera]:
        try:
            found = await task
        except Exception as exc:  # discovery is best effort
            log.warning("WS-Discovery failed: %s", exc)
            return []
        configured = {(t.address, t.port) for t in targets}
        room = max(0, limits.MAX_CAMERAS - len(targets))
        out: list[Camera] = []
        for device in sorted(found, key=lambda d: (d.address, d.port)):
            if (device.address, device.port) in configured:
                continue
            if len(out) >= room:
                log.warning("more cameras discovered than a report can hold; %d shown", room)
                break
            out.append(
                Camera(
                    key=_t(_KEY_UNSAFE.sub("_", f"{device.address}:{device.port}"), 128),
                    address=_t(device.address, 256),
                    port=device.port,
                    verdict="discovered",
                    reasons=[
                        "answered WS-Discovery but is not in the configuration; not probed "
                        f"with credentials (XAddr {_t(device.xaddr, 512)})"
                    ],
                    manufacturer=_t(device.scope("name"), 256),
                    model=_t(device.scope("hardware"), 256),
                    probed_at=time.time(),
                )
            )
        return out

    def _log_change(self, key: str, verdict: str, reasons: list[str]) -> None:
        previous = self._logged.get(key)
        self._logged[key] = verdict
        if previous is None and verdict == "ok":
            return
        if previous == verdict:
            return
        if verdict == "ok":
            log.info("camera %s recovered", key)
        else:
            log.warning("camera %s is %s: %s", key, verdict, "; ".join(reasons))

    async def close(self) -> None:
        await self._prober.close()

    async def close_when_idle(self) -> None:
        """Close after the cycle in progress, if any (a reload replaced this monitor)."""
        async with self._cycle_lock:
            await self.close()
