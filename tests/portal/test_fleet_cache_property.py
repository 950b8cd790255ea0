"""The kept fleet views answer exactly what a fresh fleet view answers, after any sequence
of reports, contract changes, backup policy changes and backup runs, revocations,
refused clocks and time passing (offline limits, backups falling due, volumes filling,
new days), for one partner and for every partner, and the fleet page's tiles, filter
choices and order kept with them are those of the fresh views."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from collector import secrets_store
from collector.backups import catalog
from collector.backups.policy import BackupPolicy
from collector.config import load_config
from collector.contracts import repository as repo
from collector.contracts.terms import Contract
from collector.health import servers
from collector.health.fleet import FleetView
from collector.health.fleet_cache import FleetCache
from collector.http.page_fleet import _summary
from collector.storage import open_database

T0 = 1_790_000_100.0
"""At a quarter hour: the kept answer may follow the clock for 900 s from here."""
N = 6
INTERVAL, OFFLINE_AFTER = 60, 3


def _state(used: int, full_in_days: float | None, down: int, t: float) -> str:
    video: dict[str, Any] = {
        "mountpoint": "/video",
        "total": 100,
        "used": used,
        "free": 100 - used,
        "recording": True,
    }
    if full_in_days is not None:
        video["full_at"] = t + full_in_days * 86400
    return json.dumps(
        {
            "collected_at": t,
            "volumes": [video],
            "software": {"product": "VMS", "version": f"2026.{down}"},
            "camera_counts": {"ok": 4, "unreachable": down},
        }
    )


def _fill(conn: Any) -> list[int]:
    pids = [secrets_store.add_partner(conn, name).id for name in ("p0", "p1")]
    for i in range(N):
        conn.execute(
            "INSERT INTO servers (id, partner_id, hostname, machine_id, licence_id, public_key, "
            "enrolled_at, last_seen, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                f"s{i}",
                pids[i % 2],
                f"host-{i}",
                f"m{i}",
                f"LIC-{i}",
                b"k" * 32,
                T0 - 400 * 86400,
                T0 - 30 * i,
                _state(50, 10 + i, 0, T0),
            ),
        )
    return pids


def _contract(i: int, plan: str, days_ago: int) -> Contract:
    start = dt.datetime.fromtimestamp(T0, dt.UTC).date() - dt.timedelta(days=days_ago)
    return Contract(
        id=f"C{i}",
        customer=f"cust{i % 3}",
        partner=f"p{i % 2}",
        plan=plan,
        licence_ids=(f"LIC-{i}",),
        start=start,
    )


server = st.integers(min_value=0, max_value=N - 1)
steps = st.one_of(
    st.tuples(
        st.just("report"),
        server,
        st.integers(0, 100),
        st.one_of(st.none(), st.floats(0, 30)),
        st.integers(0, 3),
    ),
    st.tuples(st.just("wait"), st.sampled_from([1, 59, 61, 181, 3600, 6 * 3600, 86400, 3 * 86400])),
    st.tuples(
        st.just("contract"),
        server,
        st.sampled_from(["maintenance-support", "warranty", "premium-24x7", None]),
        st.integers(0, 800),
    ),
    st.tuples(st.just("policy"), st.integers(0, 1), st.sampled_from([0, 120, 3600, 86400])),
    st.tuples(st.just("backup"), server, st.sampled_from(["stored", "failed", "ok"])),
    st.tuples(st.just("revoke"), server),
    st.tuples(st.just("clock"), server, st.sampled_from([None, 120.0])),
)


def _apply(conn: Any, step: tuple[Any, ...], t: float, pids: list[int]) -> None:
    kind = step[0]
    if kind == "report":
        _, i, used, full, down = step
        reported = servers.ReportedState(
            seq=int(t), gap=0, dropped_reports=0, hostname=f"host-{i}", agent_version="1",
            os="Debian", state=_state(used, full, down, t),
        )  # fmt: skip
        servers.record_report(conn, f"s{i}", t, reported, None)
    elif kind == "contract":
        _, i, plan, days_ago = step
        c = None if plan is None else _contract(i, plan, days_ago)
        repo.record_version(conn, f"C{i}", f"p{i % 2}", c, t, "test")
    elif kind == "policy":
        _, p, interval = step
        catalog.write_policy(
            conn, "partner", str(pids[p]), BackupPolicy(interval_s=interval, window=""), t
        )
    elif kind == "backup":
        _, i, what = step
        if what == "stored":
            catalog.note_stored(conn, f"s{i}", t)
        else:
            catalog.note_run(conn, f"s{i}", what, t, "disk full" if what == "failed" else "", t)
    elif kind == "revoke":
        servers.revoke(conn, f"s{step[1]}", t)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=st.lists(steps, min_size=1, max_size=14))
@example(  # a backup falls due while the kept answer follows the clock
    script=[("policy", 0, 120), ("backup", 0, "stored"), ("wait", 61), ("wait", 61)]
)
@example(  # a volume's forecast enters the warning window, then a report clears it
    script=[("report", 2, 50, 7.001, 0), ("wait", 181), ("report", 2, 50, None, 0)]
)
def test_kept_fleet_views_equal_fresh_ones(script: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = open_database(load_config(None, Path(tmp)))
        try:
            pids = db.write_sync(_fill)
            cache = FleetCache()
            offsets: dict[str, float] = {}
            t = T0

            def compare(conn: Any) -> None:
                for pid in (pids[0], pids[1], None):
                    kept_fleet = FleetView(conn, INTERVAL, OFFLINE_AFTER, dict(offsets))
                    kept = cache.views(kept_fleet, pid, t)
                    fresh = FleetView(conn, INTERVAL, OFFLINE_AFTER, dict(offsets)).all(pid, t)
                    assert kept == fresh, (pid, script)
                    summary = cache.derived(pid, "page", kept, _summary)
                    assert summary == _summary(fresh), (pid, script)

            db.read_sync(compare)
            for step in script:
                if step[0] == "wait":
                    t += step[1]
                elif step[0] == "clock":
                    _, i, off = step
                    if off is None:
                        offsets.pop(f"s{i}", None)
                    else:
                        offsets[f"s{i}"] = off
                else:
                    db.write_sync(lambda c, s=step, at=t: _apply(c, s, at, pids))
                db.read_sync(compare)
        finally:
            db.close()


def test_a_report_is_followed_without_building_the_fleet_anew(tmp_path: Path) -> None:
    """One server reporting changes only its own view: the kept answer follows it."""
    db = open_database(load_config(None, tmp_path))
    try:
        pids = db.write_sync(_fill)
        cache = FleetCache()
        fleet = lambda c: FleetView(c, INTERVAL, OFFLINE_AFTER)  # noqa: E731
        db.read_sync(lambda c: cache.views(fleet(c), pids[0], T0))
        step = ("report", 0, 99, 1.0, 2)
        db.write_sync(lambda c: _apply(c, step, T0 + 5, pids))
        kept = db.read_sync(lambda c: cache.views(fleet(c), pids[0], T0 + 5))
        fresh = db.read_sync(lambda c: fleet(c).all(pids[0], T0 + 5))
        assert kept == fresh
        assert (cache.builds, cache.hits) == (1, 1)
        s0 = next(v for v in kept if v["id"] == "s0")
        assert s0["status"] == "critical" and s0["software"]["version"] == "2026.2"
    finally:
        db.close()


def test_time_passing_is_followed_without_building_the_fleet_anew(tmp_path: Path) -> None:
    """An offline server's words, a server going offline: the kept answer follows the
    clock (until a new day may begin somewhere)."""
    db = open_database(load_config(None, tmp_path))
    try:
        db.write_sync(_fill)
        cache = FleetCache()
        fleet = lambda c: FleetView(c, INTERVAL, OFFLINE_AFTER)  # noqa: E731
        t = T0 - T0 % 900 + 901  # after T0, in the same quarter hour as T0 + 500
        for later in (0, 100, 200, 400):
            kept = db.read_sync(lambda c, at=t + later: cache.views(fleet(c), None, at))
            fresh = db.read_sync(lambda c, at=t + later: fleet(c).all(None, at))
            assert kept == fresh
        assert (cache.builds, cache.hits) == (1, 3)
        assert {v["status"] for v in kept} == {"offline"}
        assert kept[0]["status_reasons"][-1].startswith("no report for ")
    finally:
        db.close()
