"""`/metrics` in Prometheus' text format: what an operator graphs and alerts on.

Requests by tenant and status, their latency, 402 challenges, payments by scheme and outcome
(verified, settled, voucher, failed), how long a payment took from verify to settled, and the
event backlog (trails queued for the durable sink). Counted from what the request already
knows when it ends (its route, status and event trail), so the request path does no extra
I/O. Tenants are labelled by slug; unknown tenants share `-` (a scanner cannot grow the
series). With `serve --workers N` every worker writes its own values under
`PROMETHEUS_MULTIPROC_DIR` (prometheus_client's multiprocess mode, set by `serve`) and any
worker's `/metrics` adds them all up.

`CLAW402_METRICS_TOKEN` set: `/metrics` needs `Authorization: Bearer <token>` (a public
gateway should set it: the page names every tenant).
"""

from __future__ import annotations

import hmac
import os
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from claw402.events import kinds as ev
from claw402.tenant_api.answer import Answer, error_answer

if TYPE_CHECKING:
    from claw402.dispatch.routing import TenantRoute
    from claw402.events.compact import Trail

PATH = "/metrics"
TOKEN_ENV = "CLAW402_METRICS_TOKEN"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNKNOWN = "-"
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
# Event kind -> payment outcome label; the compact tuple's fields (events/compact.py).
_OUTCOMES = {
    ev.PAYMENT_VERIFIED: "verified",
    ev.PAYMENT_SETTLED: "settled",
    ev.PAYMENT_VOUCHER: "voucher",
    ev.PAYMENT_FAILED: "failed",
}
_KIND, _DURATION_MS, _DETAILS = 0, 8, 10
_CHILDREN = 4096  # cached (tenant, status) counters
_BACKLOG_EVERY = 64  # requests between backlog gauge updates while it is not empty


class GatewayMetrics:
    """One gateway's metrics; a registry of its own, so tests may build many gateways."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        self.registry = CollectorRegistry()
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self._children: dict[tuple[str, int], tuple[Counter, Counter | None]] = {}
        self._seen = 0
        self._backlog = 0
        r = self.registry
        self.requests = Counter(
            "claw402_requests", "Tenant requests answered", ["tenant", "status"], registry=r
        )
        self.latency = Histogram(
            "claw402_request_duration_seconds",
            "Tenant request latency",
            buckets=_BUCKETS,
            registry=r,
        )
        self.challenges = Counter(
            "claw402_payment_challenges",
            "402 answers (challenges, refused payments)",
            ["tenant"],
            registry=r,
        )
        self.payments = Counter(
            "claw402_payments",
            "Payment steps by outcome",
            ["tenant", "scheme", "outcome"],
            registry=r,
        )
        self.settle = Histogram(
            "claw402_payment_settle_duration_seconds",
            "From a payment's verify to settled (exact) or committed (channels)",
            buckets=_BUCKETS,
            registry=r,
        )
        self.backlog = Gauge(
            "claw402_event_backlog",
            "Request trails queued for the event sink",
            registry=r,
            multiprocess_mode="livesum",
        )

    def observe(
        self, route: TenantRoute | None, status: int, seconds: float, trail: Trail, backlog: int
    ) -> None:
        """Count one tenant request as it ends (unknown tenants too, as `-`)."""
        tenant = route.slug if route is not None else UNKNOWN
        key = (tenant, status)
        counters = self._children.get(key)
        if counters is None:  # `labels()` costs more than the increment: once per pair
            if len(self._children) >= _CHILDREN:
                self._children.clear()
            challenge = self.challenges.labels(tenant) if status == 402 else None
            counters = self._children[key] = (self.requests.labels(tenant, str(status)), challenge)
        counters[0].inc()
        if counters[1] is not None:
            counters[1].inc()
        self.latency.observe(seconds)
        for event in trail:
            outcome = _OUTCOMES.get(event[_KIND])
            if outcome is None:
                continue
            details = event[_DETAILS] or {}
            scheme = str(details.get("scheme", "exact"))  # only channel events name theirs
            self.payments.labels(tenant, scheme, outcome).inc()
            if outcome in ("settled", "voucher") and event[_DURATION_MS] is not None:
                self.settle.observe(event[_DURATION_MS] / 1000)
        self._seen += 1
        moved = backlog != self._backlog
        if moved and (0 in (backlog, self._backlog) or self._seen % _BACKLOG_EVERY == 0):
            self._backlog = backlog  # a gauge write costs a lock: when it starts or stops
            self.backlog.set(backlog)

    def answer(self, authorization: str | None, request_id: str) -> Answer:
        """The page, or 401 without the token when one is set."""
        if self.token is not None:
            given = (authorization or "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return error_answer(401, "metrics_token_required", request_id,
                                    f"send Authorization: Bearer <{TOKEN_ENV}>")  # fmt: skip
        registry = self.registry
        if self.multiprocess:  # every worker's values, added up
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return Answer(200, generate_latest(registry), {"Cache-Control": "no-store"},
                      media_type=CONTENT_TYPE_LATEST)  # fmt: skip
