"""``vigil-agent probe onvif://USER:PASS@HOST:PORT [--json]``: the installer's tool on site.

Probes one camera with every step (the snapshot included), prints each step with its
result and timing, then the verdict. Exit code: 0 ok, 1 degraded, 2 auth_failed,
unreachable or error, 64 a URL that cannot be understood.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import TextIO
from urllib.parse import unquote, urlsplit

from agent.cameras.config import CameraConfigError, CameraSettings, load_credentials
from agent.cameras.probe import Prober, ProbeResult, Target
from agent.cameras.verdict import judge
from protocol import messages

EXIT_OK, EXIT_DEGRADED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2, 64
CLOCK_THRESHOLD_S = 5.0


class ProbeUrlError(ValueError):
    pass


def parse_probe_url(url: str) -> Target:
    """``onvif://USER:PASS@HOST[:PORT]`` (port 80 by default; user and password may be
    percent-encoded) as a probe target."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("onvif", "http"):
        raise ProbeUrlError("expected onvif://USER:PASS@HOST:PORT")
    try:
        port = parts.port or 80
    except ValueError:
        raise ProbeUrlError("the port must be a number 1-65535") from None
    if not parts.hostname:
        raise ProbeUrlError("no host in the URL (expected onvif://USER:PASS@HOST:PORT)")
    host = parts.hostname
    return Target(
        key=f"{host}:{port}",
        address=host,
        port=port,
        username=unquote(parts.username) if parts.username is not None else "",
        password=unquote(parts.password or ""),
    )


def with_configured_credentials(target: Target, settings: CameraSettings | None) -> Target:
    """``target`` with the credentials the agent's configuration gives its camera.

    A URL without a user takes the credentials of the configured device at the same
    address and port, else the credentials file's ``default`` table; a URL with a user
    keeps its own.
    """
    if target.username or settings is None:
        return target
    for device in settings.devices:
        if device.address == target.address and device.port == target.port:
            creds = device.credentials
            return replace(
                target,
                username=creds.username,
                password=creds.password,
                name=device.name,
                site=device.site,
            )
    if settings.credentials_file is not None:
        default = load_credentials(settings.credentials_file).get("default")
        if default is not None:
            return replace(target, username=default.username, password=default.password)
    return target


def _exit_code(verdict: str) -> int:
    return {"ok": EXIT_OK, "degraded": EXIT_DEGRADED}.get(verdict, EXIT_FAILED)


def result_document(result: ProbeResult, verdict: str, reasons: list[str]) -> dict:
    from agent.cameras.monitor import camera_message

    camera = camera_message(result, verdict, reasons, verdict, reasons)
    return {
        "target": f"{result.target.address}:{result.target.port}",
        "verdict": verdict,
        "reasons": reasons,
        "duration_ms": round(result.duration_ms, 1),
        "steps": [
            {"name": s.name, "status": s.status, "ms": round(s.ms, 1), "detail": s.detail}
            for s in result.steps
        ],
        "camera": messages.to_builtins(camera),
    }


def print_human(result: ProbeResult, verdict: str, reasons: list[str], out: TextIO) -> None:
    target = result.target
    print(f"probing {target.address}:{target.port} as {target.username}", file=out)
    for step in result.steps:
        print(f"  {step.name:26} {step.status:8} {step.ms:9.1f} ms  {step.detail}", file=out)
    print(f"verdict: {verdict} ({result.duration_ms:.0f} ms)", file=out)
    for reason in reasons:
        print(f"  - {reason}", file=out)
    if result.profiles:
        print(f"profiles: {len(result.profiles)}", file=out)
    if result.services_absent:
        print(f"services absent: {', '.join(result.services_absent)}", file=out)


async def run_probe(
    url: str,
    as_json: bool,
    timeout: float = 10,  # noqa: ASYNC109 (a per-camera budget, not a deadline)
    *,
    snapshot: bool = True,
    settings: CameraSettings | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Probe the camera at ``url``, print every step (text or JSON) and return the exit
    code (0 ok, 1 degraded, 2 auth_failed/unreachable/error, 64 bad URL).

    ``settings`` (the agent's ``[cameras]`` table) supplies credentials when the URL has
    none."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        target = with_configured_credentials(parse_probe_url(url), settings)
    except (ProbeUrlError, CameraConfigError) as exc:
        print(f"vigil-agent probe: {exc}", file=err)
        return EXIT_USAGE
    if not target.username:
        print(
            "vigil-agent probe: no user in the URL and no credentials for this camera in the "
            "configuration (expected onvif://USER:PASS@HOST:PORT, or --config FILE naming it)",
            file=err,
        )
        return EXIT_USAGE
    prober = Prober(timeout_s=timeout, snapshot=snapshot)
    try:
        result = await prober.probe(target)
    finally:
        await prober.close()
    verdict, reasons = judge(result, CLOCK_THRESHOLD_S)
    if as_json:
        print(json.dumps(result_document(result, verdict, reasons), indent=2), file=out)
    else:
        print_human(result, verdict, reasons, out)
    return _exit_code(verdict)
