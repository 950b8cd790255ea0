"""The collector application in this process: ``create_app`` served on 127.0.0.1 (port 0)
by aiohttp's test server, for tests that reach into the running app (its database made to
fail) or measure its handlers without a process boundary."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from collector.config import load_config
from collector.http.app import create_app
from collector.storage.database import Database


@asynccontextmanager
async def app_client(
    data_dir: Path, config: Path | None = None, database: Database | None = None
) -> AsyncIterator[TestClient]:
    """A client of a collector app with its data in ``data_dir``; ``client.app`` is the
    app, ``str(client.make_url(""))`` its address."""
    app = create_app(load_config(config, data_dir), database=database)
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        yield client
