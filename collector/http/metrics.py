"""Prometheus metrics of one collector process (``GET /metrics``).

What every report moves (reports received, duplicates, inventories left out, refusals,
the ingest latency) is counted in plain numbers (:class:`Tally`, :class:`LatencyTally`)
and handed to the registry when it is scraped (:class:`_Tallies`): ``prometheus_client``'s
own counters and histograms take a lock on every change, which cost about 1.4 µs of every
report for numbers read once in a while. The collector's event loop is one thread, the
only one that counts, so a plain ``+=`` is safe. The exposition is the same.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from collector.health.status import STATUSES

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Tally:
    """A counter kept as a plain number (``inc`` as ``prometheus_client.Counter``'s)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class LatencyTally:
    """A histogram kept as plain numbers: a count per bucket and the sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # bucket "le": value <= bound
        self.sum += value


_COUNTERS = (
    ("reports_received", "vigil_reports_received", "Health reports accepted and stored"),
    (
        "reports_duplicate",
        "vigil_reports_duplicate",
        "Reports received again (a retry) and not stored twice",
    ),
    (
        "reports_cameras_unchanged",
        "vigil_reports_cameras_unchanged",
        "Reports whose agent left out its camera inventory as unchanged",
    ),
)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _Tallies:
    """A registry collector reading the plain tallies of :class:`Metrics` when scraped."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._m
        for attr, name, doc in _COUNTERS:
            family = CounterMetricFamily(name, doc)
            family.add_metric([], getattr(m, attr).value)
            yield family
        rejected = CounterMetricFamily(
            "vigil_requests_rejected", "Requests refused, by reason", labels=["reason"]
        )
        for reason, count in sorted(m.rejected_by_reason.items()):
            rejected.add_metric([reason], count)
        yield rejected
        lat = m.ingest_latency
        buckets: list[tuple[str, float]] = []
        seen = 0
        for bound, count in zip((*lat.bounds, float("inf")), lat.counts, strict=True):
            seen += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), seen))
        latency = HistogramMetricFamily(
            "vigil_ingest_latency_seconds",
            "Time from a report batch's arrival to its durable commit",
        )
        latency.add_metric([], buckets, lat.sum)
        yield latency


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.reports_received = Tally()
        self.reports_duplicate = Tally()
        self.reports_cameras_unchanged = Tally()
        self.rejected_by_reason: dict[str, int] = {}
        self.ingest_latency = LatencyTally(LATENCY_BUCKETS)
        r.register(_Tallies(self))
        self.ingest_in_flight = Gauge(
            "vigil_ingest_batches_in_flight",
            "Report batches held now (authenticated, not yet committed); past "
            "[collector] ingest_max_pending the next is answered 429",
            registry=r,
        )
        self.servers = Gauge("vigil_servers", "Enrolled servers by status", ["status"], registry=r)
        self.enrollments = Counter("vigil_enrollments", "Agents enrolled", registry=r)

    def rejected(self, reason: str) -> None:
        self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1

    def set_servers_by_status(self, counts: dict[str, int]) -> None:
        for status in STATUSES:
            self.servers.labels(status=status).set(counts.get(status, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
