"""Fixtures for the tests of several collector processes: one PostgreSQL database they
share, and the backup tests' S3 server on 127.0.0.1 and source tree."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from harness.database import PrivatePostgres, private_postgres
from tests.backups.conftest import moto_endpoint, tree

__all__ = ["database_url", "moto_endpoint", "tree"]


@pytest.fixture
def database_url(postgres_server: PrivatePostgres | None) -> Iterator[str]:
    """A fresh PostgreSQL database: on the session's server under
    ``VIGIL_TEST_DB=postgresql``, else on a private server of the test's own."""
    with contextlib.ExitStack() as stack:
        server = postgres_server or stack.enter_context(private_postgres())
        yield server.new_database()
