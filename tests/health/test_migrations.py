"""Migrations: one SQL text for both dialects, type tokens spelled per dialect."""

from __future__ import annotations

import pytest

from collector.storage import migrations
from collector.storage.migrations import MigrationError, _spelled, available


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_every_migration_is_spelled_out_for_each_dialect(dialect: str) -> None:
    found = available(dialect)
    assert [v for v, _, _ in found] == sorted({v for v, _, _ in found})
    for _, name, sql in found:
        assert "{{" not in sql, name
    contracts = next(sql for v, _, sql in found if v == 30)
    expected = migrations.TOKENS[dialect]["{{auto_id}}"]
    assert f"id {expected}," in contracts
    notify = next(sql for v, _, sql in found if v == 120)
    assert f"secret {migrations.TOKENS[dialect]['{{bytes}}']}," in notify


def test_an_unknown_token_is_refused() -> None:
    with pytest.raises(MigrationError, match="unknown token"):
        _spelled("CREATE TABLE t (id {{uuid_pk}})", "sqlite", "0099_x.sql")
