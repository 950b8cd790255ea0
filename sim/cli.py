"""``vigil-sim``: simulated ONVIF cameras for the demo and the tests.

    vigil-sim cameras --count N [--base-port P] [--faults SPEC] [--json]

prints the cameras it serves (one JSON document on one line with ``--json``), then runs
until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from sim.faults import FAULT_MODES, FaultSpecError, parse_faults
from sim.fleet import DEFAULT_PASSWORD, DEFAULT_USERNAME, SimulatedFleet


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vigil-sim", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cams = sub.add_parser(
        "cameras",
        help="serve simulated ONVIF cameras on 127.0.0.1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="fault modes (--faults INDEXES:MODE[=VALUE],...; INDEXES = 3, 2-5 or *):\n"
        + "\n".join(f"  {mode:15} {text}" for mode, text in FAULT_MODES.items()),
    )
    cams.add_argument("--count", type=int, required=True, help="number of cameras")
    cams.add_argument(
        "--base-port",
        type=int,
        default=None,
        help="HTTP of camera i on P+i, RTSP on P+N+i (default: free ports)",
    )
    cams.add_argument("--faults", default="", help="e.g. 0:offline,1:clock=3600,2-3:slow=4")
    cams.add_argument("--username", default=DEFAULT_USERNAME)
    cams.add_argument("--password", default=DEFAULT_PASSWORD)
    cams.add_argument(
        "--discovery-port",
        type=int,
        default=None,
        help="answer WS-Discovery Probes sent to this UDP port of 127.0.0.1 (0 = any)",
    )
    cams.add_argument("--json", action="store_true", help="print the cameras as JSON")
    cams.add_argument(
        "--write-agent-config",
        metavar="FILE",
        default=None,
        help="write a [cameras] table for these cameras to FILE (append it to agent.toml) "
        "and the credentials file it names beside it (mode 0600)",
    )
    return parser


def _print_fleet(fleet: SimulatedFleet, as_json: bool) -> None:
    if as_json:
        doc = {
            "host": fleet.host,
            "discovery_port": fleet.discovery_port,
            "cameras": [camera.describe() for camera in fleet.cameras],
        }
        print(json.dumps(doc), flush=True)
        return
    print(f"{len(fleet.cameras)} simulated cameras on {fleet.host}")
    print(f"{'#':>4} {'address':21} {'rtsp':>5}  {'credentials':22} {'model':28} faults")
    for cam in fleet.cameras:
        creds = f"{cam.username}:{cam.password}"
        model = f"{cam.identity.manufacturer} {cam.identity.model}"
        print(
            f"{cam.index:>4} {cam.address:21} {cam.rtsp_port:>5}  {creds:22} {model[:28]:28} "
            f"{','.join(cam.faults.names()) or '-'}"
        )
    if fleet.discovery_port is not None:
        print(f"WS-Discovery responder on udp {fleet.host}:{fleet.discovery_port}")
    print("running; Ctrl-C to stop", flush=True)


def _toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string


def write_agent_config(fleet: SimulatedFleet, path: Path) -> None:
    """A ``[cameras]`` table naming every simulated camera, and its credentials file."""
    cred = path.with_name("camera-credentials.toml")
    first = fleet.cameras[0] if fleet.cameras else None
    username = first.username if first else DEFAULT_USERNAME
    password = first.password if first else DEFAULT_PASSWORD
    fd = os.open(cred, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"[default]\nusername = {_toml_string(username)}\n")
        fh.write(f"password = {_toml_string(password)}\n")
    os.chmod(cred, 0o600)
    lines = ["[cameras]", f"credentials_file = {_toml_string(str(cred.resolve()))}", ""]
    for cam in fleet.cameras:
        name = f"{cam.identity.manufacturer} {cam.identity.model} #{cam.index}"
        lines += [
            "[[cameras.device]]",
            f"address = {_toml_string(cam.host)}",
            f"port = {cam.port}",
            f"id = {_toml_string(f'sim-{cam.index}')}",
            f"name = {_toml_string(name)}",
            'site = "simulated"',
            "",
        ]
    path.write_text("\n".join(lines))


async def _serve(args: argparse.Namespace) -> int:
    plan = parse_faults(args.faults, args.count)
    fleet = SimulatedFleet(
        args.count,
        plan,
        base_port=args.base_port,
        username=args.username,
        password=args.password,
        discovery=args.discovery_port is not None,
        discovery_port=args.discovery_port or 0,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with fleet:
        if args.write_agent_config:
            write_agent_config(fleet, Path(args.write_agent_config))
        _print_fleet(fleet, args.json)
        await stop.wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.count < 0:
        print("vigil-sim: --count must be >= 0", file=sys.stderr)
        return 2
    try:
        parse_faults(args.faults, args.count)
    except FaultSpecError as exc:
        print(f"vigil-sim: --faults: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(args))
    except OSError as exc:
        print(f"vigil-sim: cannot listen: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
