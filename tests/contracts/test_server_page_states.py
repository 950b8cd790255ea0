"""The server page shows each camera's clock offset (marked past the threshold) and the
backup state in words: new, overdue, stored and verified, not entitled."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from harness.database import collector_sql
from harness.processes import Collector
from harness.signed import batch, post_signed, report, session_for
from tests.portal.world import page, sign_in

HEADER = "contract_id,customer,partner,plan,licence_ids,start,installed_on\n"


def cams(*offsets: float | None) -> list[dict[str, Any]]:
    return [
        {"key": f"cam-{i}", "address": f"10.0.0.{i}", "verdict": "ok", "clock_offset_s": off}
        for i, off in enumerate(offsets, 1)
    ]


def backup_state(body: str) -> str:
    m = re.search(r'id="backup-state">([^<]*)<', body)
    assert m is not None
    return m.group(1)


def clock_cells(body: str) -> list[str]:
    return re.findall(r'<td class="clock"[^>]*>(.*?)</td>', body)


def test_clock_offsets_and_backup_states_on_the_server_page(
    collector: Collector, make_agent: Any, tmp_path: Path
) -> None:
    _, token = collector.partner("acme")
    today = time.strftime("%Y-%m-%d")
    contracts = tmp_path / "contracts.csv"
    contracts.write_text(
        HEADER
        + f"C-M,Museum,acme,maintenance-support,LM,{today},\n"
        + f"C-W,Bakery,acme,warranty,LW,,{today}\n"
    )
    collector.cli("contracts", "import", str(contracts))
    kept = make_agent(name="kept", extra_config='licence_id = "LM"\n')
    kept_id = kept.enroll(collector.url, token)
    plain = make_agent(name="plain", extra_config='licence_id = "LW"\n')
    plain_id = plain.enroll(collector.url, token)
    session = session_for(kept.state_dir, collector.url)
    # One camera 7.3 s ahead (past the 5 s threshold), one 0.4 s behind, one unknown.
    rep = report(1, cameras=cams(7.3, -0.4, None))
    status, _ = post_signed(collector.url, session, "/api/v1/agent/reports", batch(rep))
    assert status == 200
    email = "viewer@acme.example"
    password = collector.last_line("user", "add", email, "--partner", "acme", "--role", "viewer")
    cookie = sign_in(collector, email, password)[1]

    body = page(collector, f"/servers/{kept_id}", cookie)[1].decode()
    assert clock_cells(body) == [
        '<span class="pill warning" title="more than 5.0 s off">+7.3 s</span>',
        "-0.4 s",
        "—",
    ]
    # Just enrolled, under Maintenance & Support: the first daily backup is not due yet.
    assert backup_state(body) == "new: the first backup is not due yet"

    def stored(ago_s: float) -> None:
        with collector_sql(collector.data_dir, collector.env) as db:
            at = time.time() - ago_s
            db.execute(
                "INSERT INTO backup_status (server_id, last_stored_at, updated_at) "
                "VALUES (?, ?, ?) ON CONFLICT (server_id) DO UPDATE SET "
                "last_stored_at = excluded.last_stored_at",
                (kept_id, at, at),
            )

    stored(3 * 86400)  # the last stored backup 3 days ago; daily is promised
    body = page(collector, f"/servers/{kept_id}", cookie)[1].decode()
    assert backup_state(body) == "overdue" and 'class="pill breach" id="backup-state"' in body
    stored(3600)
    body = page(collector, f"/servers/{kept_id}", cookie)[1].decode()
    assert backup_state(body) == "stored and verified"

    # Under a warranty: no online backup, so never overdue and no due time.
    body = page(collector, f"/servers/{plain_id}", cookie)[1].decode()
    assert backup_state(body) == "not entitled"
    assert "<dt>Next due</dt>" not in body and "breach" not in body.split("<h2>Backups</h2>")[1]
