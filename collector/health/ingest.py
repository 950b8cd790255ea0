"""Receiving health reports: validate, store exactly once, acknowledge with settings.

A report is decoded and validated whole, then reduced at once to what will be written
(a few strings and numbers, :class:`Prepared`), and the decoded structures are dropped
before the request waits for the group commit. Keeping 64 decoded camera lists alive
per request while commits are in flight made every decode several times slower (the
allocator kept handing out cold memory); measured in ``docs/benchmarks.md``.

Camera details travel on only when the server's camera digest differs from the last
one this process stored; the write compares with the database, so several processes
stay right (a stale memory costs one report's delay, never a lost change). An agent
whose inventory is the one acknowledged last leaves it out (``cameras_unchanged``): the
acknowledgement carries the digest the database holds, and a report whose digest is not
that one changes no camera (the agent sends the whole inventory next time).
"""

from __future__ import annotations

import sqlite3
import time
from typing import NamedTuple

import msgspec
from aiohttp import web

from collector import entitlements
from collector.health import cameras, health_incidents, history, servers
from collector.health.agent_settings import settings_for
from collector.health.ingest_gate import INGEST_GATE, IngestGate
from collector.http import openapi, replay
from collector.http.appkeys import METRICS
from collector.http.auth import agent_of, body_of
from collector.http.bodies import parse
from collector.http.errors import ApiError
from collector.notify import events as notify_events
from collector.notify import sources as notify_sources
from protocol import limits, routes
from protocol.camera_digest import cameras_digest
from protocol.messages import Camera, Disk, Report, ReportAck, ReportBatch, Volume, encode

_encode = msgspec.json.encode

DIGESTS: web.AppKey[dict[str, str]] = web.AppKey("camera_digests", dict)
"""Last camera digest this process stored, per server."""
REPORT_WRITES: web.AppKey[replay.NonceGroup] = web.AppKey("report_writes", replay.NonceGroup)
"""The write group every report batch of this process is stored in."""


class Prepared(NamedTuple):
    """One report, reduced to what the write needs."""

    report_id: str
    seq: int
    collected_at: float
    cpu_percent: float | None
    memory_percent: float | None
    volumes_compact: str
    state: str
    hostname: str
    agent_version: str
    os: str
    dropped_reports: int
    camera_digest: str | None
    cameras: list[Camera] | None
    """Only when the digest may have changed; None otherwise."""
    filling_volumes: list[Volume]
    """Recording volumes forecast full within 48 hours (they open incidents)."""
    disks: list[Disk] | None = None
    """SMART health per disk (None: not read): a failing one opens a ``disk_failing``
    incident, all passing clears it."""
    counts_stored: bool = False
    """The cameras were left out as unchanged: ``state`` lacks ``camera_counts``, which
    the write copies from the server's stored state."""


def check_bounds(batch: ReportBatch, now: float) -> None:
    """Refuse what the schema alone cannot: a volume using more than it holds, a report
    from the future. Agents measure these; a report that says otherwise is not stored,
    and the 400 names the field so the agent's log shows what is wrong."""
    for i, rep in enumerate(batch.reports):
        if rep.collected_at > now + limits.MAX_FUTURE_S:
            raise ApiError(
                400,
                "invalid_field",
                f"report collected at {rep.collected_at:.0f}, more than "
                f"{limits.MAX_FUTURE_S} s after the collector's clock: check the server's clock",
                field=f"$.reports[{i}].collected_at",
            )
        for j, vol in enumerate(rep.volumes):
            if vol.used > vol.total or vol.free > vol.total:
                raise ApiError(
                    400,
                    "invalid_field",
                    f"volume {vol.mountpoint!r}: used ({vol.used}) and free ({vol.free}) "
                    f"must each be at most total ({vol.total})",
                    field=f"$.reports[{i}].volumes[{j}]",
                )


def _heartbeat(rep: Report, heartbeat_only: str) -> Prepared:
    host = rep.host
    # Not entitled to health monitoring: the partner sees that the server is alive
    # and why nothing more is shown, and no health data is kept. The software product,
    # version and modules are kept: every plan's version entitlement and the SMA
    # price basis are checked against them.
    sw = rep.software
    state = {
        "collected_at": rep.collected_at,
        "seq": rep.seq,
        "host": {"hostname": host.hostname, "agent_version": host.agent_version},
        "software": {"product": sw.product, "version": sw.version, "modules": sw.modules},
        "heartbeat_only": heartbeat_only,
    }
    return Prepared(
        report_id=rep.report_id,
        seq=rep.seq,
        collected_at=rep.collected_at,
        cpu_percent=None,
        memory_percent=None,
        volumes_compact="[]",
        state=_encode(state).decode(),
        hostname=host.hostname,
        agent_version=host.agent_version,
        os=host.os,
        dropped_reports=rep.dropped_reports,
        camera_digest=None,
        cameras=None,
        filling_volumes=[],
    )


def prepare(rep: Report, heartbeat_only: str, known_digest: str | None) -> Prepared:
    if heartbeat_only:
        return _heartbeat(rep, heartbeat_only)
    host = rep.host
    digest = counts = None
    keep: list[Camera] | None = None
    counts_stored = False
    if rep.cameras is not None:
        digest = rep.cameras_digest or cameras_digest(rep.cameras)
        counts = cameras.counts(rep.cameras)
        keep = None if digest == known_digest else rep.cameras
    elif rep.cameras_unchanged and rep.cameras_digest:
        digest = rep.cameras_digest
        counts_stored = True
    state = {
        "collected_at": rep.collected_at,
        "seq": rep.seq,
        "host": host,
        "volumes": rep.volumes,
        "software": rep.software,
        "disks": rep.disks,
        "dropped_reports": rep.dropped_reports,
        "firmware_check": rep.firmware_check,
    }
    if not counts_stored:
        state["camera_counts"] = counts
    volumes = _encode(
        [[v.mountpoint, v.total, v.used, v.free, int(v.recording)] for v in rep.volumes]
    ).decode()
    filling = health_incidents.filling(rep.volumes, rep.collected_at)
    return Prepared(
        report_id=rep.report_id,
        seq=rep.seq,
        collected_at=rep.collected_at,
        cpu_percent=host.cpu_percent,
        memory_percent=host.memory_percent,
        volumes_compact=volumes,
        state=_encode(state).decode(),
        hostname=host.hostname,
        agent_version=host.agent_version,
        os=host.os,
        dropped_reports=rep.dropped_reports,
        camera_digest=digest,
        cameras=keep,
        filling_volumes=filling,
        disks=rep.disks,
        counts_stored=counts_stored,
    )


class _StoredCounts(msgspec.Struct):
    camera_counts: dict[str, int] | None = None


_read_counts = msgspec.json.Decoder(_StoredCounts)


def _with_stored_counts(state: str, stored_state: str | None) -> tuple[str, bool]:
    """``state`` (a JSON object without ``camera_counts``) with the stored state's, and
    whether there were any (a heartbeat-only state has none)."""
    counts = _read_counts.decode(stored_state).camera_counts if stored_state else None
    return f'{state[:-1]},"camera_counts":{_encode(counts).decode()}}}', counts is not None


class Batch(NamedTuple):
    """One request's reports, as the write takes them."""

    server_id: str
    reports: list[Prepared]
    received_at: float
    told_interval_s: int | None = None
    """The report interval this batch's acknowledgement tells the agent."""


Stored = tuple[list[str], list[str], str | None]
"""(accepted ids, duplicate ids, the camera digest now stored or None if unknown)."""


def store_batch(
    conn: sqlite3.Connection,
    server_id: str,
    reports: list[Prepared],
    received_at: float,
    told_interval_s: int | None = None,
) -> Stored:
    """Store each report not yet stored (:func:`store_batches` of one batch)."""
    return store_batches(conn, [Batch(server_id, reports, received_at, told_interval_s)])[0]


def _insert_reports(conn: sqlite3.Connection, batches: list[Batch]) -> set[tuple[str, str]]:
    """Insert every report row that is not there yet; the (server, report id) inserted."""
    return history.insert_new(
        conn,
        [
            (
                b.server_id,
                rep.report_id,
                rep.seq,
                rep.collected_at,
                b.received_at,
                rep.cpu_percent,
                rep.memory_percent,
                rep.volumes_compact,
            )
            for b in batches
            for rep in b.reports
        ],
    )


def store_batches(conn: sqlite3.Connection, batches: list[Batch]) -> list[Stored]:
    """Store each report of each batch not yet stored; per batch, what :data:`Stored` says.

    The primary key (server, report id) is what makes a retried report land once. The
    server's latest state moves forward only with a newer report (by sequence number),
    so a late retry never overwrites fresher state. A change of the told report
    interval owes one new interval of grace until the next report
    (``servers.told_grace_s``). The batches of a group commit are written together:
    one query reads every server's position, one insert per hundred reports, one
    statement moves the servers' rows (what a newer report changes besides, cameras
    and incidents, is written per report as before).
    """
    ids = [b.server_id for b in batches]
    positions = servers.report_positions(conn, ids)
    for sid in notify_events.servers_with_conditions(conn, ids):
        if sid in positions:
            positions[sid].conditions = True
    inserted = _insert_reports(conn, batches)
    moves: list[tuple[object, ...]] = []
    moved: set[str] = set()
    out: list[Stored] = []
    for b in batches:
        pos = positions.setdefault(b.server_id, servers.ReportPosition())
        accepted: list[str] = []
        duplicates: list[str] = []
        for rep in b.reports:
            key = (b.server_id, rep.report_id)
            if key not in inserted:
                duplicates.append(rep.report_id)
                continue
            inserted.discard(key)  # the same report again in this write: a duplicate
            accepted.append(rep.report_id)
            if rep.seq <= pos.last_seq:
                servers.count_late_report(conn, b.server_id)
                continue
            if b.server_id in moved:  # this server's earlier report is moved first
                servers.record_reports(conn, moves)
                moves.clear()
                moved.clear()
            moves.append(_newest(conn, b, rep, pos))
            moved.add(b.server_id)
        out.append((accepted, duplicates, pos.digest))
    servers.record_reports(conn, moves)
    return out


def _newest(
    conn: sqlite3.Connection, b: Batch, rep: Prepared, pos: servers.ReportPosition
) -> tuple[object, ...]:
    """A report newer than any stored: its effects written, ``pos`` moved on; the
    parameters that move the server's row."""
    gap = max(0, rep.seq - pos.last_seq - 1) if pos.last_seq else 0
    pos.last_seq = rep.seq
    state = rep.state
    if rep.counts_stored:
        state, counted = _with_stored_counts(state, pos.state)
        if not counted:
            pos.digest = None  # nothing to carry over: ask for the whole inventory
    pos.state = state
    pos.digest = _newest_report_effects(
        conn, b.server_id, rep, b.received_at, pos.digest, pos.conditions
    )
    pos.conditions = pos.conditions or bool(rep.filling_volumes) or bool(rep.disks)
    reported = servers.ReportedState(
        rep.seq, gap, rep.dropped_reports, rep.hostname, rep.agent_version, rep.os, state
    )
    return servers.record_params(b.server_id, b.received_at, reported, b.told_interval_s)


class ReportWrites:
    """The write group of report batches (``Database.write_grouped``): the items of a
    commit stored by :func:`store_batches` together."""

    def run(self, conn: sqlite3.Connection, items: list[Batch]) -> list[tuple[bool, Stored]]:
        return [(True, stored) for stored in store_batches(conn, items)] if items else []


def _newest_report_effects(
    conn: sqlite3.Connection,
    server_id: str,
    rep: Prepared,
    received_at: float,
    stored_digest: str | None,
    conditions: bool = True,
) -> str | None:
    """What a report newer than any stored changes besides the server's row: cameras,
    health incidents, notifications (``conditions`` False: the server has no active
    notification condition to end). Returns the camera digest now stored."""
    if rep.camera_digest is not None and rep.camera_digest != stored_digest:
        if rep.cameras is None:
            # Another process moved on, or the agent left out an inventory this
            # database does not hold: no camera changes; the acknowledgement's
            # digest makes the agent send the whole inventory next time.
            stored_digest = None
        else:
            changes = cameras.apply_report(
                conn, server_id, rep.cameras, rep.collected_at, rep.camera_digest
            )
            stored_digest = rep.camera_digest
            health_incidents.cameras_changed(conn, server_id, changes, rep.collected_at)
            notify_sources.cameras_changed(conn, server_id, changes, rep.collected_at)
    health_incidents.volumes_filling(conn, server_id, rep.filling_volumes, rep.collected_at)
    failing = tuple(d for d in rep.disks or [] if d.health == "failing")
    health_incidents.disks_failing(conn, server_id, failing, rep.collected_at)
    notify_sources.report_stored(
        conn, server_id, rep.filling_volumes, received_at, failing, conditions=conditions
    )
    if rep.disks and all(d.health == "passed" for d in rep.disks):
        health_incidents.disks_healthy(conn, server_id, rep.collected_at)
    return stored_digest


@replay.nonce_in_write
@openapi.documented(
    openapi.operation(
        "Upload health reports (idempotent by report_id)",
        body="ReportBatch",
        response="ReportAck",
        auth="agent",
        busy=True,
    )
)
async def post_reports(request: web.Request) -> web.Response:
    with request.app[INGEST_GATE].admit(request.app):
        return await _ingest(request)


async def _ingest(request: web.Request) -> web.Response:
    started = time.perf_counter()
    agent = agent_of(request)
    app = request.app
    batch = parse(await body_of(request), ReportBatch, limits.MAX_BATCH_BYTES)
    check_bounds(batch, time.time())
    monitoring = entitlements.answer(app, agent.server_id, entitlements.MONITORING)
    heartbeat_only = "" if monitoring.entitled else monitoring.reason or "not entitled"
    digests = app[DIGESTS]
    known = digests.get(agent.server_id)
    prepared = [prepare(r, heartbeat_only, known) for r in batch.reports]
    unchanged = sum(1 for r in batch.reports if r.cameras_unchanged)
    del batch  # free the decoded structures before waiting for the commit
    # The settings this acknowledgement carries, first: the report interval they tell the
    # agent is stored with the report (offline is judged against it).
    settings = await settings_for(app, agent.server_id)
    received = time.time()
    # The request's nonce is taken in this write: one commit per report batch, written
    # together with the other batches of that commit.
    accepted, dups, digest = await replay.write_grouped_with_nonce(
        request,
        app[REPORT_WRITES],
        Batch(agent.server_id, prepared, received, settings.report_interval_s),
    )
    if digest is None:
        digests.pop(agent.server_id, None)
    else:
        digests[agent.server_id] = digest
    metrics = app[METRICS]
    metrics.reports_received.inc(len(accepted))
    if dups:
        metrics.reports_duplicate.inc(len(dups))
    if unchanged:
        metrics.reports_cameras_unchanged.inc(unchanged)
    metrics.ingest_latency.observe(time.perf_counter() - started)
    # A heartbeat-only server's cameras are not kept: it is never told it may leave
    # them out, so the first report after monitoring returns carries them.
    ack = ReportAck(
        accepted=accepted,
        duplicates=dups,
        settings=settings,
        cameras_digest=None if heartbeat_only else digest,
    )
    return web.Response(body=encode(ack), content_type="application/json")


def prune_history(conn: sqlite3.Connection, before: float) -> int:
    """Drop history older than the retention; the latest state stays on the server row.
    Camera events are kept at least 31 days, which the 30-day availability needs."""
    n = history.prune_received_before(conn, before)
    events_before = min(before, time.time() - 31 * 86400)
    n += cameras.prune_events(conn, events_before)
    return n


def setup_routes(app: web.Application) -> None:
    app[DIGESTS] = {}
    app[REPORT_WRITES] = replay.NonceGroup(ReportWrites())
    gate = app[INGEST_GATE] = IngestGate()
    gate.watch(app)
    app.router.add_post(routes.REPORTS, post_reports)
