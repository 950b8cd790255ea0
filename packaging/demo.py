"""``make demo``: the whole system on one machine with embedded defaults.

Starts a collector (SQLite, local backup directory) on 127.0.0.1, a partner with an API
key, simulated ONVIF cameras (some healthy, some not), and an agent enrolled with a
one-time token that probes them and backs up a small configuration tree. Prints the URL
of the fleet view and the API key; Ctrl-C stops everything in order.

Uses only the installed commands (vigil-collector, vigil-agent, vigil-sim, vigil-backup),
as an installer would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from demo_notify import Receivers

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("VIGIL_DEMO_DATA") or ROOT / "demo-data").resolve()
BIN = Path(sys.executable).parent
FAULTS = "1:clock=3600,2:wrong_password,3:stream_down,4:offline"
CAMERAS = 8


def free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port")


def run(*args: str) -> str:
    out = subprocess.run(
        [str(BIN / args[0]), *args[1:]], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        sys.exit(f"demo: {' '.join(args)} failed:\n{out.stderr}")
    return out.stdout


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1].strip()


def wait_http(url: str, seconds: float = 20) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"demo: {url} did not answer within {seconds:.0f} s")


def running_demo() -> int | None:
    """The pid of a demo still running on ``demo-data/``, if there is one."""
    try:
        pid = int((DATA / "demo.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid if pid != os.getpid() else None


def _interrupted(*_: object) -> None:
    raise KeyboardInterrupt


def take_stop_signals() -> None:
    """Ctrl-C (SIGINT) and SIGTERM stop the demo in order, whatever it inherited: a shell
    or test runner may start it with SIGINT ignored or blocked, and the processes it starts
    inherit both, so a Ctrl-C would then stop nothing. A handler of its own (reset to the
    default in its children at exec) and an unblocked mask (inherited by them) undo that."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupted)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def main() -> int:
    other = running_demo()
    if other is not None:
        print(
            f"demo: a demo is already running (pid {other}) on {DATA}; it was left alone.\n"
            f"      Stop it with Ctrl-C in its terminal (or kill {other}), then run it again.",
            file=sys.stderr,
        )
        return 1
    if DATA.exists():
        shutil.rmtree(DATA)
    (DATA / "logs").mkdir(parents=True)
    (DATA / "demo.pid").write_text(f"{os.getpid()}\n")
    port = free_port(8700)
    url = f"http://127.0.0.1:{port}"
    # The demo's receivers listen on 127.0.0.1: the collector may send there (a production
    # collector sends to public addresses only unless told otherwise).
    (DATA / "collector.toml").write_text("[notify]\nallow_private_targets = true\n")
    coll = ["--data", str(DATA / "collector"), "--config", str(DATA / "collector.toml")]
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    closers: list[Any] = []

    def start(name: str, *args: str, stdout: int | None = None) -> subprocess.Popen[bytes]:
        log = open(DATA / "logs" / f"{name}.log", "wb")
        p = subprocess.Popen([str(BIN / args[0]), *args[1:]], stdout=stdout or log, stderr=log)
        procs.append((name, p))
        return p

    def stop_all(*_: object) -> None:
        """Stop in order: agent, cameras, collector (each gets SIGTERM, then 15 s)."""
        # A Ctrl-C in the terminal reached every process at once: three seconds in all
        # to finish that before the SIGTERMs (not three for each process).
        grace_ends = time.monotonic() + 3
        for name, p in reversed(procs):
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.0, grace_ends - time.monotonic()))
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            print(f"stopped {name} (exit {p.returncode})")

    take_stop_signals()
    try:
        start("collector", "vigil-collector", "serve", *coll, "--listen", f"127.0.0.1:{port}")
        wait_http(url + "/healthz")
        run("vigil-collector", "partner", "add", "demo-partner", *coll)
        api_key = last_line(
            run("vigil-collector", "apikey", "create", "--partner", "demo-partner", *coll)
        )
        token = last_line(
            run("vigil-collector", "token", "create", "--partner", "demo-partner", *coll)
        )
        run("vigil-collector", "server", "interval", "--partner", "demo-partner", "15s", *coll)
        # The partner's recovery key is made offline; the collector gets the public half only.
        recovery_key = DATA / "partner" / "recovery.key"
        recovery_key.parent.mkdir()
        recipient = last_line(run("vigil-backup", "keygen", "--out", str(recovery_key)))
        signer = last_line(run("vigil-backup", "signer", "--identity", str(recovery_key)))
        # The recipient list is signed by the partner's offline key; the agent pins that key
        # at enrollment, so the collector cannot add a recipient of its own.
        signed = last_line(
            run("vigil-backup", "sign-recipients", "--identity", str(recovery_key), recipient)
        )
        run("vigil-collector", "recovery-key", "add", "--partner", "demo-partner", signed, *coll)
        # The server's maintenance contract, as an ERP would export it.
        contracts = DATA / "partner" / "contracts.csv"
        contracts.write_text(
            "contract_id,customer,partner,plan,licence_ids,start,term_months,country\n"
            f"DEMO-MS-1,Demo Museum,demo-partner,maintenance-support,DEMO-0001,"
            f"{time.strftime('%Y-%m-%d')},12,DE\n"
        )
        run("vigil-collector", "contracts", "import", str(contracts), *coll)
        # Notifications go to a webhook receiver and a mail catcher the demo runs itself.
        receivers = Receivers(DATA / "notifications")
        closers.append(receivers.close)
        hook = last_line(
            run(
                "vigil-collector",
                "channel",
                "add",
                "--partner",
                "demo-partner",
                "--type",
                "webhook",
                "--name",
                "demo webhook",
                "--url",
                receivers.webhook_url,
                *coll,
            )
        )
        run(
            "vigil-collector",
            "route",
            "add",
            "--partner",
            "demo-partner",
            "--channel",
            hook,
            "--group-wait",
            "10s",
            *coll,
        )
        if receivers.smtp_port is not None:
            mail = last_line(
                run(
                    "vigil-collector",
                    "channel",
                    "add",
                    "--partner",
                    "demo-partner",
                    "--type",
                    "smtp",
                    "--name",
                    "demo mail",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(receivers.smtp_port),
                    "--security",
                    "none",
                    "--from",
                    "vigil@demo.invalid",
                    "--to",
                    "desk@demo.invalid",
                    *coll,
                )
            )
            run(
                "vigil-collector",
                "route",
                "add",
                "--partner",
                "demo-partner",
                "--channel",
                mail,
                "--group-wait",
                "10s",
                *coll,
            )

        sim = start(
            "cameras",
            "vigil-sim",
            "cameras",
            "--count",
            str(CAMERAS),
            "--faults",
            FAULTS,
            "--json",
            stdout=subprocess.PIPE,
        )
        assert sim.stdout is not None
        fleet = json.loads(sim.stdout.readline())
        agent_dir = DATA / "agent"
        agent_dir.mkdir()
        creds = agent_dir / "camera-credentials.toml"
        first = fleet["cameras"][0]
        creds.write_text(
            f'[default]\nusername = "{first["username"]}"\npassword = "{first["password"]}"\n'
        )
        os.chmod(creds, 0o600)
        etc = agent_dir / "etc"
        etc.mkdir()
        (etc / "recorder.conf").write_text("[recording]\nretention_days = 30\n")
        (etc / "cameras.xml").write_text("<cameras><camera id='1'/></cameras>\n")
        devices = "".join(
            f'\n[[cameras.device]]\naddress = "{c["host"]}"\nport = {c["port"]}\n'
            f'name = "Camera {c["index"] + 1}"\nsite = "Demo site"\n'
            for c in fleet["cameras"]
        )
        config = agent_dir / "agent.toml"
        config.write_text(
            f'[agent]\nstate_dir = "{agent_dir / "state"}"\nlicence_id = "DEMO-0001"\n\n'
            f'[software]\nproduct = "Demo VMS"\nversion = "2026.2.1"\nmodules = ["base", "lpr"]\n\n'
            f'[report]\nrecording_volumes = ["{DATA}"]\n\n'
            f'[backup]\npaths = ["{etc}"]\n\n'
            f'[cameras]\ncredentials_file = "{creds}"\ntimeout_s = 5\n{devices}'
        )
        run(
            "vigil-agent",
            "enroll",
            "--collector",
            url,
            "--token",
            token,
            "--recovery-signer",
            signer,
            "--config",
            str(config),
        )
        run("vigil-agent", "backup", "--now", "--config", str(config))
        server_id = json.loads((agent_dir / "state" / "identity.json").read_text())["server_id"]
        start("agent", "vigil-agent", "run", "--config", str(config), "--report-now")

        print()
        print("Vigil demo is running.")
        print(f"  Fleet view:  {url}/   (sign in with the API key)")
        print(f"  API key:     {api_key}")
        print(f"  API:         curl -H 'Authorization: Bearer {api_key}' {url}/api/v1/servers")
        print(f"  Agent:       {BIN}/vigil-agent status --config {config}")
        print(
            f"  Restore:     VIGIL_COLLECTOR={url} VIGIL_API_KEY={api_key} {BIN}/vigil-backup "
            f"restore --server {server_id} --identity {recovery_key} --to /tmp/restored"
        )
        print(f"  Logs:        {DATA / 'logs'}")
        print(f"  Data:        {DATA / 'collector'}")
        print(f"  Admin:       {BIN}/vigil-collector servers --data {DATA / 'collector'}")
        print(f"  Cameras:     {CAMERAS} simulated, faults {FAULTS}")
        print(f"  Webhooks:    {receivers.webhooks} (received, one JSON line each)")
        if receivers.smtp_port is not None:
            print(
                f"  Mail:        {receivers.mail_dir}/*.eml "
                f"(SMTP on 127.0.0.1:{receivers.smtp_port})"
            )
        print("Press Ctrl-C to stop.", flush=True)
        while all(p.poll() is None for _, p in procs):
            time.sleep(0.5)
        dead = [name for name, p in procs if p.poll() is not None]
        print(f"demo: {', '.join(dead)} exited; see {DATA / 'logs'}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping the demo")
        return 0
    finally:
        stop_all()
        for close in closers:
            close()
        with contextlib.suppress(OSError):
            (DATA / "demo.pid").unlink()


if __name__ == "__main__":
    sys.exit(main())
