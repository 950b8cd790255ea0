"""Fixtures for over-the-wire tests: a real collector process, real agents, on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.bytecode import compile_product
from harness.database import BACKEND, PrivatePostgres, own_database_env, private_postgres
from harness.processes import Agent, Collector
from harness.proxy import CuttingProxy

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # once, in the process that starts the workers
        compile_product()


@pytest.fixture(autouse=True)
def _known_servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``vigil-backup`` pins server keys in a file of its own: one per test, never the
    user's ``~/.config/vigil/known_servers``."""
    monkeypatch.setenv("VIGIL_KNOWN_SERVERS", str(tmp_path / "known_servers"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PrivatePostgres | None]:
    """With ``VIGIL_TEST_DB=postgresql``, one private PostgreSQL for the session."""
    if BACKEND != "postgresql":
        yield None
        return
    with private_postgres() as server:
        yield server


@pytest.fixture(autouse=True)
def _storage_backend(
    postgres_server: PrivatePostgres | None,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[None]:
    """On PostgreSQL, a fresh database per test (migrated, as a collector's first start
    leaves it), named to every collector it starts (a test about the SQLite file itself,
    marked ``sqlite_only``, keeps SQLite)."""
    if postgres_server is None or request.node.get_closest_marker("sqlite_only") is not None:
        yield
        return
    url = postgres_server.new_migrated_database()
    monkeypatch.setenv("VIGIL_STORAGE_URL", url)
    yield
    postgres_server.drop_database(url)  # some 530 files: removed now, not all at the end


MakeCollector = Callable[..., Collector]


@pytest.fixture
def make_collector(
    tmp_path: Path, postgres_server: PrivatePostgres | None
) -> Iterator[MakeCollector]:
    """``make_collector(config="", data_dir=None, healthy=True, name="collector")``: a
    started ``vigil-collector serve`` with ``config`` (TOML text) as its configuration file
    and its data in ``data_dir`` (``tmp_path/name`` by default); several may run. Each is
    stopped at teardown. Each data directory has its own database (on PostgreSQL too)."""
    made: list[Collector] = []
    databases: dict[Path, dict[str, str]] = {}

    def make(
        config: str = "",
        data_dir: Path | None = None,
        healthy: bool = True,
        name: str = "collector",
        env: dict[str, str] | None = None,
    ) -> Collector:
        cfg = tmp_path / f"{name}-{len(made)}.toml"
        cfg.write_text(config)
        data = data_dir or tmp_path / name
        if data not in databases:
            databases[data] = own_database_env(postgres_server) if databases else {}
        c = Collector(data, config=cfg, env={**databases[data], **(env or {})})
        made.append(c)
        return c.start(healthy=healthy)

    yield make
    for c in made:
        c.kill(signal.SIGTERM)


@pytest.fixture
def collector(make_collector: MakeCollector) -> Collector:
    """A collector with the default configuration."""
    return make_collector()


@pytest.fixture
def make_agent(tmp_path: Path) -> Iterator[Any]:
    made: list[Agent] = []

    def make(name: str = "agent", extra_config: str = "") -> Agent:
        a = Agent(tmp_path / name, extra_config)
        made.append(a)
        return a

    yield make
    for a in made:
        a.kill(signal.SIGKILL)


@pytest.fixture
def tmpfs() -> Iterator[Callable[[Path, str], Path]]:
    """Mount a small tmpfs (``size`` as mount(8) takes it, e.g. ``"512k"``) on a directory,
    for tests of a full disk; unmounted at teardown. Needs root: skipped, saying so,
    where the mount is refused."""
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs for the full-disk test: {done.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def make_proxy() -> Iterator[Callable[[int], CuttingProxy]]:
    """``make_proxy(port)``: a ``CuttingProxy`` on 127.0.0.1 in front of ``port`` (a
    collector's), to cut or hold its connections; stopped at teardown."""
    made: list[CuttingProxy] = []

    def make(port: int) -> CuttingProxy:
        p = CuttingProxy(port).start()
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()
