"""Volume use as ``df`` shows it: used / (used + available), reserved blocks excluded."""

from __future__ import annotations

import os

import psutil

from collector.health import status
from collector.health.status import StateSummary, VolumeSummary, used_percent


def test_a_full_ext4_volume_is_100_percent_and_critical() -> None:
    # 1000 blocks, 5 % reserved for root: 950 used, nothing available to the recorder.
    full = VolumeSummary(mountpoint="/video", total=1000, used=950, free=0, recording=True)
    assert used_percent(full.used, full.free) == 100.0
    st = status.evaluate(
        now=100.0,
        last_seen=99.0,
        revoked_at=None,
        interval_s=60,
        offline_after_intervals=3,
        state=StateSummary(volumes=[full]),
    )
    assert st.status == "critical" and "volume /video is 100% full" in st.reasons


def test_the_same_share_as_psutil_and_statvfs_on_this_machine() -> None:
    u = psutil.disk_usage("/")
    assert round(used_percent(u.used, u.free), 1) == round(u.percent, 1)
    sv = os.statvfs("/")
    used = (sv.f_blocks - sv.f_bfree) * sv.f_frsize
    avail = sv.f_bavail * sv.f_frsize
    # df's Use% is used / (used + avail), rounded up.
    assert abs(used_percent(used, avail) - 100.0 * used / (used + avail)) < 1e-9
