"""The contracts and incidents pages of a partner with more than a page of them: 100 rows a
page, in the same order as one long list, every contract and incident on exactly one page
(the list is ordered over all of them before the page is cut)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from pathlib import Path

from collector import secrets_store
from collector.accounts import store
from collector.config import load_config
from collector.contracts import repository as repo
from collector.contracts.incidents import open_incident
from collector.contracts.plans import get_plan
from collector.contracts.terms import Contract
from collector.storage import open_database
from harness.app import app_client

N = 150


def _fill(data: Path) -> tuple[str, str]:
    """A partner with N contracts (starts spread over two years) and N open incidents;
    returns its API key and a session of its admin."""
    db = open_database(load_config(None, data))
    now = time.time()
    today = dt.date.today()
    plan = get_plan("maintenance-support")

    def fill(conn: object) -> tuple[str, str]:
        p = secrets_store.add_partner(conn, "acme")
        key = secrets_store.create_api_key(conn, p.id)
        for i in range(N):
            c = Contract(
                id=f"C{i:04d}",
                customer=f"cust{i % 7}",
                partner="acme",
                plan=plan.name,
                licence_ids=(f"LIC-{i}",),
                start=today - dt.timedelta(days=(i * 37) % 700),
            )
            repo.record_version(conn, c.id, "acme", c, now, "test")
            inc = open_incident(
                f"INC-{i:04d}",
                plan,
                "high",
                dt.datetime.fromtimestamp(now - (i * 7919) % 86400, dt.UTC),
                contract_id=c.id,
                title="test",
                by="acme",
            )
            repo.insert_incident(conn, inc, "acme", now)
        owner = store.key_owner(conn, key)
        assert owner is not None
        return key, store.create_session(conn, owner.user.id, 3600, api_key_id=owner.key_id)

    try:
        return db.write_sync(fill)
    finally:
        db.close()


def _ids(body: bytes, pattern: bytes) -> list[bytes]:
    return re.findall(pattern, body)


def test_contracts_and_incidents_come_a_page_at_a_time_in_one_order(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key, session = _fill(data)

    async def main() -> dict[str, list[bytes]]:
        seen: dict[str, list[bytes]] = {"contracts": [], "incidents": []}
        async with app_client(data) as client:
            headers = {"Cookie": f"vigil_session={session}"}
            for what, pattern in (
                ("contracts", rb"<tr><td>(C\d{4})</td>"),
                ("incidents", rb'<tr id="(INC-\d{4})">'),
            ):
                for page in (1, 2, 3):
                    r = await client.get(f"/{what}?page={page}", headers=headers)
                    body = await r.read()
                    assert r.status == 200, body[:300]
                    shown = min(page, 2)
                    assert f"page {shown} of 2 ({N} {what})".encode() in body
                    if page < 3:  # past the last page: the last page again
                        seen[what] += _ids(body, pattern)
                    else:
                        assert _ids(body, pattern) == seen[what][100:]
            # The contracts in one order over both pages: by the next date to act on.
            api = {"Authorization": f"Bearer {key}"}
            r = await client.get("/api/v1/contracts?limit=1000", headers=api)
            listed = (await r.json())["contracts"]
            far = "9999-12-31"
            order = sorted(
                listed,
                key=lambda c: (c["last_day_to_cancel"] or far, c["last_covered_day"] or far),
            )
            assert [c["id"].encode() for c in order] == seen["contracts"]
        return seen

    seen = asyncio.run(main())
    assert len(seen["contracts"]) == N and len(set(seen["contracts"])) == N
    assert len(seen["incidents"]) == N and len(set(seen["incidents"])) == N
