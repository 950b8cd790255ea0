"""Running the collector: configuration apart from runtime, signals, ordered shutdown.

On SIGTERM or SIGINT the collector stops accepting connections, lets requests in flight
finish (up to ``shutdown_timeout``), commits the writes they queued, and exits 0. A
background task that cannot be kept running stops it the same way, with exit status 1;
storage that cannot be opened at all is said in one line, with exit status 2.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable

from aiohttp import web

from collector.config import CollectorConfig
from collector.config_reload import reload_config
from collector.gc_pause import settle_for_serving
from collector.health.storage_health import StorageStartError
from collector.http.app import create_app
from collector.key_files import KeyFileError
from collector.private_files import files_private, private_dir
from collector.supervision import TASKS

log = logging.getLogger("vigil.collector")


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def _private_data_dir(config: CollectorConfig) -> None:
    """The data directory, and the folders an older collector made there, private."""
    private_dir(config.data_dir)
    for made_before in ("backups", "uploads"):  # by a collector that did not restrict them
        if (config.data_dir / made_before).is_dir():
            private_dir(config.data_dir / made_before)


async def _listen(
    runner: web.AppRunner, config: CollectorConfig, sock: socket.socket | None
) -> None:
    """Accept connections on ``sock`` if given, else on ``config.listen``."""
    host, port = split_listen(config.listen)
    site: web.BaseSite
    if sock is not None:
        site = web.SockSite(runner, sock)
    else:
        site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
    await site.start()
    bound = runner.addresses[0] if runner.addresses else (host, port)
    log.info(
        "Vigil collector listening on http://%s:%s (data in %s)",
        bound[0],
        bound[1],
        config.data_dir,
    )


def _handle_signals(
    app: web.Application,
    stop: asyncio.Event,
    reload_from: Callable[[], CollectorConfig] | None,
    log_level_flag: str | None,
) -> None:
    """SIGINT and SIGTERM set ``stop``; SIGHUP reloads the configuration (with ``reload_from``)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if reload_from is not None:
        load = reload_from
        loop.add_signal_handler(signal.SIGHUP, lambda: reload_config(app, load, log_level_flag))


async def serve(
    config: CollectorConfig,
    shutdown_timeout: float = 10.0,
    reload_from: Callable[[], CollectorConfig] | None = None,
    log_level_flag: str | None = None,
    sock: socket.socket | None = None,
) -> int:
    """Serve until a signal (exit status 0) or a background task gives up (1). SIGHUP
    re-reads the configuration with ``reload_from`` (see ``collector.config_reload``).
    ``sock`` is a listening socket bound by ``serve --workers`` (else ``config.listen``
    is bound here). Run it with ``files_private`` (``run`` does)."""
    _private_data_dir(config)
    try:
        app = create_app(config)
    except KeyFileError as exc:
        log.critical("%s", exc)
        return 2
    stop = asyncio.Event()
    gave_up: list[str] = []

    def give_up(task: str) -> None:
        gave_up.append(task)
        stop.set()

    app[TASKS].on_give_up = give_up
    # aiohttp's keep-alive timer runs from the moment a connection opens until a request
    # is complete: at read_timeout_s it also cuts off a client sending its headers slowly.
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=shutdown_timeout,
        keepalive_timeout=config.read_timeout_s,
    )
    try:
        await runner.setup()
    except (StorageStartError, KeyFileError) as exc:
        log.critical("%s", exc)
        await runner.cleanup()
        return 2
    try:
        await _listen(runner, config, sock)
    except OSError:
        # The background tasks started with the app are stopped in order (the supervisor
        # cancels until each is done); left to asyncio.run's blanket cancellation, a task
        # whose cancellation Python 3.11's wait_for swallowed kept the process from exiting.
        await runner.cleanup()
        raise
    settle_for_serving()
    _handle_signals(app, stop, reload_from, log_level_flag)
    await stop.wait()
    log.info("stopping: no new connections, finishing requests in flight")
    await runner.cleanup()
    if gave_up:
        log.critical("stopped: background task %s could not be kept running", gave_up[0])
        return 1
    log.info("stopped")
    return 0


def run(
    config: CollectorConfig,
    reload_from: Callable[[], CollectorConfig] | None = None,
    log_level_flag: str | None = None,
    sock: socket.socket | None = None,
) -> int:
    """Serve, creating files private to the collector's user; the process's exit status."""
    with files_private(), asyncio.Runner(loop_factory=event_loop_factory(config)) as runner:
        return runner.run(
            serve(config, reload_from=reload_from, log_level_flag=log_level_flag, sock=sock)
        )


def event_loop_factory(config: CollectorConfig) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when ``[collector] event_loop`` is "uvloop" (the default) and
    uvloop is installed; else asyncio's own (None). Measured in ``docs/decisions.md``."""
    if config.event_loop != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
