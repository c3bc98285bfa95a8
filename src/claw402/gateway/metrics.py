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

import asyncio
import hmac
import os
import time
from bisect import bisect_left
from pathlib import Path
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
FLUSH_SECONDS = 1.0  # how long a count may wait in plain ints before it reaches the page
_FLAG = "claw402-unflushed-"  # + pid-instance: a worker holding counts not yet in the shared files
_BACKLOG_EVERY = 64  # requests between backlog gauge updates while it is not empty


class GatewayMetrics:
    """One gateway's metrics; a registry of its own, so tests may build many gateways.

    A request's counts go to plain ints first, folded into prometheus-client's values by
    `flush`: within `FLUSH_SECONDS` (a timer on the event loop), before every scrape and at
    shutdown. Its values take a lock per change (a file write per change in multiprocess
    mode), which would be most of a replayed 402's cost if paid per request. In multiprocess
    mode a worker holding unflushed counts says so with a flag file in the shared folder, and
    a scrape waits for the other workers' flags to clear, so the page is exact once traffic
    stops.
    """

    def __init__(self, token: str | None = None) -> None:
        self.token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        self.registry = CollectorRegistry()
        folder = os.environ.get(MULTIPROC_ENV)
        self.multiprocess = bool(folder)
        self._folder = Path(folder) if folder else None
        # `<pid>-<instance>`: a test may build several gateways in one process.
        name = f"{_FLAG}{os.getpid()}-{id(self):x}"
        self._flag = self._folder / name if self._folder else None
        self._counts: dict[tuple[str, int], int] = {}  # unflushed, by (tenant, status)
        self._latency = [0] * (len(_BUCKETS) + 1)  # unflushed, by bucket (the last: +Inf)
        self._latency_sum = 0.0
        self._pending = False
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
        if not self._pending:
            self._arm()
        counts, key = self._counts, (tenant, status)
        counts[key] = counts.get(key, 0) + 1
        self._latency[bisect_left(_BUCKETS, seconds)] += 1
        self._latency_sum += seconds
        for event in trail:  # payments: a paid call's few events, counted as they come
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

    def _arm(self) -> None:
        """The first count since a flush: flag it, and flush within `FLUSH_SECONDS`."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # counted outside an event loop: the next scrape flushes it
            return
        self._pending = True
        if self._flag is not None:
            self._flag.touch()
        loop.call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Fold the unflushed counts into prometheus-client's values (then clear the flag)."""
        self._pending = False
        counts, self._counts = self._counts, {}
        for (tenant, status), n in counts.items():
            self.requests.labels(tenant, str(status)).inc(n)
            if status == 402:
                self.challenges.labels(tenant).inc(n)
        latency, self._latency = self._latency, [0] * (len(_BUCKETS) + 1)
        if any(latency):
            # The histogram's own bucket values: `observe` per request is what this avoids.
            for i, n in enumerate(latency):
                if n:
                    self.latency._buckets[i].inc(n)
            self.latency._sum.inc(self._latency_sum)
            self._latency_sum = 0.0
        if self._flag is not None:
            self._flag.unlink(missing_ok=True)

    async def answer(self, authorization: str | None, request_id: str) -> Answer:
        """The page, or 401 without the token when one is set."""
        if self.token is not None:
            given = (authorization or "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return error_answer(401, "metrics_token_required", request_id,
                                    f"send Authorization: Bearer <{TOKEN_ENV}>")  # fmt: skip
        self.flush()
        registry = self.registry
        if self.multiprocess:  # every worker's values, added up
            await self._others_flushed()
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return Answer(200, generate_latest(registry), {"Cache-Control": "no-store"},
                      media_type=CONTENT_TYPE_LATEST)  # fmt: skip

    async def _others_flushed(self) -> None:
        """Wait (at most a flush interval and a half) for the other live workers' flags."""
        assert self._folder is not None
        deadline = time.monotonic() + FLUSH_SECONDS * 1.5
        while time.monotonic() < deadline:
            if not any(_alive(flag) for flag in self._folder.glob(_FLAG + "*")):
                return
            await asyncio.sleep(0.02)


def _alive(flag: Path) -> bool:
    """Whether the worker that left `flag` still runs (a dead one's counts are gone anyway)."""
    try:
        os.kill(int(flag.name.removeprefix(_FLAG).split("-")[0]), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
