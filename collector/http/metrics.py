"""Prometheus metrics of one collector process (``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from collector.health.status import STATUSES

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.reports_received = Counter(
            "vigil_reports_received", "Health reports accepted and stored", registry=r
        )
        self.reports_duplicate = Counter(
            "vigil_reports_duplicate",
            "Reports received again (a retry) and not stored twice",
            registry=r,
        )
        self.reports_cameras_unchanged = Counter(
            "vigil_reports_cameras_unchanged",
            "Reports whose agent left out its camera inventory as unchanged",
            registry=r,
        )
        self.requests_rejected = Counter(
            "vigil_requests_rejected", "Requests refused, by reason", ["reason"], registry=r
        )
        self.ingest_latency = Histogram(
            "vigil_ingest_latency_seconds",
            "Time from a report batch's arrival to its durable commit",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.ingest_in_flight = Gauge(
            "vigil_ingest_batches_in_flight",
            "Report batches held now (authenticated, not yet committed); past "
            "[collector] ingest_max_pending the next is answered 429",
            registry=r,
        )
        self.servers = Gauge("vigil_servers", "Enrolled servers by status", ["status"], registry=r)
        self.enrollments = Counter("vigil_enrollments", "Agents enrolled", registry=r)

    def rejected(self, reason: str) -> None:
        self.requests_rejected.labels(reason=reason).inc()

    def set_servers_by_status(self, counts: dict[str, int]) -> None:
        for status in STATUSES:
            self.servers.labels(status=status).set(counts.get(status, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
