"""The monthly report of a month that is over is kept (`collector.contracts.report_cache`)
and still changes at the next read when anything it counts changes: each step below
writes one of its inputs and the API's answer must equal a report computed afresh."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from collector.contracts.report_cache import PAGE_TZ, REPORT_CACHE, SETTLED_S, last_month
from collector.contracts.reports import month_bounds, render_json_document
from collector.contracts.views import build_report
from collector.health import servers
from collector.http.appkeys import DB
from harness.app import app_client
from tests.contracts.test_api import _prepare, ts

MONTH = "2026-10"
OCT = (ts("2026-10-01T00:00+02:00"), ts("2026-11-01T00:00+01:00"))


def test_a_kept_report_changes_when_its_inputs_change(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ids = _prepare(data)
    headers = {"Authorization": f"Bearer {ids['key']}"}
    # The counts below are of what requests computed: no background refresh in between.
    config = tmp_path / "collector.toml"
    config.write_text("[contracts]\nreport_refresh_s = 0\n")

    async def main() -> None:
        async with app_client(data, config) as client:
            cache = client.app[REPORT_CACHE]
            db = client.app[DB]

            async def get(query: str = "") -> str:
                url = f"/api/v1/reports/monthly?month={MONTH}{query}"
                async with client.get(url, headers=headers) as r:
                    assert r.status == 200
                    return await r.text()

            async def fresh() -> str:
                now = time.time()
                rows = await db.read(
                    lambda c: build_report(c, 2026, 10, "customer", "acme", "Europe/Berlin", now)
                )
                return render_json_document(MONTH, rows)

            async def write(fn: Callable[[Any], object]) -> None:
                await db.write(fn)

            async def put(cid: str, body: dict[str, Any]) -> None:
                async with client.put(f"/api/v1/contracts/{cid}", json=body, headers=headers) as r:
                    assert r.status == 200, await r.text()

            await put(
                "P-2",
                {
                    "customer": "Airport",
                    "plan": "premium-24x7",
                    "licence_ids": ["LP"],
                    "start": "2026-01-01",
                },
            )
            first = await get()
            assert first == await fresh()
            assert (cache.builds, cache.hits) == (1, 0)
            assert await get() == first and cache.hits == 1  # kept

            # A report now (position, state, last seen) changes nothing of October: kept.
            state = json.dumps(
                {
                    "collected_at": time.time(),
                    "seq": 9,
                    "software": {"product": "VMS", "version": "6.0"},
                }
            )
            await write(
                lambda c: c.execute(
                    "UPDATE servers SET last_seen = ?, last_seq = 9, state = ?",
                    (time.time(), state),
                )
            )
            assert await get() == first and (cache.builds, cache.hits) == (1, 2)

            rows = json.loads(first)["rows"]
            airport = next(r for r in rows if r["customer"] == "Airport")
            seen = [first]

            async def changed() -> dict[str, Any]:
                text = await get()
                assert text not in seen and text == await fresh()
                seen.append(text)
                return next(r for r in json.loads(text)["rows"] if r["customer"] == "Airport")

            # An incident opened in October, then answered: each a new figure.
            async with client.post(
                "/api/v1/incidents",
                json={
                    "contract_id": "P-2",
                    "priority": "P2",
                    "server_id": ids["p"],
                    "opened_at": "2026-10-20T16:00+02:00",
                    "title": "late entry",
                },
                headers=headers,
            ) as r:
                assert r.status == 201
                iid = (await r.json())["id"]
            now_row = await changed()
            assert now_row["incidents"] == airport["incidents"] + 1
            async with client.post(
                f"/api/v1/incidents/{iid}/acknowledge",
                json={"at": "2026-10-20T16:30+02:00"},
                headers=headers,
            ) as r:
                assert r.status == 200
            assert (await changed())["response_met"] == now_row["response_met"] + 1

            # Another contract: a new row. Then the server revoked: its days go.
            await put(
                "W-1",
                {
                    "customer": "Warehouse",
                    "plan": "maintenance-support",
                    "licence_ids": ["LW"],
                    "start": "2026-01-01",
                },
            )
            text = await get()
            assert "Warehouse" in text and text not in seen and text == await fresh()
            seen.append(text)
            await write(lambda c: servers.revoke(c, ids["w"], time.time()))
            text = await get()
            assert "Warehouse" not in text and text == await fresh()
            seen.append(text)

            # A backup recorded late with a time inside October: more of its daily slots met.
            await put(
                "S-1",
                {
                    "customer": "Shop",
                    "plan": "maintenance-support",
                    "licence_ids": ["LS"],
                    "start": "2026-01-01",
                },
            )
            text = await get()
            assert "Shop" in text and text not in seen and text == await fresh()
            seen.append(text)
            shop = next(r for r in json.loads(text)["rows"] if r["customer"] == "Shop")
            slot = OCT[0] + 10 * 86400 + 3 * 3600
            await write(
                lambda c: c.execute(
                    "INSERT INTO backup_stored_times (server_id, seq, stored_at) VALUES (?, ?, ?)",
                    (ids["s"], 999_999, slot),
                )
            )
            text = await get()
            assert text not in seen and text == await fresh()
            seen.append(text)
            now_shop = next(r for r in json.loads(text)["rows"] if r["customer"] == "Shop")
            assert now_shop["backup_slots_met"] > shop["backup_slots_met"]

            # A server updated to another version is re-counted (findings at the month's end).
            state = json.dumps({"software": {"product": "VMS", "version": "7.0"}})
            builds = cache.builds
            await write(
                lambda c: c.execute("UPDATE servers SET state = ? WHERE id = ?", (state, ids["p"]))
            )
            assert await get() == await fresh() and cache.builds == builds + 1

            # The oldest report time moves (history pruned or, here, a report of October
            # recorded late), then a later report of October arrives: counted again each.
            await write(
                lambda c: c.execute(
                    "INSERT INTO reports (server_id, report_id, seq, collected_at, received_at) "
                    "VALUES (?, 'r1', 1, ?, ?)",
                    (ids["p"], OCT[0] + 3600, OCT[0] + 3600),
                )
            )
            assert await get() == await fresh() and cache.builds == builds + 2
            await write(
                lambda c: c.execute(
                    "INSERT INTO reports (server_id, report_id, seq, collected_at, received_at) "
                    "VALUES (?, 'r2', 2, ?, ?)",
                    (ids["p"], OCT[0] + 9 * 86400, OCT[0] + 9 * 86400),
                )
            )
            assert await get() == await fresh() and cache.builds == builds + 3

            # The current month is never kept.
            builds, hits = cache.builds, cache.hits
            async with client.get(
                "/api/v1/reports/monthly?month=" + time.strftime("%Y-%m"), headers=headers
            ) as r:
                assert r.status == 200
            assert (cache.builds, cache.hits) == (builds, hits)

    asyncio.run(main())


def test_last_months_report_is_computed_at_start_and_kept_up_to_date(tmp_path: Path) -> None:
    """A partner opening last month's report finds it computed when the process started,
    and after one of its inputs changes, computed again in the background before it asks."""
    data = tmp_path / "data"
    ids = _prepare(data)
    headers = {"Authorization": f"Bearer {ids['key']}"}
    config = tmp_path / "collector.toml"
    config.write_text("[contracts]\nreport_refresh_s = 10\n")
    year, month = last_month(time.time(), PAGE_TZ)
    label = f"{year:04d}-{month:02d}"
    _, end, _ = month_bounds(year, month, PAGE_TZ)

    async def main() -> None:
        async with app_client(data, config) as client:
            cache = client.app[REPORT_CACHE]

            async def waited(done: Callable[[], bool]) -> None:
                for _ in range(600):
                    if done():
                        return
                    await asyncio.sleep(0.1)
                raise AssertionError("the background round did not come")

            async def get() -> str:
                async with client.get(
                    f"/api/v1/reports/monthly?month={label}", headers=headers
                ) as r:
                    assert r.status == 200
                    return await r.text()

            await waited(lambda: cache.refreshed >= 2)  # the vendor's view and acme's
            first = await get()
            if time.time() < end + SETTLED_S:  # within the hour after the month ended
                assert cache.builds == 1  # not kept yet: computed for the request
                return
            assert (cache.builds, cache.hits) == (0, 1)
            body = {
                "customer": "Airport",
                "plan": "premium-24x7",
                "licence_ids": ["LP"],
                "start": "2026-01-01",
            }
            async with client.put("/api/v1/contracts/P-9", json=body, headers=headers) as r:
                assert r.status == 200, await r.text()
            before = cache.refreshed
            # The round computes the vendor's view and acme's anew (both read the change).
            await waited(lambda: cache.refreshed >= before + 2)
            text = await get()
            assert "Airport" in text and text != first
            assert (cache.builds, cache.hits) == (0, 2)

    asyncio.run(main())
