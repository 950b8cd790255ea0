"""A month that is over is judged on the version each server ran then: a server updated
today to a version its maintenance does not cover has a finding today, and last month's
findings and monthly report stay as they were. The contract checks record the versions
(``collector.contracts.server_versions``); the partner API reads them."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

from collector.contracts import repository as repo
from collector.contracts import server_versions, service
from collector.contracts.importer import Release
from collector.http.appkeys import DB
from harness.app import app_client
from tests.contracts.test_api import _prepare, ts

OCTOBER_END = "2026-10-31T23:00+01:00"


def test_an_update_today_leaves_last_months_version_findings_as_they_were(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    ids = _prepare(data)  # every server on VMS 6.0, enrolled 15 January 2026
    headers = {"Authorization": f"Bearer {ids['key']}"}
    p = ids["p"]

    async def main() -> None:
        async with app_client(data) as client:
            db = client.app[DB]

            async def call(method: str, path: str, body: Any = None) -> Any:
                async with client.request(method, path, json=body, headers=headers) as r:
                    assert r.status == 200, await r.text()
                    return await r.json()

            async def version_findings(at: str | None) -> list[dict[str, Any]]:
                query = "" if at is None else "?at=" + at.replace("+", "%2B")
                body = await call("GET", "/api/v1/contract-findings" + query)
                return [
                    f
                    for f in body["findings"]
                    if f["server_id"] == p and f["kind"] == "version_not_covered"
                ]

            async def october() -> list[dict[str, Any]]:
                body = await call("GET", "/api/v1/reports/monthly?month=2026-10")
                return [r for r in body["rows"] if r["customer"] == "Airport"]

            # Free upgrades while the contract runs (to 31 December 2026); 7.0 comes after.
            await call(
                "PUT",
                "/api/v1/contracts/P-2",
                {
                    "customer": "Airport",
                    "plan": "maintenance-support",
                    "licence_ids": ["LP"],
                    "start": "2026-01-01",
                },
            )
            await db.write(
                lambda c: repo.upsert_releases(
                    c,
                    [
                        Release("VMS", "6.0", dt.date(2025, 6, 1)),
                        Release("VMS", "7.0", dt.date(2027, 1, 10)),
                    ],
                )
            )
            await service.run_checks(db)  # the versions seen first: from the enrolment
            before = await october()
            assert await version_findings(OCTOBER_END) == []

            started = time.time()
            state = json.dumps({"software": {"product": "VMS", "version": "7.0"}})
            await db.write(
                lambda c: c.execute("UPDATE servers SET state = ? WHERE id = ?", (state, p))
            )
            await service.run_checks(db)  # the update seen

            (today,) = await version_findings(None)
            assert today["evidence"]["version"] == "7.0"
            assert await version_findings(OCTOBER_END) == []
            assert await october() == before
            rows = await db.read(
                lambda c: c.execute(
                    "SELECT since, version FROM server_versions WHERE server_id = ? ORDER BY since",
                    (p,),
                ).fetchall()
            )
            assert [r[1] for r in rows] == ["6.0", "7.0"]
            assert rows[0][0] == ts("2026-01-15T09:00+00:00") and rows[1][0] >= started
            every = await db.read(lambda c: server_versions.at(c, ts(OCTOBER_END)))
            assert every[p] == ("VMS", "6.0") and len(every) == 4

            # A check of an instant in the past (`vigil-collector check --at`) records nothing.
            count = "SELECT COUNT(*) FROM server_versions"
            n = (await db.read(lambda c: c.execute(count).fetchone()))[0]
            await service.run_checks(db, ts(OCTOBER_END))
            assert (await db.read(lambda c: c.execute(count).fetchone()))[0] == n

    asyncio.run(main())
