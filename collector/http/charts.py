"""Charts for the pages, drawn on the server as inline SVG (no script, no style attribute).

The storage chart shows each volume's used share over time on a dated axis, and a dashed
forecast line from the last sample to the day the volume is full (or to the right edge,
when that day is further away than the chart reaches).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from markupsafe import escape

from collector.health.status import used_percent

COLOURS = ("#1d4ed8", "#b45309", "#047857", "#be185d", "#6d28d9", "#0e7490")
"""Line colours, each at least 4.5:1 against white."""
_W, _H = 720, 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 12, 10, 40


def _label(t: float, span: float) -> str:
    """A time on an axis ``span`` seconds wide: with the hour while its five ticks are
    less than two days apart (else two ticks could read the same day)."""
    if span < 3600:
        fmt = "%H:%M:%S"
    elif span < 2 * 86400:
        fmt = "%H:%M"
    elif span < 8 * 86400:
        fmt = "%d %b %H:%M"
    else:
        fmt = "%d %b"
    return datetime.fromtimestamp(t, UTC).strftime(fmt)


def _series(points: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """(time, used share) per mountpoint."""
    series: dict[str, list[tuple[float, float]]] = {}
    for p in points:
        for v in p["volumes"]:
            if v["total"]:
                share = used_percent(v["used"], v.get("free", v["total"] - v["used"])) / 100
                series.setdefault(v["mountpoint"], []).append((p["at"], share))
    return series


def _grid(
    x: Callable[[float], float], y: Callable[[float], float], t0: float, width: float
) -> list[str]:
    """Horizontal lines at each quarter of the share, and five time ticks."""
    parts = []
    for pct in (0, 25, 50, 75, 100):
        yy = y(pct / 100)
        parts.append(
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#d5d9de"/>'
            f'<text x="4" y="{yy + 4:.1f}" font-size="11" fill="#374151">{pct}%</text>'
        )
    for i in range(5):
        t = t0 + width * i / 4
        xx = x(t)
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        parts.append(
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{_H - _BOTTOM}" y2="{_H - _BOTTOM + 4}" '
            f'stroke="#374151"/><text x="{xx:.1f}" y="{_H - _BOTTOM + 16}" font-size="11" '
            f'fill="#374151" text-anchor="{anchor}">{_label(t, width)}</text>'
        )
    return parts


def storage_chart(points: list[dict[str, Any]], volumes: list[dict[str, Any]]) -> str:
    """Used share of each volume over time with its forecast, as an SVG line chart."""
    if len(points) < 2:
        return ""
    t0, t1 = points[0]["at"], points[-1]["at"]
    span = max(t1 - t0, 60.0)
    fulls = [v["full_at"] for v in volumes if v.get("full_at") and v["full_at"] > t1]
    end = min(max(fulls, default=t1), t1 + span) if fulls else t1
    width = max(end - t0, 1.0)

    def x(t: float) -> float:
        return _LEFT + (t - t0) / width * (_W - _LEFT - _RIGHT)

    def y(share: float) -> float:
        return _TOP + (1 - share) * (_H - _TOP - _BOTTOM)

    series = _series(points)
    parts = [
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-labelledby="chart-title"><title id="chart-title">Storage used per volume, '
        f"{_label(t0, span)} to {_label(t1, span)}, with the forecast to the full date</title>"
        f'<rect width="{_W}" height="{_H}" fill="#fff"/>'
    ]
    parts.extend(_grid(x, y, t0, width))
    by_mount = {v["mountpoint"]: v for v in volumes}
    for i, (name, pts) in enumerate(sorted(series.items())):
        c = COLOURS[i % len(COLOURS)]
        line = " ".join(f"{x(t):.1f},{y(s):.1f}" for t, s in pts)
        parts.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{line}"/>')
        vol = by_mount.get(name, {})
        full_at = vol.get("full_at")
        if full_at and full_at > t1:
            last_t, last_s = pts[-1]
            stop = min(full_at, end)
            share = last_s + (1 - last_s) * (stop - last_t) / max(full_at - last_t, 1.0)
            parts.append(
                f'<line x1="{x(last_t):.1f}" y1="{y(last_s):.1f}" x2="{x(stop):.1f}" '
                f'y2="{y(share):.1f}" stroke="{c}" stroke-width="2" stroke-dasharray="6 4"/>'
            )
        parts.append(
            f'<text x="{_LEFT + i * 150}" y="{_H - 6}" font-size="12" fill="{c}">'
            f"■ {escape(name)}</text>"
        )
    parts.append(
        f'<text x="{_W - _RIGHT}" y="{_H - 6}" font-size="11" fill="#374151" '
        'text-anchor="end">- - - forecast</text></svg>'
    )
    return "".join(parts)


def availability_strip(share: float | None) -> str:
    """The CSS classes of a camera's availability cell (good, fair, poor, unknown)."""
    if share is None:
        return "av unknown"
    if share >= 0.99:
        return "av good"
    return "av fair" if share >= 0.95 else "av poor"
