"""Real processes on 127.0.0.1: ``vigil-collector serve`` with its own data directory and
CLI, ``vigil-agent`` with its own state directory and configuration file.

A test's setup (partners, keys, tokens, users, an agent's enrollment: what it needs
before its subject) runs the commands through the CLIs' own ``main`` in the test's process
(:meth:`Collector.admin`, :meth:`Agent.enroll`): the same parser, code, files and database
as a ``vigil-collector`` or ``vigil-agent`` process, without the third of a second of CPU
each Python start costs. What a test examines of a command itself (its output, exit
status, errors) it runs as a process (:meth:`Collector.cli`, :meth:`Agent.cmd`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.net import free_port, http, wait_until

BIN = Path(sys.executable).parent


@dataclass
class Partner:
    name: str
    api_key: str
    token: str
    """An enrollment token with 10 uses."""


@dataclass
class Collector:
    """A ``vigil-collector serve`` process with its own data directory."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    config: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    """Added to the process's environment (e.g. the fault tests' injected faults)."""
    serve_args: tuple[str, ...] = ()
    """More arguments for ``serve`` (e.g. ``("--workers", "2")``)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _base(self) -> list[str]:
        args = ["--data", str(self.data_dir)]
        if self.config is not None:
            args += ["--config", str(self.config)]
        return args

    def start(self, healthy: bool = True) -> Collector:
        """Start; wait for ``/healthz`` to answer 200 (``healthy``) or to answer at all."""
        self.log_path = self.data_dir.parent / f"collector-{self.port}.log"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                str(BIN / "vigil-collector"),
                "serve",
                *self._base(),
                "--listen",
                f"127.0.0.1:{self.port}",
                *self.serve_args,
            ],
            stdout=log,
            stderr=log,
            env={**os.environ, **self.env} if self.env else None,
        )
        wait_until(lambda: self._healthy(healthy), 30, what=f"collector on {self.url}")
        return self

    def _healthy(self, healthy: bool = True) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"collector exited with {self.proc.returncode}: {self.log()}")
        try:
            status = http("GET", self.url + "/healthz")[0]
        except OSError:
            return False
        return status == 200 if healthy else status in (200, 503)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def cli(self, *args: str, check: bool = True) -> str:
        out = subprocess.run(
            [str(BIN / "vigil-collector"), *args, *self._base()],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **self.env} if self.env else None,
        )
        if check and out.returncode != 0:
            raise AssertionError(f"vigil-collector {' '.join(args)} failed: {out.stderr}")
        return out.stdout if check else out.stdout + out.stderr

    def last_line(self, *args: str) -> str:
        return self.cli(*args).strip().splitlines()[-1].strip()

    def admin(self, *args: str) -> str:
        """``vigil-collector ARGS`` run by ``collector.cli.main`` in this process, with this
        collector's configuration, data directory and environment; its standard output.
        For a test's setup; a command that fails fails the test, saying why."""
        from collector.cli import main

        out, err = io.StringIO(), io.StringIO()
        with _environment(self.env), contextlib.redirect_stdout(out):
            with contextlib.redirect_stderr(err):
                code = main([*args, *self._base()])
        if code != 0:
            raise AssertionError(f"vigil-collector {' '.join(args)} failed: {err.getvalue()}")
        return out.getvalue()

    def admin_last_line(self, *args: str) -> str:
        """:meth:`admin`'s last line: the token or key a creating command printed."""
        return self.admin(*args).strip().splitlines()[-1].strip()

    def partner(self, name: str) -> tuple[str, str]:
        """Add a partner; return (API key, enrollment token with 10 uses)."""
        self.admin("partner", "add", name)
        key = self.admin_last_line("apikey", "create", "--partner", name)
        token = self.admin_last_line("token", "create", "--partner", name, "--uses", "10")
        return key, token

    def add_partner(self, name: str) -> Partner:
        """``partner`` as a record (the collector need not be running)."""
        return Partner(name, *self.partner(name))

    def api(self, key: str, path: str) -> tuple[int, Any]:
        status, _, body = http("GET", self.url + path, headers={"Authorization": f"Bearer {key}"})
        return status, json.loads(body) if body else None


@contextlib.contextmanager
def _environment(added: dict[str, str]) -> Iterator[None]:
    """``added`` set in this process's environment while inside, as it was after."""
    saved = {name: os.environ.get(name) for name in added}
    os.environ.update(added)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class Agent:
    """A configured agent (state dir, config file); enroll it, run it as a process."""

    root: Path
    extra_config: str = ""
    machine_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    """Added to the ``run`` process's environment (e.g. the fault tests' injected faults)."""

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f'[agent]\nstate_dir = "{self.state_dir}"\nmachine_id = "{self.machine_id}"\n'
            f"retry_max_s = 2\n{self.extra_config}"
        )

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def config(self) -> Path:
        return self.root / "agent.toml"

    @property
    def log_path(self) -> Path:
        return self.root / "agent.log"

    def cmd(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [str(BIN / "vigil-agent"), *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and out.returncode != 0:
            raise AssertionError(
                f"vigil-agent {' '.join(args)} failed ({out.returncode}): {out.stderr}"
            )
        return out

    def _here(self, *args: str) -> str:
        """``vigil-agent ARGS --config ...`` run by ``agent.cli.main`` in this process;
        its standard output. A command that fails fails the test, saying why."""
        from agent.cli import main

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*args, "--config", str(self.config)])
        if code != 0:
            raise AssertionError(f"vigil-agent {' '.join(args)} failed ({code}): {err.getvalue()}")
        return out.getvalue()

    def enroll(self, url: str, token: str) -> str:
        """``vigil-agent enroll`` run in this process (a test's setup; ``cmd("enroll",
        ...)`` runs it as a process); the new server's id."""
        self._here("enroll", "--collector", url, "--token", token)
        return json.loads((self.state_dir / "identity.json").read_text())["server_id"]

    def start(self, log_level: str = "info", *, report_now: bool = True) -> None:
        """Run the agent; its first report goes out at once (``--report-now``) unless
        ``report_now`` is False (then after the spread delay an operator's agent waits)."""
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                str(BIN / "vigil-agent"),
                "run",
                "--config",
                str(self.config),
                "--log-level",
                log_level,
                *(["--report-now"] if report_now else []),
            ],
            stdout=log,
            stderr=log,
            env={**os.environ, **self.env} if self.env else None,
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)

    def status(self) -> dict[str, Any]:
        """``vigil-agent status --json`` run as a process."""
        return json.loads(self.cmd("status", "--json").stdout)

    def polled_status(self) -> dict[str, Any]:
        """``vigil-agent status --json`` run in this process: for ``wait_until``, which
        asks every 0.1 s (a process each time cost more CPU than the agent waited for)."""
        return json.loads(self._here("status", "--json"))
