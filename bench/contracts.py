"""Contract checks over a synthetic fleet: 100,000 servers with contracts and a month of
backup records, evaluated on one core against the budget (<= 10 s).

Run: ``.venv/bin/python bench/contracts.py [--servers N] [--seed S]``. Prints the figures
and the ratio to the budget; the build of the synthetic data is timed apart and not part
of the figure.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime as dt
import gc
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.contracts.calendar import CalendarSpec
from collector.contracts.checks import ServerFacts, SupportCase, evaluate
from collector.contracts.terms import Contract, Renewal

BUDGET_S = 10.0
PLANS = ("warranty", "maintenance-support", "sma", "premium-24x7")
CALENDARS = (
    None,
    CalendarSpec(subdiv="BY"),
    CalendarSpec(timezone="America/New_York", country="US"),
    CalendarSpec(timezone="Europe/London", country="GB", subdiv="ENG"),
)


def build(
    n: int, now: float, seed: int
) -> tuple[list[ServerFacts], list[Contract], list[SupportCase], dict]:
    rnd = random.Random(seed)
    servers: list[ServerFacts] = []
    contracts: list[Contract] = []
    cases: list[SupportCase] = []
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    month = 30 * 86400.0
    for i in range(n):
        plan = PLANS[i % 4]
        lic = f"L{i:06d}"
        start = today - dt.timedelta(days=rnd.randint(0, 800))
        installed = start - dt.timedelta(days=rnd.randint(0, 30))
        contracts.append(
            Contract(
                id=f"C{i:06d}",
                customer=f"cust{i // 10}",
                partner=f"p{i % 50}",
                plan=plan,
                licence_ids=(lic,),
                start=start,
                installed_on=installed,
                term_months=12 * rnd.randint(1, 3) if plan == "maintenance-support" else None,
                renewals=(Renewal(12),) if rnd.random() < 0.2 and plan != "sma" else (),
                cancelled_on=today - dt.timedelta(days=rnd.randint(0, 400))
                if rnd.random() < 0.05
                else None,
                calendar=CALENDARS[i % len(CALENDARS)],
            )
        )
        interval = 6 * 3600.0 if plan == "premium-24x7" else 86400.0
        t = now - month + rnd.random() * interval
        backups = []
        while t < now:
            if rnd.random() > 0.03:  # 3% of backups missing
                backups.append(t)
            t += interval
        if rnd.random() < 0.02:  # stopped backing up a week ago
            backups = [b for b in backups if b < now - 7 * 86400]
        servers.append(
            ServerFacts(
                server_id=f"s{i:06d}",
                licence_id=lic,
                machine_id="m" if rnd.random() > 0.01 else "moved",
                licensed_machine_id="m",
                installed_on=installed,
                last_seen=now - rnd.choice((30, 45, 90, 600, 4000)),
                uses_monitoring=True,
                uses_backup=bool(backups),
                product="VMS",
                version=rnd.choice(("6.0", "6.1", "6.2")),
                backups=backups,
                kept_backups=backups[-rnd.randint(3, 40) :] if backups else [],
            )
        )
        if rnd.random() < 0.1:
            for k in range(rnd.randint(1, 3)):
                cases.append(
                    SupportCase(f"case{i}-{k}", f"C{i:06d}", now - rnd.random() * 80 * 86400)
                )
    releases = {
        ("VMS", "6.0"): today - dt.timedelta(days=700),
        ("VMS", "6.1"): today - dt.timedelta(days=300),
        ("VMS", "6.2"): today - dt.timedelta(days=20),
    }
    return servers, contracts, cases, releases


def db_run(servers: list[ServerFacts], contracts: list[Contract], now: float) -> None:
    """The whole scheduled run over SQLite: gather (bulk reads), evaluate, persist."""
    import json
    import tempfile

    from collector.config import load_config
    from collector.contracts import repository, service
    from collector.storage import open_database

    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        db = open_database(load_config(None, tmp))
        t0 = time.perf_counter()

        def fill(conn: object) -> None:
            c = conn  # type: ignore[assignment]
            c.execute("INSERT INTO partners (id, name, created_at) VALUES (1, 'bench', 0)")
            state = json.dumps({"software": {"product": "VMS", "version": "6.1"}})
            c.executemany(
                "INSERT INTO servers (id, partner_id, hostname, machine_id, licence_id, "
                "public_key, enrolled_at, last_seen, reports_received, state) "
                "VALUES (?, 1, ?, ?, ?, x'00', ?, ?, 1, ?)",
                [
                    (
                        s.server_id,
                        s.server_id,
                        s.machine_id,
                        s.licence_id,
                        now - 90 * 86400,
                        s.last_seen,
                        state,
                    )
                    for s in servers
                ],
            )
            c.executemany(
                "INSERT INTO backup_runs (id, server_id, outcome, started_at, finished_at, "
                "received_at) VALUES (?, ?, 'ok', ?, ?, ?)",
                (
                    (f"{s.server_id}-{i}", s.server_id, t, t, t)
                    for s in servers
                    for i, t in enumerate(s.backups)
                ),
            )
            c.executemany(
                "INSERT INTO backups (id, server_id, seq, kind, created_at, stored_at, envelope, "
                "status) VALUES (?, ?, ?, 'full', ?, ?, '{}', 'verified')",
                (
                    (f"{s.server_id}-{i}", s.server_id, i, t, t)
                    for s in servers
                    for i, t in enumerate(s.kept_backups or ())
                ),
            )
            for k in contracts:
                repository.record_version(c, k.id, "bench", k, now, "bench")

        db.write_sync(fill)
        print(f"database filled in {time.perf_counter() - t0:.1f} s (not timed)")
        t1 = time.perf_counter()
        inputs = db.read_sync(lambda c: service.gather(c, now))
        t2 = time.perf_counter()
        result = service.compute(inputs)
        t3 = time.perf_counter()
        steps = service.persist_steps(inputs.stored_findings, result)
        longest = 0.0
        for step in steps:
            ts = time.perf_counter()
            db.write_sync(step)
            longest = max(longest, time.perf_counter() - ts)
        t4 = time.perf_counter()
        # A second run a minute later: only what changed is written.
        later = now + 60
        inputs2 = db.read_sync(lambda c: service.gather(c, later))
        result2 = service.compute(inputs2)
        steps2 = service.persist_steps(inputs2.stored_findings, result2)
        t5 = time.perf_counter()
        for step in steps2:
            db.write_sync(step)
        t6 = time.perf_counter()
        db.close()
    n = len(servers)
    print(
        f"db run for {n:,} servers: gather {t2 - t1:.2f} s, evaluate {t3 - t2:.2f} s, "
        f"persist {t4 - t3:.2f} s ({len(result.findings):,} findings, "
        f"{len(result.new_incidents):,} incidents) in {len(steps)} writes, longest "
        f"{longest * 1000:.0f} ms; total {t4 - t1:.2f} s"
    )
    print(f"second run 60 s later: persist {t6 - t5:.2f} s in {len(steps2)} writes")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--servers", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--db", action="store_true", help="also time gather/evaluate/persist over SQLite"
    )
    args = ap.parse_args()
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    except (AttributeError, OSError):
        pass
    now = time.time()
    t0 = time.perf_counter()
    servers, contracts, cases, releases = build(args.servers, now, args.seed)
    backups = sum(len(s.backups) for s in servers)
    print(
        f"built {len(servers):,} servers, {len(contracts):,} contracts, {backups:,} backup "
        f"records, {len(cases):,} support cases in {time.perf_counter() - t0:.1f} s (not timed)"
    )
    times = []
    findings: list = []
    for _ in range(args.repeat):
        gc.collect()
        t1 = time.perf_counter()
        findings = evaluate(servers, contracts, now, releases=releases, cases=cases)
        times.append(time.perf_counter() - t1)
    best = min(times)
    counts = collections.Counter(f.kind for f in findings)
    print(
        f"evaluate: runs {', '.join(f'{t:.2f}' for t in times)} s; best {best:.2f} s "
        f"= {len(servers) / best:,.0f} servers/s; {len(findings):,} findings"
    )
    print("findings by kind: " + ", ".join(f"{k} {v:,}" for k, v in counts.most_common()))
    worst = max(times)
    scaled = worst * 100_000 / len(servers)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine load average (1 min) {load:.2f} on {os.cpu_count()} cores")
    print(
        f"budget {BUDGET_S:.1f} s for 100,000 servers; worst run {scaled:.2f} s "
        f"(ratio {scaled / BUDGET_S:.2f} of budget), best {best * 100_000 / len(servers):.2f} s"
        f" -> {'OK' if scaled <= BUDGET_S else 'OVER'}"
    )
    if args.db:
        # With contracts whose partner is the bench partner (the API's ownership key).
        db_run(servers, [dataclasses.replace(c, partner="bench") for c in contracts], now)
    return 0 if scaled <= BUDGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
