"""``vigil-agent probe onvif://USER:PASS@HOST:PORT [--json]``: the installer's tool on site.

Probes one camera with every step (the snapshot included), prints each step with its
result and timing, then the verdict. Exit code: 0 ok, 1 degraded, 2 auth_failed,
unreachable or error, 64 a URL that cannot be understood.
"""

from __future__ import annotations

import json
import sys
from typing import TextIO
from urllib.parse import unquote, urlsplit

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
    if parts.username is None:
        raise ProbeUrlError("no user in the URL (expected onvif://USER:PASS@HOST:PORT)")
    host = parts.hostname
    return Target(
        key=f"{host}:{port}",
        address=host,
        port=port,
        username=unquote(parts.username),
        password=unquote(parts.password or ""),
    )


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
    timeout: float = 10,  # noqa: ASYNC109 (the lead's signature; a per-camera budget)
    *,
    snapshot: bool = True,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Probe the camera at ``url``, print every step (text or JSON) and return the exit
    code (0 ok, 1 degraded, 2 auth_failed/unreachable/error, 64 bad URL)."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        target = parse_probe_url(url)
    except ProbeUrlError as exc:
        print(f"vigil-agent probe: {exc}", file=err)
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
