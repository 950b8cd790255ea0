"""Receiving health reports: validate, store exactly once, acknowledge with settings."""

from __future__ import annotations

import sqlite3
import time

import msgspec
from aiohttp import web

from collector import cameras, entitlements, health_incidents
from collector.agent_settings import settings_for
from collector.appkeys import DB, METRICS
from collector.auth import agent_of, body_of
from collector.bodies import parse
from protocol import limits
from protocol.messages import Report, ReportAck, ReportBatch, encode

_encode = msgspec.json.encode


def _volumes_compact(report: Report) -> str:
    return _encode(
        [[v.mountpoint, v.total, v.used, v.free, int(v.recording)] for v in report.volumes]
    ).decode()


def _state(report: Report, camera_counts: dict[str, int] | None, heartbeat_only: str) -> str:
    if heartbeat_only:
        # Not entitled to health monitoring: the partner sees that the server is alive
        # and why nothing more is shown, and nothing more is kept.
        host = {"hostname": report.host.hostname, "agent_version": report.host.agent_version}
        return _encode(
            {
                "collected_at": report.collected_at,
                "seq": report.seq,
                "host": host,
                "heartbeat_only": heartbeat_only,
            }
        ).decode()
    state = {
        "collected_at": report.collected_at,
        "seq": report.seq,
        "host": report.host,
        "volumes": report.volumes,
        "software": report.software,
        "camera_counts": camera_counts,
        "dropped_reports": report.dropped_reports,
    }
    return _encode(state).decode()


def store_batch(
    conn: sqlite3.Connection,
    server_id: str,
    reports: list[Report],
    received_at: float,
    heartbeat_only: str = "",
) -> tuple[list[str], list[str]]:
    """Store each report not yet stored; return (accepted ids, duplicate ids).

    The primary key (server, report id) is what makes a retried report land once. The
    server's latest state moves forward only with a newer report (by sequence number),
    so a late retry never overwrites fresher state. With ``heartbeat_only`` (the reason
    the contract does not include health monitoring) only the heartbeat is kept.
    """
    accepted: list[str] = []
    duplicates: list[str] = []
    row = conn.execute("SELECT last_seq FROM servers WHERE id = ?", (server_id,)).fetchone()
    last_seq = int(row[0]) if row else 0
    for rep in reports:
        host = rep.host
        cur = conn.execute(
            "INSERT INTO reports (server_id, report_id, seq, collected_at, received_at, "
            "cpu_percent, "
            "memory_percent, volumes) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                server_id,
                rep.report_id,
                rep.seq,
                rep.collected_at,
                received_at,
                None if heartbeat_only else host.cpu_percent,
                None if heartbeat_only else host.memory_percent,
                "[]" if heartbeat_only else _volumes_compact(rep),
            ),
        )
        if cur.rowcount == 0:
            duplicates.append(rep.report_id)
            continue
        accepted.append(rep.report_id)
        if rep.seq <= last_seq:
            conn.execute(
                "UPDATE servers SET reports_received = reports_received + 1 WHERE id = ?",
                (server_id,),
            )
            continue
        gap = max(0, rep.seq - last_seq - 1) if last_seq else 0
        last_seq = rep.seq
        counts = None
        if rep.cameras is not None and not heartbeat_only:
            changes = cameras.apply_report(
                conn, server_id, rep.cameras, rep.collected_at, rep.cameras_digest
            )
            counts = cameras.counts(rep.cameras)
            health_incidents.cameras_changed(conn, server_id, changes, rep.collected_at)
        if not heartbeat_only:
            health_incidents.volumes_reported(conn, server_id, rep.volumes, rep.collected_at)
        conn.execute(
            "UPDATE servers SET last_seen = ?, last_seq = ?, "
            "reports_received = reports_received + 1, "
            "missing_reports = missing_reports + ?, dropped_reports = ?, hostname = ?, "
            "agent_version = ?, os = ?, state = ? WHERE id = ?",
            (
                received_at,
                rep.seq,
                gap,
                rep.dropped_reports,
                host.hostname,
                host.agent_version,
                host.os,
                _state(rep, counts, heartbeat_only),
                server_id,
            ),
        )
    return accepted, duplicates


async def post_reports(request: web.Request) -> web.Response:
    started = time.perf_counter()
    agent = agent_of(request)
    batch = parse(await body_of(request), ReportBatch, limits.MAX_BATCH_BYTES)
    received = time.time()
    metrics = request.app[METRICS]
    monitoring = entitlements.answer(request.app, agent.server_id, entitlements.MONITORING)
    heartbeat_only = "" if monitoring.entitled else monitoring.reason or "not entitled"
    accepted, dups = await request.app[DB].write(
        lambda c: store_batch(c, agent.server_id, batch.reports, received, heartbeat_only)
    )
    metrics.reports_received.inc(len(accepted))
    if dups:
        metrics.reports_duplicate.inc(len(dups))
    settings = await settings_for(request.app, agent.server_id)
    metrics.ingest_latency.observe(time.perf_counter() - started)
    ack = ReportAck(accepted=accepted, duplicates=dups, settings=settings)
    return web.Response(body=encode(ack), content_type="application/json")


def prune_history(conn: sqlite3.Connection, before: float) -> int:
    """Drop history older than the retention; the latest state stays on the server row.
    Camera events are kept at least 31 days, which the 30-day availability needs."""
    n = conn.execute("DELETE FROM reports WHERE received_at < ?", (before,)).rowcount
    events_before = min(before, time.time() - 31 * 86400)
    n += conn.execute("DELETE FROM camera_events WHERE at < ?", (events_before,)).rowcount
    return n


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/agent/reports", post_reports)
