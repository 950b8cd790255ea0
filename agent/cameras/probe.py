"""One camera, probed step by step; I/O only (the verdict is decided in ``verdict.py``).

Steps, in Home Assistant's order: TCP connect; unauthenticated GetSystemDateAndTime (the
camera's clock offset, then applied to every WS-UsernameToken); GetDeviceInformation;
GetServices (else GetCapabilities); GetProfiles; GetStreamUri of the main profile and an
RTSP DESCRIBE; optionally GetSnapshotUri and a JPEG. Only ``Get*`` operations and DESCRIBE
are sent: the probe never changes anything on a camera.

Every exception a camera can cause ends in the result (``outcome`` + ``failure``), never
out of :meth:`Prober.probe`. The whole probe of one camera is bounded by ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from agent.cameras import onvif_lib, rtsp
from protocol.messages import CameraProfile

MAX_TEXT = 300
MAX_SNAPSHOT = 8 * 1024 * 1024
JPEG_MAGIC = b"\xff\xd8\xff"

_ABSENT_MARKERS = (
    "actionnotsupported",
    "notsupported",
    "not supported",
    "not implemented",
    "notimplemented",
    "nosuchservice",
    "servicenotsupported",
)


@dataclass(frozen=True)
class Target:
    """What to probe: the camera's address and the credentials to present."""

    key: str
    address: str
    port: int
    username: str
    password: str = field(repr=False)
    name: str = ""
    site: str = ""

    @property
    def device_xaddr(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/onvif/device_service"


@dataclass
class Step:
    name: str
    status: str
    """``ok``, ``failed``, ``absent`` (the camera lacks it), ``skipped``, ``timeout`` or
    ``cached`` (taken from an earlier probe's inventory)."""
    ms: float
    detail: str = ""


@dataclass
class ProbeResult:
    target: Target
    started_at: float
    steps: list[Step] = field(default_factory=list)
    outcome: str = "ok"
    """``ok`` (every step ran), ``unreachable``, ``auth_failed``, ``error`` or ``timeout``."""
    failure: str = ""
    answered: bool = False
    """The camera answered at least one ONVIF request."""
    current_step: str = ""
    step_began: float = 0.0
    latency_ms: float | None = None
    clock_offset_s: float | None = None
    manufacturer: str = ""
    model: str = ""
    firmware: str = ""
    serial: str = ""
    hardware_id: str = ""
    services_absent: list[str] = field(default_factory=list)
    profiles: list[CameraProfile] = field(default_factory=list)
    stream_uri: str = ""
    stream_ok: bool | None = None
    stream_detail: str = ""
    snapshot_ok: bool | None = None
    snapshot_detail: str = ""
    duration_ms: float = 0.0


@dataclass
class Inventory:
    """What a camera has (services, profiles, stream URI): it rarely changes, so it is read
    again only every few probes (``inventory_every``), not on every one."""

    device_xaddr: str = ""
    serial: str = ""
    firmware: str = ""
    media_xaddr: str = ""
    profiles: list[CameraProfile] = field(default_factory=list)
    services_absent: list[str] = field(default_factory=list)
    main_token: str = ""
    stream_uri: str = ""
    stream_problem: str = ""
    uses: int = 0

    def usable(self, result: ProbeResult, every: int) -> bool:
        return (
            self.uses + 1 < every
            and self.device_xaddr == result.target.device_xaddr
            and self.serial == result.serial
            and self.firmware == result.firmware
        )

    def apply(self, result: ProbeResult) -> None:
        result.profiles = list(self.profiles)
        result.services_absent = list(self.services_absent)
        result.stream_uri = self.stream_uri
        if self.stream_problem:
            result.stream_ok, result.stream_detail = False, self.stream_problem
        for name in ("get_services", "get_profiles", "get_stream_uri"):
            result.steps.append(Step(name, "cached", 0.0, f"as read {self.uses} probe(s) ago"))


class _Stop(Exception):
    """A step decided the outcome; no further step makes sense."""


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def classify(exc: BaseException) -> tuple[str, str]:
    """What an exception from a camera means: (kind, plain words). Kinds: ``auth``,
    ``absent``, ``timeout``, ``unreachable``, ``malformed``, ``fault``, ``error``."""
    import zeep.exceptions as zx
    from lxml import etree

    if isinstance(exc, zx.Fault):
        from onvif.util import extract_subcodes_as_strings, stringify_onvif_error

        text = _clip(stringify_onvif_error(exc))
        subcodes = " ".join(extract_subcodes_as_strings(exc.subcodes)) if exc.subcodes else ""
        lowered = f"{subcodes} {text}".lower()
        if "notauthorized" in lowered or "not authorized" in lowered or "unauthorized" in lowered:
            return "auth", f"camera refused the credentials: {text}"
        if any(marker in lowered for marker in _ABSENT_MARKERS):
            return "absent", f"not supported by the camera: {text}"
        return "fault", f"SOAP fault: {text}"
    if isinstance(exc, zx.TransportError):
        status = getattr(exc, "status_code", 0)
        if status in (401, 403):
            return "auth", f"camera refused the credentials (HTTP {status})"
        if status in (404, 405, 501):
            return "absent", f"not supported by the camera (HTTP {status})"
        if "invalid xml" in str(exc).lower():
            return "malformed", f"camera sent malformed XML (HTTP {status})"
        return "error", f"HTTP {status}: {_clip(str(exc).splitlines()[0] if str(exc) else '')}"
    if isinstance(exc, zx.XMLSyntaxError | zx.XMLParseError | etree.XMLSyntaxError):
        return "malformed", f"camera sent malformed XML: {_clip(str(exc))}"
    if isinstance(exc, zx.Error):
        return "malformed", f"camera sent an answer that does not fit ONVIF: {_clip(str(exc))}"
    if isinstance(exc, TimeoutError):
        return "timeout", "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectionRefusedError):
        return "unreachable", f"cannot connect: {_clip(str(exc))}"
    if isinstance(exc, aiohttp.ServerDisconnectedError | ConnectionResetError):
        return "error", "camera closed the connection without answering"
    if isinstance(exc, aiohttp.ClientError | OSError | rtsp.RtspError):
        return "error", _clip(f"{type(exc).__name__}: {exc}")
    return "error", _clip(f"unexpected {type(exc).__name__}: {exc}")


class Prober:
    """Probes cameras over one shared aiohttp session (call :meth:`close` at the end)."""

    def __init__(
        self, timeout_s: float = 10.0, snapshot: bool = False, inventory_every: int = 1
    ) -> None:
        self.timeout_s = timeout_s
        self.snapshot = snapshot
        self.inventory_every = inventory_every
        self._inventory: dict[str, Inventory] = {}
        self._session: aiohttp.ClientSession | None = None
        self._transport: Any = None
        self._clients: dict[tuple[str, str, str], onvif_lib.OnvifClients] = {}

    async def start(self) -> None:
        if self._session is not None:
            return
        await onvif_lib.warm_documents()
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, ssl=False)
        self._session = aiohttp.ClientSession(
            connector=connector,
            trust_env=False,
            timeout=aiohttp.ClientTimeout(
                total=self.timeout_s,
                connect=self.timeout_s,
                sock_connect=self.timeout_s,
                sock_read=self.timeout_s,
            ),
        )
        self._transport = onvif_lib.make_transport(self._session)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._clients.clear()

    def forget(self, keep: set[str]) -> None:
        """Drop cached clients of cameras no longer configured."""
        for client_key in [k for k in self._clients if k[0] not in keep]:
            del self._clients[client_key]
        for key in [k for k in self._inventory if k not in keep]:
            del self._inventory[key]

    def _clients_for(self, target: Target) -> onvif_lib.OnvifClients:
        key = (target.key, target.username, target.password)
        clients = self._clients.get(key)
        if clients is None:
            for old in [k for k in self._clients if k[0] == target.key]:
                del self._clients[old]
            clients = onvif_lib.OnvifClients(self._transport, target.username, target.password)
            self._clients[key] = clients
        return clients

    async def probe(self, target: Target) -> ProbeResult:
        """Probe one camera. Never raises (but for cancellation)."""
        result = ProbeResult(target=target, started_at=time.time())
        began = time.monotonic()
        try:
            await self.start()  # once per process: library and WSDLs, not the camera's time
            began = time.monotonic()
            async with asyncio.timeout(self.timeout_s):
                await self._run(target, result)
        except _Stop:
            pass
        except TimeoutError:
            result.outcome = "timeout"
            result.failure = (
                f"no answer within {self.timeout_s:g} s at step {result.current_step or 'start'}"
            )
            result.steps.append(
                Step(
                    result.current_step or "start",
                    "timeout",
                    _ms(result.step_began or began),
                    "timed out",
                )
            )
        except Exception as exc:  # a camera must never crash the agent
            result.outcome = "error"
            _kind, text = classify(exc)
            result.failure = f"{result.current_step}: {text}" if result.current_step else text
        result.duration_ms = (time.monotonic() - began) * 1000
        return result

    async def _run(self, target: Target, result: ProbeResult) -> None:
        """The steps in order; a step that decides the outcome raises ``_Stop``."""
        clients = self._clients_for(target)
        clients.wsse.dt_diff = None
        device_xaddr = target.device_xaddr
        await self._tcp_connect(target, result)
        device_open = clients.service(onvif_lib.DEVICE, device_xaddr, auth=False)
        device = clients.service(onvif_lib.DEVICE, device_xaddr)
        await self._clock(clients, device_open, device, result)
        await self._device_information(device, result)
        await self._inventory_and_stream(clients, device, target, result)

    async def _tcp_connect(self, target: Target, result: ProbeResult) -> None:
        # 1. TCP reachability and latency.
        self._begin(result, "tcp_connect")
        began = time.monotonic()
        try:
            _reader, writer = await asyncio.open_connection(target.address, target.port)
        except TimeoutError:
            raise
        except OSError as exc:
            text = exc.strerror or str(exc) or type(exc).__name__
            self._record(result, "failed", began, text)
            result.outcome, result.failure = (
                "unreachable",
                f"TCP connect to port {target.port}: {text}",
            )
            raise _Stop from None
        result.latency_ms = round((time.monotonic() - began) * 1000, 3)
        writer.close()
        self._record(result, "ok", began, f"connected to {target.address}:{target.port}")

    async def _clock(
        self, clients: onvif_lib.OnvifClients, device_open: Any, device: Any, result: ProbeResult
    ) -> None:
        # 2. Clock, unauthenticated (a camera with a wrong clock rejects our token otherwise).
        self._begin(result, "get_system_date_and_time")
        began = time.monotonic()
        try:
            answer = await device_open.GetSystemDateAndTime()
        except Exception as exc:
            kind, _text = classify(exc)
            if kind in ("auth", "fault"):
                # Some cameras want credentials even for this; try with them (no offset).
                try:
                    answer = await device.GetSystemDateAndTime()
                except Exception as exc2:
                    try:
                        self._fail(result, began, exc2)
                    finally:
                        if result.outcome == "auth_failed":
                            result.failure += (
                                " (the camera wants credentials even for its clock, so no "
                                "clock offset could be applied: check its time too)"
                            )
            else:
                self._fail(result, began, exc)
        result.answered = True
        ended = time.monotonic()
        camera_time = _utc_datetime(answer)
        if camera_time is None:
            self._record(result, "ok", began, "the camera gave no UTC time; clock not checked")
        else:
            midpoint = time.time() - (ended - began) / 2
            # The camera's clock reads whole seconds: its true time is half a second later
            # on average.
            offset = camera_time.timestamp() + 0.5 - midpoint
            result.clock_offset_s = round(offset, 1)
            clients.wsse.dt_diff = dt.timedelta(seconds=offset)
            self._record(
                result,
                "ok",
                began,
                f"camera clock {camera_time:%Y-%m-%d %H:%M:%S}Z, offset {offset:+.1f} s",
            )

    async def _device_information(self, device: Any, result: ProbeResult) -> None:
        # 3. Who the camera is.
        self._begin(result, "get_device_information")
        began = time.monotonic()
        try:
            info = await device.GetDeviceInformation()
        except Exception as exc:
            self._fail(result, began, exc, absent_as="device_information")
        else:
            result.manufacturer = _clip(_attr(info, "Manufacturer"), 256)
            result.model = _clip(_attr(info, "Model"), 256)
            result.firmware = _clip(_attr(info, "FirmwareVersion"), 256)
            result.serial = _clip(_attr(info, "SerialNumber"), 256)
            result.hardware_id = _clip(_attr(info, "HardwareId"), 256)
            if not (result.manufacturer or result.model or result.serial):
                self._record(result, "failed", began, "no manufacturer, model or serial")
                result.outcome = "error"
                result.failure = (
                    "get_device_information: the answer has no manufacturer, model or serial number"
                )
                raise _Stop
            self._record(
                result,
                "ok",
                began,
                f"{result.manufacturer} {result.model}, firmware {result.firmware}, "
                f"serial {result.serial}",
            )

    async def _inventory_and_stream(
        self, clients: onvif_lib.OnvifClients, device: Any, target: Target, result: ProbeResult
    ) -> None:
        # 4-6. Inventory (services, profiles, stream URI), re-read every `inventory_every`
        # probes, when the device changed, or when the stream fails with a remembered URI.
        inventory = self._inventory.get(target.key)
        if inventory is not None and inventory.usable(result, self.inventory_every):
            inventory.uses += 1
            inventory.apply(result)
            if not inventory.stream_uri:
                return
            await self._describe(target, result)
            if result.stream_ok:
                if self.snapshot and inventory.media_xaddr:
                    media = clients.service(onvif_lib.MEDIA, inventory.media_xaddr)
                    await self._snapshot(media, inventory.main_token, target, result)
                return
            result.stream_ok, result.stream_detail = None, ""
            result.services_absent = []
        self._inventory.pop(target.key, None)
        inventory = await self._read_inventory(clients, device, result)
        self._inventory[target.key] = inventory
        if not inventory.stream_uri:
            return
        await self._describe(target, result)

        # 7. Optionally a snapshot, which must be a JPEG.
        if self.snapshot and inventory.media_xaddr:
            media = clients.service(onvif_lib.MEDIA, inventory.media_xaddr)
            await self._snapshot(media, inventory.main_token, target, result)

    async def _read_inventory(
        self, clients: onvif_lib.OnvifClients, device: Any, result: ProbeResult
    ) -> Inventory:
        inventory = Inventory(
            device_xaddr=result.target.device_xaddr,
            serial=result.serial,
            firmware=result.firmware,
        )
        # 4. Where its services are.
        media_xaddr = await self._media_xaddr(device, result)
        if media_xaddr is None:
            if "media" not in result.services_absent:
                result.services_absent.append("media")
            for name in ("get_profiles", "get_stream_uri", "rtsp_describe"):
                result.steps.append(Step(name, "skipped", 0.0, "no media service"))
            inventory.services_absent = list(result.services_absent)
            return inventory

        # 5. Media profiles.
        media = clients.service(onvif_lib.MEDIA, media_xaddr)
        self._begin(result, "get_profiles")
        began = time.monotonic()
        try:
            profiles = await media.GetProfiles()
        except Exception as exc:
            if self._fail(result, began, exc, absent_as="media"):
                for name in ("get_stream_uri", "rtsp_describe"):
                    result.steps.append(Step(name, "skipped", 0.0, "no media service"))
                inventory.services_absent = list(result.services_absent)
                return inventory
        inventory.media_xaddr = media_xaddr
        result.profiles = [_profile(p) for p in (profiles or [])][:32]
        inventory.profiles = list(result.profiles)
        if not result.profiles:
            self._record(result, "failed", began, "no media profiles")
            result.stream_ok, result.stream_detail = False, "the camera has no media profile"
            inventory.stream_problem = result.stream_detail
            return inventory
        self._record(
            result,
            "ok",
            began,
            "; ".join(
                f"{p.name or p.token}: {p.encoding} {p.width}x{p.height} @ {p.fps:g} fps"
                for p in result.profiles[:4]
            ),
        )
        main = result.profiles[0]
        inventory.main_token = main.token
        await self._stream_uri(media, main.token, inventory, result)
        inventory.services_absent = list(result.services_absent)
        return inventory

    async def _stream_uri(
        self, media: Any, token: str, inventory: Inventory, result: ProbeResult
    ) -> None:
        """6. The main stream's URI (the DESCRIBE follows in the caller)."""
        self._begin(result, "get_stream_uri")
        began = time.monotonic()
        try:
            uri = await media.GetStreamUri(
                StreamSetup={"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                ProfileToken=token,
            )
        except Exception as exc:
            if self._fail(result, began, exc, absent_as="stream_uri"):
                result.stream_ok, result.stream_detail = False, "GetStreamUri not supported"
                inventory.stream_problem = result.stream_detail
                return
        result.stream_uri = inventory.stream_uri = _clip(_attr(uri, "Uri"), 1000)
        self._record(result, "ok", began, _redact(result.stream_uri))

    async def _describe(self, target: Target, result: ProbeResult) -> None:
        self._begin(result, "rtsp_describe")
        began = time.monotonic()
        try:
            if _same_host(result.stream_uri, target.address):
                described = await rtsp.describe(result.stream_uri, target.username, target.password)
            else:
                # Credentials go to the camera only, never to a host its answer names.
                described = await rtsp.describe(result.stream_uri, "", "", send_auth=False)
        except TimeoutError:
            raise
        except Exception as exc:
            _kind, text = classify(exc)
            result.stream_ok, result.stream_detail = False, f"RTSP DESCRIBE: {text}"
            self._record(result, "failed", began, text)
        else:
            result.stream_ok = described.ok
            result.stream_detail = f"RTSP DESCRIBE answered {described.summary()}"
            self._record(result, "ok" if described.ok else "failed", began, described.summary())

    async def _media_xaddr(self, device: Any, result: ProbeResult) -> str | None:
        self._begin(result, "get_services")
        began = time.monotonic()
        try:
            services = await device.GetServices(IncludeCapability=False)
        except Exception as exc:
            kind, text = classify(exc)
            if kind != "absent":
                self._fail(result, began, exc)
            self._record(result, "absent", began, text)
        else:
            found = {
                _attr(s, "Namespace"): _attr(s, "XAddr")
                for s in (services or [])
                if _attr(s, "XAddr")
            }
            if found:
                self._record(result, "ok", began, f"{len(found)} services")
                return found.get(onvif_lib.MEDIA_NAMESPACE) or None
            self._record(result, "absent", began, "GetServices listed no service")
        self._begin(result, "get_capabilities")
        began = time.monotonic()
        try:
            caps = await device.GetCapabilities(Category="All")
        except Exception as exc:
            self._fail(result, began, exc)
        media = _attr(caps, "Media")
        xaddr = _attr(media, "XAddr") if media is not None else ""
        self._record(result, "ok", began, "media at " + xaddr if xaddr else "no media service")
        return xaddr or None

    async def _snapshot(self, media: Any, token: str, target: Target, result: ProbeResult) -> None:
        self._begin(result, "snapshot")
        began = time.monotonic()
        try:
            answer = await media.GetSnapshotUri(ProfileToken=token)
            uri = _attr(answer, "Uri")
            assert self._session is not None
            middlewares = (
                (aiohttp.DigestAuthMiddleware(target.username, target.password),)
                if _same_host(uri, target.address)
                else ()
            )
            async with self._session.get(uri, middlewares=middlewares) as response:
                body = await response.content.read(MAX_SNAPSHOT)
                status = response.status
                ctype = response.headers.get("Content-Type", "")
        except TimeoutError:
            raise
        except Exception as exc:
            kind, text = classify(exc)
            if kind == "absent":
                result.services_absent.append("snapshot")
                self._record(result, "absent", began, text)
                return
            result.snapshot_ok, result.snapshot_detail = False, f"snapshot: {text}"
            self._record(result, "failed", began, text)
            return
        if status == 200 and body.startswith(JPEG_MAGIC):
            result.snapshot_ok = True
            result.snapshot_detail = f"JPEG, {len(body)} bytes"
        else:
            result.snapshot_ok = False
            result.snapshot_detail = f"snapshot: HTTP {status}, {ctype or 'no type'}, not a JPEG"
        self._record(
            result, "ok" if result.snapshot_ok else "failed", began, result.snapshot_detail
        )

    # --- step bookkeeping -----------------------------------------------------------------

    @staticmethod
    def _begin(result: ProbeResult, name: str) -> None:
        result.current_step = name
        result.step_began = time.monotonic()

    @staticmethod
    def _record(result: ProbeResult, status: str, began: float, detail: str) -> None:
        result.steps.append(Step(result.current_step, status, _ms(began), _clip(detail)))

    def _fail(
        self, result: ProbeResult, began: float, exc: BaseException, absent_as: str | None = None
    ) -> bool:
        """Record a failed step. Returns True if the camera merely lacks the service
        (recorded in ``services_absent``); otherwise sets the outcome and stops."""
        kind, text = classify(exc)
        if kind == "timeout":
            raise TimeoutError from exc
        if kind == "absent" and absent_as:
            if absent_as not in result.services_absent:
                result.services_absent.append(absent_as)
            self._record(result, "absent", began, text)
            return True
        self._record(result, "failed", began, text)
        result.outcome = {"auth": "auth_failed", "unreachable": "unreachable"}.get(kind, "error")
        result.failure = f"{result.current_step}: {text}"
        raise _Stop from None


def _ms(began: float) -> float:
    return round((time.monotonic() - began) * 1000, 3)


def _attr(obj: Any, name: str) -> Any:
    """A field of a zeep object or dict, '' when absent."""
    if obj is None:
        return ""
    if isinstance(obj, dict):
        value = obj.get(name)
    else:
        try:
            value = obj[name] if hasattr(obj, "__getitem__") and not isinstance(obj, str) else None
        except (KeyError, TypeError, IndexError, AttributeError):
            value = None
        if value is None:
            value = getattr(obj, name, None)
    return "" if value is None else value


def _utc_datetime(answer: Any) -> dt.datetime | None:
    utc = _attr(answer, "UTCDateTime")
    if not utc:
        return None
    date, clock = _attr(utc, "Date"), _attr(utc, "Time")
    try:
        return dt.datetime(
            int(_attr(date, "Year")),
            int(_attr(date, "Month")),
            int(_attr(date, "Day")),
            int(_attr(clock, "Hour")),
            int(_attr(clock, "Minute")),
            int(_attr(clock, "Second")),
            tzinfo=dt.UTC,
        )
    except (TypeError, ValueError):
        return None


def _profile(p: Any) -> CameraProfile:
    enc = _attr(p, "VideoEncoderConfiguration")
    res = _attr(enc, "Resolution") if enc else ""
    rate = _attr(enc, "RateControl") if enc else ""

    def _num(value: Any) -> float:
        try:
            return max(0.0, float(value))
        except (TypeError, ValueError):
            return 0.0

    return CameraProfile(
        name=_clip(_attr(p, "Name"), 256),
        token=_clip(_attr(p, "token"), 256),
        encoding=_clip(_attr(enc, "Encoding"), 256) if enc else "",
        width=int(_num(_attr(res, "Width"))) if res else 0,
        height=int(_num(_attr(res, "Height"))) if res else 0,
        fps=_num(_attr(rate, "FrameRateLimit")) if rate else 0.0,
    )


def _same_host(url: str, address: str) -> bool:
    """Whether ``url`` points at the camera's own configured address."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    return host.lower() == address.strip("[]").lower()


def _redact(uri: str) -> str:
    """A URI without the password a camera may embed in it."""
    if "@" not in uri:
        return uri
    scheme, sep, rest = uri.partition("://")
    userinfo, _, hostpart = rest.partition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{hostpart}"
