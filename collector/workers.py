"""``vigil-collector serve --workers N``: one listening socket, N collector processes.

The parent binds the listening address once (a port in use is said once, before any
worker starts), applies the database's migrations once, and starts N workers: each a
``vigil-collector serve`` process of its own (its event loop, database connections and
background tasks) that serves the inherited socket; the kernel hands each new connection
to one of the workers waiting in ``accept``. Nothing a worker keeps in memory is needed
by another: agent sessions are sealed under the installation's session key file, replay
nonces and the leases of scheduled tasks are rows of the database (``docs/deploy.md``).

As uvicorn's multiprocess supervisor does, the parent restarts a worker that dies (a
crash, a SIGKILL, a background task that gave up), after a pause that doubles while
workers keep dying within seconds of their start, up to ``RESTART_MAX_S``. A worker
that exits with status 2 (the storage cannot be opened, the session key file is
missing: restarting changes nothing) stops the others and the parent exits 2. SIGTERM
or SIGINT stops every worker gracefully (each finishes its requests in flight) and the
parent exits 0; SIGHUP is passed on to every worker (each re-reads the configuration).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from collector.server import split_listen

log = logging.getLogger("vigil.collector")

RESTART_MAX_S = 30.0
"""The longest pause before a worker that keeps dying is started again."""
QUICK_DEATH_S = 10.0
"""A worker dying this soon after its start doubles the next pause."""


def bind(listen: str) -> socket.socket:
    """The listening socket of ``listen`` (HOST:PORT), inheritable by the workers."""
    host, port = split_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    pause_s: float = 0.0
    due: float = 0.0
    """When a dead worker is started again."""


@dataclass
class Workers:
    """The parent: starts ``count`` workers running ``command`` + ``--listen-fd FD``."""

    command: list[str]
    count: int
    sock: socket.socket
    shutdown_timeout_s: float = 15.0
    _workers: list[_Worker] = field(default_factory=list)
    _wake: threading.Event = field(default_factory=threading.Event)
    _stop_signal: int | None = None
    _hup: bool = False

    def _start(self, w: _Worker) -> None:
        fd = self.sock.fileno()
        w.proc = subprocess.Popen([*self.command, "--listen-fd", str(fd)], pass_fds=(fd,))
        w.started = time.monotonic()
        log.info("worker %d started (pid %d)", w.index, w.proc.pid)

    def _on_signal(self, signum: int, _frame: object) -> None:
        if signum == signal.SIGHUP:
            self._hup = True
        else:
            self._stop_signal = signum
        self._wake.set()

    def run(self) -> int:
        """Supervise until SIGTERM/SIGINT (0) or a worker that cannot start (2)."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        self._workers = [_Worker(i + 1) for i in range(self.count)]
        for w in self._workers:
            self._start(w)
        status = 0
        while self._stop_signal is None:
            self._wake.wait(0.5)
            self._wake.clear()
            if self._hup:
                self._hup = False
                self._signal_all(signal.SIGHUP)
            if not self._keep_alive():
                status = 2
                break
        self._stop_all()
        log.info("stopped %d workers", self.count)
        return status

    def _keep_alive(self) -> bool:
        """Start again what died; False when a worker said it cannot start at all."""
        now = time.monotonic()
        for w in self._workers:
            if w.proc is None:
                if now >= w.due:
                    self._start(w)
                continue
            code = w.proc.poll()
            if code is None:
                continue
            if code == 2:
                log.critical("worker %d cannot start (exit status 2): stopping", w.index)
                return False
            quick = now - w.started < QUICK_DEATH_S
            w.pause_s = min(max(w.pause_s * 2, 0.5), RESTART_MAX_S) if quick else 0.0
            log.error(
                "worker %d (pid %d) ended with status %s; starting it again in %.1f s",
                w.index,
                w.proc.pid,
                code,
                w.pause_s,
            )
            w.proc, w.due = None, now + w.pause_s
            if w.pause_s == 0:
                self._start(w)
        return True

    def _signal_all(self, sig: int) -> None:
        for w in self._workers:
            if w.proc is not None and w.proc.poll() is None:
                os.kill(w.proc.pid, sig)

    def _stop_all(self) -> None:
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.shutdown_timeout_s
        for w in self._workers:
            if w.proc is None:
                continue
            try:
                w.proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.error("worker %d did not stop in time: killed", w.index)
                w.proc.kill()
                w.proc.wait()


def worker_command(
    config: str | None, data: str | None, listen: str, log_level: str | None
) -> list[str]:
    """How the parent starts a worker: this interpreter, ``serve`` with the same
    configuration file, data directory, address and log level (the environment is
    inherited)."""
    cmd = [sys.executable, "-m", "collector.cli", "serve", "--listen", listen]
    if config:
        cmd += ["--config", config]
    if data:
        cmd += ["--data", data]
    if log_level:
        cmd += ["--log-level", log_level]
    return cmd
