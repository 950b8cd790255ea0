"""The per-report counters kept as plain numbers expose exactly what
``prometheus_client``'s own counter and histogram expose for the same observations."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from collector.http.metrics import LATENCY_BUCKETS, Metrics


def samples(text: bytes, prefix: str) -> list[str]:
    return [
        line
        for line in text.decode().splitlines()
        if line.startswith(prefix) and "_created" not in line
    ]


@settings(max_examples=40, deadline=None)
@given(
    latencies=st.lists(
        st.one_of(st.sampled_from(LATENCY_BUCKETS), st.floats(0, 10, allow_nan=False)),
        max_size=30,
    ),
    received=st.lists(st.integers(0, 5), max_size=10),
)
def test_tallies_expose_what_prometheus_client_would(
    latencies: list[float], received: list[int]
) -> None:
    ours = Metrics()
    reference = CollectorRegistry()
    hist = Histogram(
        "vigil_ingest_latency_seconds", "x", buckets=LATENCY_BUCKETS, registry=reference
    )
    count = Counter("vigil_reports_received", "x", registry=reference)
    for value in latencies:
        ours.ingest_latency.observe(value)
        hist.observe(value)
    for n in received:
        ours.reports_received.inc(n)
        count.inc(n)
    mine, theirs = ours.render(), generate_latest(reference)
    for prefix in ("vigil_ingest_latency_seconds_bucket", "vigil_reports_received_total"):
        assert samples(mine, prefix) == samples(theirs, prefix)
    mine_sum = samples(mine, "vigil_ingest_latency_seconds_sum")[0].split()[1]
    theirs_sum = samples(theirs, "vigil_ingest_latency_seconds_sum")[0].split()[1]
    assert abs(float(mine_sum) - float(theirs_sum)) <= 1e-9 * max(1.0, float(theirs_sum))
