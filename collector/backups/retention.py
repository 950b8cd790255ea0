"""Which backups to keep: restic ``forget`` semantics, as a pure function.

- ``keep_last n``: the ``n`` newest backups.
- ``keep_hourly/daily/weekly/monthly/yearly n``: for the last ``n`` hours / days / ISO weeks
  (Monday to Sunday) / months / years *that have one or more backups*, the newest backup in
  each. Periods are natural calendar boundaries in ``tz`` (UTC by default: the collector
  does not know a recording server's zone; see ``docs/backup-storage.md``).
- The rules are ORed: a backup kept by any rule is kept.
- As restic does since 0.17: when a period rule finds fewer periods than ``n``, the oldest
  backup is kept as well (reason ``oldest daily`` etc.), so a young history is not thinned.
- A negative count means unlimited (restic's ``unlimited``).

Vigil adds two guarantees on top:

- the newest verified full backup is always kept, whatever the policy;
- an ``unchanged`` record that is kept keeps the backup it points at (``base_seq``, followed
  through chains), or a restore of "latest" would find nothing.

Records that cannot be restored (corrupt, or pointing at a base that is gone or corrupt)
are never counted by the rules; they are removed unless something above keeps them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

UTC = dt.UTC


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0

    def is_empty(self) -> bool:
        return not any(
            (
                self.keep_last,
                self.keep_hourly,
                self.keep_daily,
                self.keep_weekly,
                self.keep_monthly,
                self.keep_yearly,
            )
        )


@dataclass(frozen=True)
class Snapshot:
    """One catalog record as retention sees it."""

    id: str
    seq: int
    created_at: float
    kind: Literal["full", "unchanged"] = "full"
    status: str = "verified"
    base_seq: int | None = None


@dataclass
class RetentionPlan:
    keep: list[Snapshot] = field(default_factory=list)
    remove: list[Snapshot] = field(default_factory=list)
    reasons: dict[str, list[str]] = field(default_factory=dict)
    """Why each kept backup is kept (backup id -> reasons), as restic prints them."""


def _bucket_fns(tz: dt.tzinfo) -> dict[str, Callable[[float], int]]:
    def local(t: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(t, tz)

    def hourly(t: float) -> int:
        d = local(t)
        return ((d.year * 100 + d.month) * 100 + d.day) * 100 + d.hour

    def daily(t: float) -> int:
        d = local(t)
        return (d.year * 100 + d.month) * 100 + d.day

    def weekly(t: float) -> int:
        y, w, _ = local(t).isocalendar()
        return y * 100 + w

    def monthly(t: float) -> int:
        d = local(t)
        return d.year * 100 + d.month

    def yearly(t: float) -> int:
        return local(t).year

    return {
        "hourly": hourly,
        "daily": daily,
        "weekly": weekly,
        "monthly": monthly,
        "yearly": yearly,
    }


def restorable(snapshots: Iterable[Snapshot]) -> dict[int, Snapshot]:
    """seq -> record, for records a restore could use: verified full backups, and unchanged
    records whose ``base_seq`` chain ends at one."""
    by_seq = {s.seq: s for s in snapshots}
    ok: dict[int, Snapshot] = {}
    for s in by_seq.values():
        seen: set[int] = set()
        cur: Snapshot | None = s
        while cur is not None and cur.kind == "unchanged" and cur.seq not in seen:
            seen.add(cur.seq)
            cur = by_seq.get(cur.base_seq) if cur.base_seq is not None else None
        if cur is not None and cur.kind == "full" and cur.status == "verified":
            ok[s.seq] = s
    return ok


def _keep_buckets(
    candidates: list[Snapshot],
    name: str,
    count: int,
    bucket_of: Callable[[float], int],
    keep: Callable[[Snapshot, str], None],
) -> None:
    """Keep the newest of each of the ``count`` newest buckets (all when negative), and
    the oldest snapshot when fewer buckets exist than asked for."""
    left = count
    last: int | None = None
    for s in candidates:
        if left == 0:
            break
        b = bucket_of(s.created_at)
        if b != last:
            keep(s, f"{name} snapshot")
            last = b
            left -= 1
    if left > 0 and candidates:
        keep(candidates[-1], f"oldest {name} snapshot")


def _keep_bases(
    ordered: list[Snapshot],
    by_seq: dict[int, Snapshot],
    reasons: dict[str, list[str]],
    keep: Callable[[Snapshot, str], None],
) -> None:
    """A kept "unchanged" record keeps its base (and the base's base...)."""
    for s in ordered:
        if s.id in reasons and s.kind == "unchanged":
            cur = s
            seen: set[int] = set()
            while cur.kind == "unchanged" and cur.base_seq is not None and cur.seq not in seen:
                seen.add(cur.seq)
                base = by_seq.get(cur.base_seq)
                if base is None:
                    break
                keep(base, f"base of {s.seq}")
                cur = base


def plan_retention(
    snapshots: Sequence[Snapshot], policy: RetentionPolicy, tz: dt.tzinfo = UTC
) -> RetentionPlan:
    """Split one server's records into keep and remove (each newest first)."""
    by_seq = {s.seq: s for s in snapshots}
    ordered = sorted(snapshots, key=lambda s: (s.created_at, s.seq), reverse=True)
    good = restorable(snapshots)
    candidates = [s for s in ordered if s.seq in good]
    reasons: dict[str, list[str]] = {}

    def keep(s: Snapshot, why: str) -> None:
        reasons.setdefault(s.id, []).append(why)

    if policy.is_empty():
        # restic refuses an empty policy rather than removing everything; so do we.
        for s in ordered:
            keep(s, "no policy")
    for s in candidates[: policy.keep_last] if policy.keep_last >= 0 else candidates:
        keep(s, "last snapshot")
    buckets = _bucket_fns(tz)
    for name, count in (
        ("hourly", policy.keep_hourly),
        ("daily", policy.keep_daily),
        ("weekly", policy.keep_weekly),
        ("monthly", policy.keep_monthly),
        ("yearly", policy.keep_yearly),
    ):
        if count != 0:
            _keep_buckets(candidates, name, count, buckets[name], keep)

    newest_full = next((s for s in ordered if s.kind == "full" and s.status == "verified"), None)
    if newest_full is not None:
        keep(newest_full, "newest verified")
    _keep_bases(ordered, by_seq, reasons, keep)

    plan = RetentionPlan(reasons=reasons)
    for s in ordered:
        (plan.keep if s.id in reasons else plan.remove).append(s)
    return plan
