"""Migration 0032 on SQLite: contracts recorded under the old schema (ids unique across
the collector) keep their versions, current rows, licences and findings, and from then on
an id is unique per partner."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

from collector.contracts import repository as repo
from collector.contracts.checks import Finding, Severity
from collector.contracts.codec import contract_to_dict
from collector.contracts.terms import Contract
from collector.storage.migrations import _statements, available


def _apply(conn: sqlite3.Connection, lo: int, hi: int) -> None:
    for version, _, sql in available("sqlite"):
        if lo <= version <= hi:
            for stmt in _statements(sql):
                conn.execute(stmt)


def test_contracts_survive_and_ids_become_per_partner() -> None:
    conn = sqlite3.connect(":memory:")
    _apply(conn, 0, 31)
    old = Contract(
        "V-1", "Museum", "acme", "maintenance-support", ("L1", "L2"), dt.date(2026, 1, 1)
    )
    data = json.dumps(contract_to_dict(old))
    conn.execute(
        "INSERT INTO contract_versions (contract_id, version, valid_from, partner, removed, "
        "data, source) VALUES ('V-1', 1, 100.0, 'acme', 0, ?, 'old')",
        (data,),
    )
    conn.execute(
        "INSERT INTO contracts (id, version, partner, customer, plan, data, updated_at) "
        "VALUES ('V-1', 1, 'acme', 'Museum', 'maintenance-support', ?, 100.0)",
        (data,),
    )
    conn.executemany(
        "INSERT INTO contract_licences (licence_id, contract_id) VALUES (?, 'V-1')",
        [("L1",), ("L2",)],
    )
    conn.execute(
        "INSERT INTO contract_findings (run_at, partner, server_id, contract_id, kind, severity, "
        "clause, message, evidence, fkey, digest) VALUES "
        "(50.0, 'acme', 's1', 'V-1', 'silent', 'warning', 'c', 'm', '{}', 's1|V-1|silent|', 'd')"
    )
    _apply(conn, 32, 32)

    # The stored finding keeps its identity (and so its first-seen time) under the new key.
    silent = Finding("silent", Severity.WARNING, "s1", "V-1", "c", "m", {})
    assert repo.stored_findings(conn) == {repo.finding_key(silent, "acme"): (1, "d")}

    assert repo.get_contract(conn, "acme", "V-1") == old
    assert [c.id for c in repo.contracts_for_licence(conn, "acme", "L2")] == ["V-1"]
    assert [v.note for v in repo.history(conn, "acme", "V-1")] == ["old"]
    # Another partner's V-1 is its own: acme's rows are untouched.
    rival = Contract("V-1", "Decoy", "rival", "warranty", ("L1",), dt.date(2026, 1, 1))
    assert repo.record_version(conn, "V-1", "rival", rival, 200.0, "api") == 1
    assert repo.get_contract(conn, "acme", "V-1") == old
    assert repo.contracts_for_licence(conn, "rival", "L2") == []
    assert [c.partner for c in repo.contracts_for_licence(conn, "rival", "L1")] == ["rival"]
    assert [c.partner for c in repo.contracts_for_licence(conn, "acme", "L1")] == ["acme"]
    assert repo.partners_with_contract(conn, "V-1") == ["acme", "rival"]
