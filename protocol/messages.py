"""Message schemas exchanged between agent and collector (protocol version 1).

Every message is a msgspec ``Struct``: decoding validates types and limits strictly, and
the error names the field that is wrong (``... - at `$.host.uptime_s```). Unknown fields
are ignored, so a newer peer may add fields; every field added after version 1.0 must
have a default, so an older peer may leave it out. ``docs/protocol.md`` describes them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import msgspec

from protocol import limits

Text = Annotated[str, msgspec.Meta(max_length=limits.MAX_TEXT)]
ShortText = Annotated[str, msgspec.Meta(max_length=256)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
NonNeg = Annotated[int, msgspec.Meta(ge=0, le=limits.MAX_INT)]
NonNegF = Annotated[float, msgspec.Meta(ge=0, le=1e15)]
"""A duration, rate or load: never negative, never absurd (1e15 s is 30 million years)."""
Timestamp = Annotated[float, msgspec.Meta(ge=0, le=limits.MAX_TIMESTAMP)]
"""Epoch seconds in years 1970 to 9999."""
Finite = Annotated[float, msgspec.Meta(ge=-1e300, le=1e300)]
"""Any finite number (a forecast may lie beyond year 9999)."""
Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
B64 = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class Message(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """Base of every message: keyword-only, defaults omitted on the wire."""


# --- enrollment and sessions -------------------------------------------------------------


class EnrollRequest(Message, kw_only=True, gc=False):
    """First contact: a one-time token and the agent's freshly made public key."""

    protocol: NonNeg
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    public_key: B64
    """Ed25519 public key, raw 32 bytes, base64."""
    hostname: ShortText
    machine_id: ShortText
    """A stable identity of the machine (systemd machine-id, else a hash of DMI data)."""
    licence_id: ShortText | None = None
    agent_version: ShortText = ""
    os: ShortText = ""


class AgentSettings(Message, kw_only=True, omit_defaults=False, gc=False):
    """What the collector tells the agent to do; sent at enrollment and with every ack."""

    report_interval_s: Annotated[int, msgspec.Meta(ge=1, le=86400)] = 60
    probe_interval_s: Annotated[int, msgspec.Meta(ge=1, le=86400)] = 60
    backup_interval_s: NonNeg = 0
    """0 = online backup not offered to this server."""
    backup_window: ShortText = ""
    """``HH:MM-HH:MM`` in the server's local time, empty = any time."""
    backup_recipients: list[Annotated[str, msgspec.Meta(max_length=200)]] = []
    """age recipients (``age1…``) every backup is encrypted to."""
    backup_recipient_list: Annotated[str, msgspec.Meta(max_length=8192)] = ""
    """The partner's signed recipient list (``vigil-recipients-v1:…``), forwarded as the
    partner gave it; an agent that pinned the partner's signing key encrypts only to
    recipients it names. Empty when the partner gave only unsigned recipients."""
    monitoring_entitled: bool = True
    backup_entitled: bool = True
    backup_streaming: bool = False
    """The collector accepts a full backup opened before its hash and size are known
    (header without them), completed with the final signed envelope: the agent may
    upload while it writes the archive. Older collectors leave it out (False)."""
    notice: Text = ""
    """Plain-words message for the installer (e.g. why backup is refused)."""
    max_clock_skew_s: Annotated[int, msgspec.Meta(ge=1)] = 300
    """How far the agent's clock may be from the collector's before its requests are
    refused (``clock_skew``); ``vigil-agent doctor`` measures against it. Older
    collectors leave it out: 300, their fixed default."""


class EnrollResponse(Message, kw_only=True, gc=False):
    protocol: NonNeg
    server_id: Id
    partner: ShortText
    settings: AgentSettings = msgspec.field(default_factory=AgentSettings)


class SessionRequest(Message, kw_only=True, gc=False):
    """Signed with the agent's Ed25519 key; opens a session keyed by X25519 agreement."""

    protocol: NonNeg
    server_id: Id
    timestamp: Timestamp
    nonce: Annotated[str, msgspec.Meta(min_length=16, max_length=64)]
    ephemeral_key: B64
    """X25519 public key, raw 32 bytes, base64."""


class SessionResponse(Message, kw_only=True, gc=False):
    protocol: NonNeg
    session_id: Id
    ephemeral_key: B64
    """The collector's X25519 public key; both sides derive the session key with HKDF."""
    expires_at: Timestamp
    server_time: Timestamp
    settings: AgentSettings = msgspec.field(default_factory=AgentSettings)


# --- health report -----------------------------------------------------------------------


class HostInfo(Message, kw_only=True, gc=False):
    hostname: ShortText
    os: ShortText = ""
    kernel: ShortText = ""
    uptime_s: NonNegF = 0.0
    cpu_percent: Percent = 0.0
    cpu_count: NonNeg = 0
    load_1m: NonNegF = 0.0
    memory_total: NonNeg = 0
    memory_used: NonNeg = 0
    memory_percent: Percent = 0.0
    agent_version: ShortText = ""
    boot_time: Timestamp = 0.0


class Volume(Message, kw_only=True, gc=False):
    mountpoint: Text
    device: Text = ""
    fstype: ShortText = ""
    total: NonNeg
    used: NonNeg
    free: NonNeg
    recording: bool = False
    """A configured recording volume (the video software writes its footage here)."""
    fill_rate_bytes_per_day: Finite | None = None
    """Growth of ``used`` per day over the agent's recent samples, None until known."""
    full_at: Finite | None = None
    """Forecast time (epoch seconds) the volume is full at the current rate; None = never."""
    error: Text = ""


DiskHealth = Literal["passed", "failing", "unknown"]


class Disk(Message, kw_only=True, gc=False):
    """One physical disk as SMART (``smartctl --json``) sees it."""

    device: ShortText
    """The device smartctl opened, e.g. ``/dev/sda`` or ``/dev/nvme0``."""
    protocol: ShortText = ""
    """``ATA``, ``NVMe`` or ``SCSI``."""
    model: ShortText = ""
    serial: ShortText = ""
    health: DiskHealth = "unknown"
    """``failing``: the disk's overall self-assessment failed, a pre-failure attribute is
    at or below its threshold now or was in the past, its reallocated, pending or
    offline-uncorrectable sector count grew, or an NVMe critical warning is set.
    ``unknown``: SMART could not be read (see ``error``)."""
    failing: Annotated[list[ShortText], msgspec.Meta(max_length=limits.MAX_DISK_ATTRIBUTES)] = []
    """What makes it failing, e.g. ``Reallocated_Sector_Ct at threshold (FAILING_NOW)``."""
    warnings: Annotated[list[ShortText], msgspec.Meta(max_length=limits.MAX_DISK_ATTRIBUTES)] = []
    """Worth a look but not failing: an old-age attribute that failed in the past, sector
    counts that have not grown."""
    temperature_c: Finite | None = None
    power_on_hours: NonNeg | None = None
    checked_at: Timestamp | None = None
    """When SMART was last read (it is read far less often than reports are sent)."""
    error: Text = ""


class Software(Message, kw_only=True, gc=False):
    product: ShortText = ""
    version: ShortText = ""
    source: ShortText = ""
    """Where the version came from: ``file``, ``command``, ``value``."""
    modules: list[ShortText] = []
    """Licensed software modules in use (for the SMA price basis)."""
    error: Text = ""


CameraVerdict = Literal["ok", "degraded", "auth_failed", "unreachable", "error", "discovered"]


class CameraProfile(Message, kw_only=True, gc=False):
    name: ShortText = ""
    token: ShortText = ""
    encoding: ShortText = ""
    width: NonNeg = 0
    height: NonNeg = 0
    fps: NonNegF = 0.0


class Camera(Message, kw_only=True, gc=False):
    """One camera's probe result, after the agent's flap damping."""

    key: Id
    """Stable key of the camera within its server (configured id, else host:port)."""
    address: ShortText
    port: Port = 80
    name: ShortText = ""
    site: ShortText = ""
    verdict: CameraVerdict
    reasons: list[Text] = []
    """Evidence for a verdict other than ``ok``, in plain words."""
    raw_verdict: CameraVerdict | None = None
    """This probe's own verdict before flap damping (differs from ``verdict`` while a
    change waits for confirmation); None from agents that do not send it."""
    raw_reasons: list[Text] = []
    """Evidence for ``raw_verdict`` when it differs from ``reasons`` (else empty)."""
    manufacturer: ShortText = ""
    model: ShortText = ""
    firmware: ShortText = ""
    serial: ShortText = ""
    hardware_id: ShortText = ""
    clock_offset_s: Finite | None = None
    latency_ms: NonNegF | None = None
    services_absent: list[ShortText] = []
    profiles: list[CameraProfile] = []
    stream_ok: bool | None = None
    snapshot_ok: bool | None = None
    error: Text = ""
    probed_at: Timestamp = 0.0
    duration_ms: NonNegF = 0.0


class Report(Message, kw_only=True, gc=False):
    """One health report. ``report_id`` makes every retry idempotent."""

    report_id: Id
    seq: NonNeg
    """Per-agent sequence number, counting from 1; a gap is a report dropped from the spool."""
    collected_at: Timestamp
    host: HostInfo
    volumes: Annotated[list[Volume], msgspec.Meta(max_length=limits.MAX_VOLUMES)] = []
    software: Software = msgspec.field(default_factory=Software)
    cameras: Annotated[list[Camera], msgspec.Meta(max_length=limits.MAX_CAMERAS)] | None = None
    """None = the agent does not probe cameras (or has not yet); [] = it has none."""
    dropped_reports: NonNeg = 0
    """Reports the agent dropped from a full spool since it started counting."""
    cameras_digest: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    """``protocol.camera_digest.cameras_digest`` of ``cameras``: lets the collector skip
    unchanged inventories without hashing them itself."""
    cameras_unchanged: bool = False
    """``cameras`` is left out because the inventory's digest (``cameras_digest``) is the
    one the collector acknowledged last (``ReportAck.cameras_digest``): a steady report
    is a few KiB whatever the number of cameras."""
    disks: Annotated[list[Disk], msgspec.Meta(max_length=limits.MAX_DISKS)] | None = None
    """None = the agent does not read SMART (not configured, or no smartctl)."""
    firmware_check: bool = False
    """The agent's ``[cameras] firmware_check``: only then does the collector mark a camera
    whose firmware is older than the newest its partner's servers report for the model."""


class ReportBatch(Message, kw_only=True, gc=False):
    protocol: NonNeg
    reports: Annotated[
        list[Report], msgspec.Meta(min_length=1, max_length=limits.MAX_BATCH_REPORTS)
    ]


class ReportAck(Message, kw_only=True, gc=False):
    accepted: list[Id] = []
    duplicates: list[Id] = []
    settings: AgentSettings = msgspec.field(default_factory=AgentSettings)
    cameras_digest: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    """The camera digest the collector holds for this server after the batch (None:
    none, or unknown): the agent may leave out an inventory with this digest."""


class ErrorBody(Message, kw_only=True, gc=False):
    """Every 4xx/5xx body from the collector."""

    error: ShortText
    """Machine-readable reason, e.g. ``invalid_field``, ``unauthenticated``, ``too_large``."""
    message: Text
    field: ShortText | None = None


_decoders: dict[type, msgspec.json.Decoder[Any]] = {}
_encoder = msgspec.json.Encoder()


T = TypeVar("T")


def decode(data: bytes, type_: type[T]) -> T:
    """Decode and validate JSON ``data`` as ``type_`` (raises ``msgspec.ValidationError``
    or ``msgspec.DecodeError``, also for JSON nested more deeply than any message is)."""
    dec = _decoders.get(type_)
    if dec is None:
        dec = _decoders[type_] = msgspec.json.Decoder(type_)
    try:
        value: T = dec.decode(data)
        return value
    except RecursionError:
        # msgspec descends into unknown fields too; a few thousand nested brackets
        # exhaust the interpreter's recursion limit. That is malformed input, not a crash.
        raise msgspec.DecodeError("JSON is malformed: nested too deeply") from None


def encode(msg: object) -> bytes:
    """Encode a message (or any msgspec-encodable value) as compact JSON."""
    return _encoder.encode(msg)


def to_builtins(msg: object) -> object:
    """Plain dicts and lists, e.g. for storing a sub-structure as JSON."""
    return msgspec.to_builtins(msg)


def error_field(exc: msgspec.ValidationError) -> str | None:
    """The JSON path msgspec names in a validation error, e.g. ``$.host.uptime_s``."""
    text = str(exc)
    marker = " - at `"
    if marker in text:
        return text.rsplit(marker, 1)[1].rstrip("`")
    return None
