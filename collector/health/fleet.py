"""The fleet as partners see it: one view of each server, for the API, pages and CLI."""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import msgspec

from collector.accounts import partners
from collector.backups.status import fleet_backup_status
from collector.contracts.service import coverage_by_server
from collector.gc_pause import gc_paused
from collector.health import history, servers, status
from collector.health.servers import ServerRow
from protocol.messages import Disk

_decode_state = msgspec.json.Decoder(dict).decode


class FleetView:
    """Builds server views for one read: partner intervals are looked up once."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        default_interval: int,
        offline_after: int,
        clock_offsets: Mapping[str, float] | None = None,
    ) -> None:
        self.conn = conn
        self.clock_offsets = clock_offsets or {}
        """Offsets of servers refused for a stale clock (``collector.health.refusals``)."""
        self.default_interval = default_interval
        self.offline_after = offline_after
        self.partner_names: dict[int, str] = {}
        self.partner_intervals: dict[int, int | None] = {}
        for pid, name, interval in partners.names_and_intervals(conn):
            self.partner_names[pid] = name
            self.partner_intervals[pid] = interval

    def interval(self, row: ServerRow) -> int:
        return (
            row.report_interval_s
            or self.partner_intervals.get(row.partner_id)
            or self.default_interval
        )

    def view(self, row: ServerRow, now: float, *, detail: bool = False) -> dict[str, Any]:
        state = status.decode_summary(row.state or "{}")
        interval = self.interval(row)
        # Offline is judged against the interval the server was last told (a new setting
        # reaches it with its next report), plus one new interval after a change.
        st = status.evaluate(
            now=now,
            last_seen=row.last_seen,
            revoked_at=row.revoked_at,
            interval_s=row.told_interval_s or interval,
            offline_after_intervals=self.offline_after,
            state=state,
            grace_s=row.told_grace_s or 0,
        )
        offset = self.clock_offsets.get(row.id)
        if offset is not None:
            # Its requests are refused: whatever else the status says, this is why.
            st.reasons.insert(
                0,
                f"clock off by {offset:+.0f} s: the collector refuses its requests "
                "(fix the server's time, NTP)",
            )
        cams = state.camera_counts or {}
        out: dict[str, Any] = {
            "id": row.id,
            "hostname": row.hostname,
            "partner": self.partner_names.get(row.partner_id, ""),
            "status": st.status,
            "status_reasons": st.reasons,
            "last_seen": row.last_seen,
            "enrolled_at": row.enrolled_at,
            "revoked": row.revoked_at is not None,
            "licence_id": row.licence_id,
            "machine_id": row.machine_id,
            "agent_version": row.agent_version,
            "os": row.os,
            "software": {"product": state.software.product, "version": state.software.version},
            "cameras": {"total": sum(cams.values()), "by_verdict": cams},
            "volumes": state.volumes,
            "report_interval_s": interval,
            "told_interval_s": row.told_interval_s,
            "clock_offset_s": None if offset is None else round(offset),
        }
        if detail:
            full = _decode_state(row.state or "{}")
            out.update(
                host=full.get("host") or {},
                software=full.get("software") or {},
                volumes=full.get("volumes", []),
                disks=_disks(full.get("disks")),
                last_report_at=full.get("collected_at"),
                last_seq=row.last_seq,
                reports_received=row.reports_received,
                dropped_reports=row.dropped_reports,
                missing_reports=row.missing_reports,
            )
        return out

    def all(self, partner_id: int | None, now: float | None = None) -> list[dict[str, Any]]:
        """Every server of ``partner_id`` (all if None), each with its backup and contract
        summary: what a partner looks at every morning."""
        t = time.time() if now is None else now
        with gc_paused():
            return self._all(partner_id, t)

    def from_rows(
        self, rows: list[ServerRow], partner_id: int | None, now: float
    ) -> list[dict[str, Any]]:
        """:meth:`all` for rows already read (every server of ``partner_id``)."""
        with gc_paused():
            return self._all(partner_id, now, rows)

    def _all(
        self, partner_id: int | None, t: float, rows: list[ServerRow] | None = None
    ) -> list[dict[str, Any]]:
        if rows is None:
            rows = servers.list_for(self.conn, partner_id)
        views = [self.view(r, t) for r in rows]
        partner = None if partner_id is None else self.partner_names.get(partner_id)
        contracts = coverage_by_server(self.conn, t, partner)
        backups = fleet_backup_status(self.conn, partner_id, t, contracts)
        for v in views:
            b = backups.get(v["id"])
            v["backup"] = (
                None
                if b is None
                else {
                    k: b[k]
                    for k in (
                        "state",
                        "last_success",
                        "last_failure",
                        "next_due",
                        "overdue",
                        "interval_s",
                    )
                }
            )
            v["contract"] = contracts.get(v["id"], {"coverage": "none"})
        return views


def status_counts(views: list[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(v["status"] for v in views))


def storage_history(
    conn: sqlite3.Connection, server_id: str, since: float, max_points: int = 500
) -> list[dict[str, Any]]:
    """Used bytes per volume over time, thinned to at most ``max_points`` samples."""
    rows = history.volumes_since(conn, server_id, since)
    step = max(1, len(rows) // max_points)
    out = []
    for r in rows[::step]:
        vols = json.loads(r[1])
        out.append(
            {
                "at": r[0],
                "volumes": [
                    {"mountpoint": v[0], "total": v[1], "used": v[2], "free": v[3]} for v in vols
                ],
            }
        )
    return out


def _disks(raw: Any) -> list[dict[str, Any]] | None:
    """The stored disks with every field spelled out (the wire omits defaults); None when
    the agent does not read SMART."""
    if raw is None:
        return None
    try:
        disks = msgspec.convert(raw, type=list[Disk])
    except msgspec.ValidationError:
        return None
    return [{f: getattr(d, f) for f in Disk.__struct_fields__} for d in disks]
