"""Cameras per server: store what changed, keep every verdict change, compute availability.

A 64-camera report at 2,000 reports/s cannot upsert every camera every time. The
server row keeps a digest of its cameras' inventory and verdicts; only when the digest
of an incoming report differs are the rows compared and the changed ones written. The
comparison happens inside the write, against the database, so several collector
processes never skip a change because of a stale memory.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from collections.abc import Iterable
from typing import NamedTuple

from collector.health import servers
from protocol.camera_digest import cameras_digest, stable_json
from protocol.messages import Camera

UP_VERDICTS = frozenset({"ok", "degraded"})
"""A camera in these verdicts is recording-capable: it counts as available."""


def counts(cameras: Iterable[Camera]) -> dict[str, int]:
    return dict(Counter(c.verdict for c in cameras))


class Transition(NamedTuple):
    key: str
    before: str | None
    after: str


def apply_report(
    conn: sqlite3.Connection,
    server_id: str,
    cameras: list[Camera],
    at: float,
    digest: str | None = None,
) -> list[Transition]:
    """Write what changed since the stored rows; return the verdict changes, and keep
    ``digest`` (the agent's :func:`cameras_digest` of ``cameras``, computed if None) as
    the server's. Callers skip the call when the digest is the one already stored."""
    new_digest = digest or cameras_digest(cameras)
    stored = _stored(conn, server_id)
    changed: list[Transition] = []
    seen: set[str] = set()
    for cam in cameras:
        seen.add(cam.key)
        step = _apply_camera(conn, server_id, cam, stored.get(cam.key), at)
        if step is not None:
            changed.append(step)
    for key, old in stored.items():
        if key not in seen and old["removed_at"] is None:
            changed.append(Transition(key, old["verdict"], "removed"))
            _mark_removed(conn, server_id, key, old["verdict"], at)
    servers.set_cameras_digest(conn, server_id, new_digest)
    return changed


def _stored(conn: sqlite3.Connection, server_id: str) -> dict[str, sqlite3.Row]:
    return {
        r["key"]: r
        for r in conn.execute(
            "SELECT key, verdict, details, removed_at, clock_offset_s FROM cameras "
            "WHERE server_id = ?",
            (server_id,),
        )
    }


def _apply_camera(
    conn: sqlite3.Connection, server_id: str, cam: Camera, old: sqlite3.Row | None, at: float
) -> Transition | None:
    """Write one reported camera against its stored row; its verdict change, if any."""
    details = stable_json(cam)
    if old is not None and old["details"] == details and old["removed_at"] is None:
        if _offset_moved(old["clock_offset_s"], cam.clock_offset_s):
            conn.execute(
                "UPDATE cameras SET clock_offset_s = ? WHERE server_id = ? AND key = ?",
                (cam.clock_offset_s, server_id, cam.key),
            )
        return None
    if old is None:
        _insert_camera(conn, server_id, cam, details, at)
        _event(conn, server_id, cam, None, at)
        return Transition(cam.key, None, cam.verdict)
    verdict_changed = old["verdict"] != cam.verdict or old["removed_at"] is not None
    _update_camera(conn, server_id, cam, details, at, verdict_changed)
    if not verdict_changed:
        return None
    before = None if old["removed_at"] is not None else old["verdict"]
    _event(conn, server_id, cam, before, at)
    return Transition(cam.key, before, cam.verdict)


def _identity(cam: Camera) -> tuple[str, str, str, str]:
    """Manufacturer, model, firmware and serial, as the cameras table's columns."""
    return cam.manufacturer, cam.model, cam.firmware, cam.serial


def _insert_camera(
    conn: sqlite3.Connection, server_id: str, cam: Camera, details: str, at: float
) -> None:
    conn.execute(
        "INSERT INTO cameras (server_id, key, verdict, since, updated_at, manufacturer, "
        "model, firmware, serial, details, first_seen, clock_offset_s) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (server_id, cam.key, cam.verdict, at, at, *_identity(cam), details, at, cam.clock_offset_s),
    )


def _update_camera(
    conn: sqlite3.Connection,
    server_id: str,
    cam: Camera,
    details: str,
    at: float,
    verdict_changed: bool,
) -> None:
    conn.execute(
        "UPDATE cameras SET verdict = ?, since = CASE WHEN ? = 1 THEN ? ELSE since END, "
        "updated_at = ?, "
        "manufacturer = ?, model = ?, firmware = ?, serial = ?, details = ?, "
        "removed_at = NULL, clock_offset_s = ? WHERE server_id = ? AND key = ?",
        (
            cam.verdict,
            int(verdict_changed),
            at,
            at,
            *_identity(cam),
            details,
            cam.clock_offset_s,
            server_id,
            cam.key,
        ),
    )


def _mark_removed(
    conn: sqlite3.Connection, server_id: str, key: str, verdict: str, at: float
) -> None:
    conn.execute(
        "UPDATE cameras SET removed_at = ?, updated_at = ? WHERE server_id = ? AND key = ?",
        (at, at, server_id, key),
    )
    conn.execute(
        "INSERT INTO camera_events (server_id, key, at, from_verdict, to_verdict, reasons) "
        "VALUES (?, ?, ?, ?, 'removed', '[]')",
        (server_id, key, at, verdict),
    )


def count_with_verdicts(conn: sqlite3.Connection, server_id: str, verdicts: Iterable[str]) -> int:
    """How many of the server's present cameras have one of ``verdicts``."""
    wanted = sorted(verdicts)
    marks = ", ".join("?" for _ in wanted)
    row = conn.execute(
        f"SELECT COUNT(*) FROM cameras WHERE server_id = ? AND removed_at IS NULL "
        f"AND verdict IN ({marks})",
        (server_id, *wanted),
    ).fetchone()
    return int(row[0])


def prune_events(conn: sqlite3.Connection, before: float) -> int:
    """Drop verdict changes older than ``before``."""
    return conn.execute("DELETE FROM camera_events WHERE at < ?", (before,)).rowcount


def _offset_moved(old: float | None, new: float | None) -> bool:
    """Worth a write: measured now or no longer, or moved by a second or more (the offset
    changes a little on every probe; the digest leaves it out for that reason)."""
    if old is None or new is None:
        return (old is None) != (new is None)
    return abs(old - new) >= 1.0


def _event(
    conn: sqlite3.Connection, server_id: str, cam: Camera, old: str | None, at: float
) -> None:
    conn.execute(
        "INSERT INTO camera_events (server_id, key, at, from_verdict, to_verdict, reasons) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (server_id, cam.key, at, old, cam.verdict, json.dumps(cam.reasons)),
    )


# --- reading -----------------------------------------------------------------------------


def _version_key(text: str) -> tuple[tuple[int, object], ...]:
    """Natural order of firmware versions: 1.10 > 1.9, 2.0b < 2.0.1."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-_ ]+", text) if p)


def newest_firmware(conn: sqlite3.Connection, partner_id: int) -> dict[tuple[str, str], str]:
    """Newest firmware seen per (manufacturer, model) among ``partner_id``'s servers: one
    partner's cameras never reveal (or judge by) another partner's firmware."""
    best: dict[tuple[str, str], str] = {}
    for r in conn.execute(
        "SELECT DISTINCT c.manufacturer, c.model, c.firmware FROM cameras c "
        "JOIN servers s ON s.id = c.server_id "
        "WHERE s.partner_id = ? AND s.revoked_at IS NULL AND c.removed_at IS NULL "
        "AND c.firmware != '' AND c.model != ''",
        (partner_id,),
    ):
        k = (r[0], r[1])
        if k not in best or _version_key(r[2]) > _version_key(best[k]):
            best[k] = r[2]
    return best


def firmware_check_on(conn: sqlite3.Connection, server_id: str) -> int | None:
    """The server's partner id when its agent reports ``[cameras] firmware_check = true``
    (in its latest report), else None: the comparison is opt-in, as on the agent."""
    r = servers.partner_and_state(conn, server_id)
    if r is None:
        return None
    try:
        state = json.loads(r[1] or "{}")
    except ValueError:
        return None
    return r[0] if isinstance(state, dict) and state.get("firmware_check") is True else None


def availability(
    events: list[tuple[float, str | None, str]],
    now: float,
    window_s: float,
    first_seen: float,
    current: str,
) -> float | None:
    """Share of ``window_s`` before ``now`` the camera was up, from its verdict changes
    ``(at, from, to)`` in time order and its ``current`` verdict. None when the camera was
    not yet known."""
    start = now - window_s
    if first_seen >= now:
        return None
    span_start = max(start, first_seen)
    later = [e for e in events if e[0] > span_start]
    state: str | None = later[0][1] if later else current
    up = 0.0
    cursor = span_start
    for at, _from, to in later:
        if at >= now:
            break
        if state in UP_VERDICTS:
            up += at - cursor
        cursor = at
        state = to
    if state in UP_VERDICTS:
        up += now - cursor
    total = now - span_start
    return None if total <= 0 else round(up / total, 4)


WINDOWS = {"24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}


def list_cameras(conn: sqlite3.Connection, server_id: str, now: float) -> list[dict[str, object]]:
    """The server's current cameras with their latest details and availability."""
    partner_id = firmware_check_on(conn, server_id)
    newest = {} if partner_id is None else newest_firmware(conn, partner_id)
    events: dict[str, list[tuple[float, str | None, str]]] = {}
    for r in conn.execute(
        "SELECT key, at, from_verdict, to_verdict FROM camera_events "
        "WHERE server_id = ? AND at >= ? ORDER BY at, id",
        (server_id, now - WINDOWS["30d"]),
    ):
        events.setdefault(r[0], []).append((r[1], r[2], r[3]))
    out: list[dict[str, object]] = []
    for r in conn.execute(
        "SELECT key, verdict, since, updated_at, details, first_seen, manufacturer, model, "
        "firmware, clock_offset_s "
        "FROM cameras WHERE server_id = ? AND removed_at IS NULL ORDER BY key",
        (server_id,),
    ):
        details = json.loads(r["details"])
        reasons = list(details.get("reasons", []))
        verdict = r["verdict"]
        latest = newest.get((r["manufacturer"], r["model"]))
        firmware_outdated = bool(
            latest and r["firmware"] and _version_key(r["firmware"]) < _version_key(latest)
        )
        if firmware_outdated:
            # A note, not a verdict: every view (fleet row, server view, API, this table)
            # counts the verdicts the agent reported, the same way.
            reasons.append(
                f"firmware {r['firmware']} is older than {latest}, the newest seen for this model"
            )
        evs = events.get(r["key"], [])
        details.update(
            verdict=verdict,
            reported_verdict=r["verdict"],
            reasons=reasons,
            since=r["since"],
            updated_at=r["updated_at"],
            firmware_outdated=firmware_outdated,
            newest_firmware=latest,
            clock_offset_s=None if r["clock_offset_s"] is None else round(r["clock_offset_s"], 1),
            availability={
                name: availability(evs, now, span, r["first_seen"], r["verdict"])
                for name, span in WINDOWS.items()
            },
        )
        out.append(details)
    return out


def events_for(
    conn: sqlite3.Connection, server_id: str, since: float, limit: int = 500
) -> list[dict[str, object]]:
    return [
        {"camera": r[0], "at": r[1], "from": r[2], "to": r[3], "reasons": json.loads(r[4])}
        for r in conn.execute(
            "SELECT key, at, from_verdict, to_verdict, reasons FROM camera_events "
            "WHERE server_id = ? AND at >= ? ORDER BY at DESC, id DESC LIMIT ?",
            (server_id, since, limit),
        )
    ]
