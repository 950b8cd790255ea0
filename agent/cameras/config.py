"""The agent's ``[cameras]`` table, and the credentials file it refers to.

```toml
[cameras]
credentials_file = "camera-credentials.toml"   # relative to the agent's config file
concurrency = 32          # cameras probed at once
timeout_s = 10            # total time one camera may take, all steps together
clock_threshold_s = 5     # clock offset above which a camera is degraded
flap_threshold = 2        # same result on N probes in a row before a verdict changes
snapshot = false          # also fetch a JPEG snapshot
inventory_every = 10      # re-read services, profiles and stream URI every N probes
                          # (always when the device or its stream changed)
firmware_check = false    # compare firmware between cameras of this server (reported, so
                          # the collector compares with the partner's other servers too)
discovery = false         # WS-Discovery: report cameras that answer but are not configured
discovery_interfaces = ["eth0"]   # where to send the multicast Probe (names or IPv4)
discovery_targets = []    # extra unicast targets, "host:port"
discovery_timeout_s = 3

[[cameras.device]]
address = "10.0.0.7"
port = 80                 # default 80
credentials = "default"   # a table of the credentials file; default "default"
name = "Entrance"         # optional
site = "Building A"       # optional
id = "entrance"           # optional stable key; default "address:port"
```

The credentials file is TOML too, one table per reference, and must be readable by the
agent's user only (mode 0600 or 0400)::

    [default]
    username = "admin"
    password = "..."
"""

from __future__ import annotations

import ipaddress
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import platform


class CameraConfigError(ValueError):
    """A ``[cameras]`` setting that is wrong: which key, and what is expected there."""

    def __init__(self, key: str, expected: str, source: str = "", got: object = None) -> None:
        self.key = key
        self.expected = expected
        self.source = source
        self.got = got
        where = f"{source}: " if source else ""
        tail = f" (got {got!r})" if got is not None else ""
        super().__init__(f"{where}{key}: expected {expected}{tail}")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class CameraDevice:
    key: str
    address: str
    port: int = 80
    credentials_ref: str = "default"
    credentials: Credentials = field(default_factory=lambda: Credentials("", ""), repr=False)
    name: str = ""
    site: str = ""


@dataclass(frozen=True)
class DiscoverySettings:
    enabled: bool = False
    interfaces: tuple[str, ...] = ()
    targets: tuple[tuple[str, int], ...] = ()
    timeout_s: float = 3.0


@dataclass(frozen=True)
class CameraSettings:
    devices: tuple[CameraDevice, ...] = ()
    concurrency: int = 32
    timeout_s: float = 10.0
    clock_threshold_s: float = 5.0
    flap_threshold: int = 2
    snapshot: bool = False
    inventory_every: int = 10
    firmware_check: bool = False
    credentials_file: Path | None = None
    discovery: DiscoverySettings = field(default_factory=DiscoverySettings)


_TOP_KEYS = {
    "credentials_file",
    "concurrency",
    "timeout_s",
    "clock_threshold_s",
    "flap_threshold",
    "snapshot",
    "inventory_every",
    "firmware_check",
    "discovery",
    "discovery_interfaces",
    "discovery_targets",
    "discovery_timeout_s",
    "device",
}
_DEVICE_KEYS = {"address", "port", "credentials", "name", "site", "id"}
_KEY_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]")
_HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*$")


def parse_camera_config(table: dict[str, Any], source: str) -> CameraSettings:
    """Validate the ``[cameras]`` table of the agent configuration read from ``source``
    (a path; a relative ``credentials_file`` is taken from its folder) and read the
    credentials file. Raises :class:`CameraConfigError` naming the key at fault."""
    if not isinstance(table, dict):
        raise CameraConfigError("cameras", "a table", source)
    for key in table:
        if key not in _TOP_KEYS:
            raise CameraConfigError(
                f"cameras.{key}", "one of " + ", ".join(sorted(_TOP_KEYS)), source
            )
    concurrency = _int(table, "concurrency", 32, 1, 1024, source)
    timeout_s = _number(table, "timeout_s", 10.0, 0.1, 300, source)
    clock = _number(table, "clock_threshold_s", 5.0, 0, 86400, source)
    flap = _int(table, "flap_threshold", 2, 1, 100, source)
    snapshot = _bool(table, "snapshot", False, source)
    inventory_every = _int(table, "inventory_every", 10, 1, 10000, source)
    firmware_check = _bool(table, "firmware_check", False, source)
    discovery = _discovery(table, source)

    raw_devices = table.get("device", [])
    if not isinstance(raw_devices, list) or not all(isinstance(d, dict) for d in raw_devices):
        raise CameraConfigError("cameras.device", "an array of tables ([[cameras.device]])", source)

    cred_path = _credentials_path(table, source)
    credentials = load_credentials(cred_path, source) if (cred_path and raw_devices) else {}

    devices = _devices(raw_devices, cred_path, credentials, source)
    return CameraSettings(
        devices=devices,
        concurrency=concurrency,
        timeout_s=timeout_s,
        clock_threshold_s=clock,
        flap_threshold=flap,
        snapshot=snapshot,
        inventory_every=inventory_every,
        firmware_check=firmware_check,
        credentials_file=cred_path,
        discovery=discovery,
    )


def _devices(
    raw_devices: list[dict[str, Any]],
    cred_path: Path | None,
    credentials: dict[str, Credentials],
    source: str,
) -> tuple[CameraDevice, ...]:
    """Each ``[[cameras.device]]``; no address:port and no key twice."""
    devices: list[CameraDevice] = []
    seen_keys: dict[str, int] = {}
    seen_addr: dict[tuple[str, int], int] = {}
    for i, raw in enumerate(raw_devices):
        where = f"cameras.device[{i}]"
        device = _device(raw, where, cred_path, credentials, source)
        address, port, key = device.address, device.port, device.key
        if (address, port) in seen_addr:
            raise CameraConfigError(
                f"{where}.address",
                "an address:port not already configured by "
                f"cameras.device[{seen_addr[(address, port)]}]",
                source,
                f"{address}:{port}",
            )
        if key in seen_keys:
            raise CameraConfigError(
                f"{where}.id",
                f"a key not already used by cameras.device[{seen_keys[key]}]",
                source,
                key,
            )
        seen_keys[key] = seen_addr[(address, port)] = i
        devices.append(device)
    return tuple(devices)


def _discovery(table: dict[str, Any], source: str) -> DiscoverySettings:
    discovery = DiscoverySettings(
        enabled=_bool(table, "discovery", False, source),
        interfaces=tuple(_strings(table, "discovery_interfaces", source)),
        targets=tuple(
            _hostport(t, f"cameras.discovery_targets[{i}]", 3702, source)
            for i, t in enumerate(_strings(table, "discovery_targets", source))
        ),
        timeout_s=_number(table, "discovery_timeout_s", 3.0, 0.1, 60, source),
    )
    if discovery.enabled and not (discovery.interfaces or discovery.targets):
        raise CameraConfigError(
            "cameras.discovery_interfaces",
            "at least one interface (or discovery_targets) when discovery = true",
            source,
        )
    return discovery


def _credentials_path(table: dict[str, Any], source: str) -> Path | None:
    """``credentials_file``, a relative one taken from the configuration's folder."""
    if "credentials_file" not in table:
        return None
    value = table["credentials_file"]
    if not isinstance(value, str) or not value:
        raise CameraConfigError("cameras.credentials_file", "a path (string)", source, value)
    cred_path = Path(value).expanduser()
    if not cred_path.is_absolute():
        base = Path(source).parent if source and not source.startswith("<") else Path.cwd()
        cred_path = base / cred_path
    return cred_path


# Longer than 60 lines: one check per key, in the order its errors are reported.
def _known_keys(raw: dict[str, Any], where: str, source: str) -> None:
    """A device table names only known keys, and never a credential (those live in the
    credentials file, named by ``credentials``)."""
    for key in raw:
        if key in ("username", "password", "user"):
            raise CameraConfigError(
                f"{where}.{key}",
                "no credentials here: put them in the credentials file and name its "
                'table with `credentials = "NAME"`',
                source,
            )
        if key not in _DEVICE_KEYS:
            raise CameraConfigError(
                f"{where}.{key}", "one of " + ", ".join(sorted(_DEVICE_KEYS)), source
            )


def _credentials_ref(
    raw: dict[str, Any],
    where: str,
    cred_path: Path | None,
    credentials: dict[str, Credentials],
    source: str,
) -> str:
    """The device's ``credentials`` name, which must be a table of the credentials file."""
    ref = raw.get("credentials", "default")
    if not isinstance(ref, str) or not ref:
        raise CameraConfigError(
            f"{where}.credentials", "the name of a credentials table", source, ref
        )
    if cred_path is None:
        raise CameraConfigError(
            "cameras.credentials_file",
            "the path of the camera credentials file (cameras are configured)",
            source,
        )
    if ref not in credentials:
        known = ", ".join(sorted(credentials)) or "none"
        raise CameraConfigError(
            f"{where}.credentials",
            f"a table of {cred_path} (it has: {known})",
            source,
            ref,
        )
    return ref


def _device(
    raw: dict[str, Any],
    where: str,
    cred_path: Path | None,
    credentials: dict[str, Credentials],
    source: str,
) -> CameraDevice:
    """One ``[[cameras.device]]`` table (duplicates among them are the caller's check)."""
    _known_keys(raw, where, source)
    address = raw.get("address")
    if not isinstance(address, str) or not _valid_host(address):
        raise CameraConfigError(f"{where}.address", "an IP address or host name", source, address)
    port = raw.get("port", 80)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise CameraConfigError(f"{where}.port", "an integer 1-65535", source, port)
    ref = _credentials_ref(raw, where, cred_path, credentials, source)
    name, site = raw.get("name", ""), raw.get("site", "")
    for k, v in (("name", name), ("site", site)):
        if not isinstance(v, str) or len(v) > 256:
            raise CameraConfigError(f"{where}.{k}", "a string of at most 256 characters", source, v)
    key = raw.get("id") or _KEY_UNSAFE.sub("_", f"{address}:{port}")
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise CameraConfigError(
            f"{where}.id",
            "1-128 characters of letters, digits, '.', '_', ':', '-'",
            source,
            key,
        )
    return CameraDevice(
        key=key,
        address=address,
        port=port,
        credentials_ref=ref,
        credentials=credentials[ref],
        name=name,
        site=site,
    )


def load_credentials(path: Path, source: str = "") -> dict[str, Credentials]:
    """Read the credentials file; refuse it unless only its owner can read or write it."""
    key = "cameras.credentials_file"
    try:
        st = path.stat()
    except FileNotFoundError:
        raise CameraConfigError(key, f"an existing file ({path} does not exist)", source) from None
    except OSError as exc:
        raise CameraConfigError(key, f"a readable file ({path}: {exc.strerror})", source) from None
    if not stat.S_ISREG(st.st_mode):
        raise CameraConfigError(key, f"a regular file ({path} is not one)", source)
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise CameraConfigError(
            key,
            f"a file only the agent's user can read: {path} has mode {mode:04o}, "
            f"readable or writable by group/others; run `chmod 600 {path}`",
            source,
        )
    if not platform.owned_by_me(st):
        raise CameraConfigError(
            key,
            f"a file owned by the agent's user ({platform.current_user()}); {path} is owned "
            f"by {platform.owner_of(st)}; run `chown` on it",
            source,
        )
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise CameraConfigError(key, f"a readable file ({path}: {exc.strerror})", source) from None
    except tomllib.TOMLDecodeError as exc:
        raise CameraConfigError(key, f"a TOML file ({path}: {exc})", source) from None
    out: dict[str, Credentials] = {}
    for name, entry in data.items():
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("username"), str)
            or not isinstance(entry.get("password"), str)
        ):
            raise CameraConfigError(
                f"{path}: [{name}]", "a table with username and password strings", source
            )
        out[name] = Credentials(entry["username"], entry["password"])
    return out


def _valid_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return bool(_HOST_RE.match(value))


def _hostport(value: str, key: str, default_port: int, source: str) -> tuple[str, int]:
    host, sep, port_text = value.rpartition(":")
    if not sep:
        host, port_text = value, str(default_port)
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not _valid_host(host) or not 1 <= port <= 65535:
        raise CameraConfigError(key, "HOST:PORT (e.g. 127.0.0.1:3702)", source, value)
    return host, port


def _int(table: dict[str, Any], key: str, default: int, low: int, high: int, source: str) -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise CameraConfigError(f"cameras.{key}", f"an integer {low}-{high}", source, value)
    return value


def _number(
    table: dict[str, Any], key: str, default: float, low: float, high: float, source: str
) -> float:
    value = table.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise CameraConfigError(
            f"cameras.{key}", f"a number of seconds {low:g}-{high:g}", source, value
        )
    return float(value)


def _bool(table: dict[str, Any], key: str, default: bool, source: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise CameraConfigError(f"cameras.{key}", "true or false", source, value)
    return value


def _strings(table: dict[str, Any], key: str, source: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise CameraConfigError(f"cameras.{key}", "an array of strings", source, value)
    return value
