"""What `/metrics` counts from a request's end: status by tenant, 402s, payments by scheme and
outcome, payment latency, the backlog; and the token rule. (Several workers adding up:
tests/gateway/test_serve_workers.py.)"""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from claw402.dispatch.routing import route_for
from claw402.events import kinds as ev
from claw402.events.compact import compact
from claw402.gateway.metrics import FLUSH_SECONDS, GatewayMetrics

ROUTE = route_for(tenant_id="t1", slug="acme", worker_name="w", plan="free")


def _samples(metrics: GatewayMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    page = asyncio.run(metrics.answer(None, "r"))
    assert page.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(page.body.decode())
        for s in family.samples
    }


def test_payments_are_counted_by_scheme_and_outcome() -> None:
    metrics = GatewayMetrics(token=None)
    challenge = [compact(ev.PAYMENT_CHALLENGE, "r1", ROUTE, status=402)]
    exact = [
        compact(ev.PAYMENT_VERIFIED, "r2", ROUTE, status=200, duration_ms=3.0),
        compact(ev.PAYMENT_SETTLED, "r2", ROUTE, status=200, duration_ms=40.0),
    ]
    channel = [
        compact(ev.PAYMENT_VERIFIED, "r3", ROUTE, status=200, scheme="batch"),
        compact(ev.PAYMENT_VOUCHER, "r3", ROUTE, status=200, duration_ms=2.0, scheme="batch"),
    ]
    refused = [compact(ev.PAYMENT_FAILED, "r4", ROUTE, status=402, reason="invalid_signature")]
    metrics.observe(ROUTE, 402, 0.001, challenge, backlog=3)
    metrics.observe(ROUTE, 200, 0.045, exact, backlog=0)
    metrics.observe(ROUTE, 200, 0.004, channel, backlog=0)
    metrics.observe(ROUTE, 402, 0.002, refused, backlog=1)
    metrics.observe(None, 404, 0.0001, [], backlog=1)
    got = _samples(metrics)
    assert got[("claw402_requests_total", (("status", "200"), ("tenant", "acme")))] == 2
    assert got[("claw402_requests_total", (("status", "402"), ("tenant", "acme")))] == 2
    assert got[("claw402_requests_total", (("status", "404"), ("tenant", "-")))] == 1
    assert got[("claw402_payment_challenges_total", (("tenant", "acme"),))] == 2
    payments = "claw402_payments_total"
    assert got[(payments, (("outcome", "settled"), ("scheme", "exact"), ("tenant", "acme")))] == 1
    assert got[(payments, (("outcome", "voucher"), ("scheme", "batch"), ("tenant", "acme")))] == 1
    assert got[(payments, (("outcome", "failed"), ("scheme", "exact"), ("tenant", "acme")))] == 1
    settle = "claw402_payment_settle_duration_seconds"
    assert got[(settle + "_count", ())] == 2  # the exact settle and the voucher
    assert got[(settle + "_sum", ())] == 0.042
    assert got[(settle + "_bucket", (("le", "0.025"),))] == 1  # the voucher only
    assert got[("claw402_request_duration_seconds_count", ())] == 5
    assert got[("claw402_event_backlog", ())] == 1  # the last request's view


def test_a_token_guards_the_page() -> None:
    metrics = GatewayMetrics(token="s3cret")
    assert asyncio.run(metrics.answer(None, "r")).status_code == 401
    assert asyncio.run(metrics.answer("Bearer wrong", "r")).status_code == 401
    page = asyncio.run(metrics.answer("Bearer s3cret", "r"))
    assert page.status_code == 200 and b"claw402_requests_total" in page.body


def test_counts_reach_the_values_within_a_flush_interval_and_at_every_scrape() -> None:
    """Counted in plain ints on the request path; the timer folds them in without a scrape."""
    metrics = GatewayMetrics(token=None)
    requests = metrics.requests.labels("acme", "402")

    async def traffic() -> tuple[float, float]:
        for seconds in (0.0001, 0.003, 0.2):
            metrics.observe(ROUTE, 402, seconds, [], backlog=0)
        before = requests._value.get()
        await asyncio.sleep(FLUSH_SECONDS + 0.5)
        return before, requests._value.get()

    assert asyncio.run(traffic()) == (0, 3)
    got = _samples(metrics)
    latency = "claw402_request_duration_seconds"
    assert got[(latency + "_count", ())] == 3
    assert got[(latency + "_bucket", (("le", "0.0005"),))] == 1
    assert got[(latency + "_bucket", (("le", "0.005"),))] == 2
    assert got[(latency + "_bucket", (("le", "0.25"),))] == 3
    assert abs(got[(latency + "_sum", ())] - 0.2031) < 1e-9
    assert got[("claw402_payment_challenges_total", (("tenant", "acme"),))] == 3
    metrics.observe(ROUTE, 402, 0.001, [], backlog=0)  # no timer here: the scrape flushes
    assert (
        _samples(metrics)[("claw402_requests_total", (("status", "402"), ("tenant", "acme")))] == 4
    )
