"""Back-pressure on report ingest: a bound on the report batches one process holds.

Every report batch this process has authenticated and not yet answered holds its body,
its reduced reports and a place in the group commit's queue. Without a bound, a fleet
that comes back at once (the collector restarted, a network outage healed and every
spool drains) grows that queue and every request's latency with it until agents time
out and send everything again. With it, the batch past ``[collector]
ingest_max_pending`` is answered at once ``429 ingest_busy`` with ``Retry-After:
ingest_retry_after_s``; nothing of it is stored, so the agent keeps the reports in its
spool and sends them after the wait (plus jitter, so a refused crowd does not come back
in step).

The gate stands after authentication, in the handler: a client without a session cannot
take places from the agents, and the refusal still saves what costs most (decoding,
validating and writing the reports). Both keys are read per request, so a reload
(SIGHUP) changes them at once.
"""

from __future__ import annotations

from types import TracebackType

from aiohttp import web

from collector.http.appkeys import CONFIG, METRICS
from collector.http.errors import ApiError


class IngestGate:
    """How many report batches are in flight in this process. The Prometheus gauge reads
    the count when scraped (a gauge moved twice per report cost more than the count)."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.refused = 0

    def watch(self, app: web.Application) -> None:
        """Have the app's ``vigil_ingest_batches_in_flight`` gauge read this gate."""
        app[METRICS].ingest_in_flight.set_function(lambda: self.in_flight)

    def admit(self, app: web.Application) -> _Place:
        """A place for one batch while the ``with`` block runs, or the 429 refusal."""
        cfg = app[CONFIG]
        if self.in_flight >= cfg.ingest_max_pending:
            self.refused += 1
            app[METRICS].rejected("ingest_busy")
            wait = cfg.ingest_retry_after_s
            raise ApiError(
                429,
                "ingest_busy",
                f"the collector holds {self.in_flight} report batches already; "
                f"retry in {wait} s (the reports stay in the agent's spool)",
                headers={"Retry-After": str(wait)},
            )
        self.in_flight += 1
        return _Place(self)


class _Place:
    """One batch's place in the gate, given back when its block ends, however it ends."""

    __slots__ = ("_gate",)

    def __init__(self, gate: IngestGate) -> None:
        self._gate = gate

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._gate.in_flight -= 1


INGEST_GATE: web.AppKey[IngestGate] = web.AppKey("ingest_gate", IngestGate)
