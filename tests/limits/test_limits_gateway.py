"""Limits on a real gateway: rate-limit answers and headers at the boundary, replays and
documents counted too, quotas counting only served calls, the spend cap refusing before the
paywall, and the caller behind a trusted proxy."""

from __future__ import annotations

import re
from pathlib import Path

from gwlimits import open_gateway

from claw402.clock import now
from claw402.limits import windows
from claw402.limits.caller import Callers, parse_proxies
from claw402.limits.counters import MemoryCounters
from claw402.limits.limiter import Limiter
from claw402.limits.usage import UsageBooks, slots
from claw402.registry.deploy import DeployRequest, deploy
from claw402.samples import CITIES
from claw402.tenant_api.answer import error_answer

_STATE = re.compile(r'^"rate";r=(\d+);t=(\d+)$')


def limiter(registry, proxies: str | None = None) -> Limiter:  # type: ignore[no-untyped-def]
    return Limiter(MemoryCounters(), UsageBooks(registry.engine),
                   Callers(parse_proxies(proxies)))  # fmt: skip


def test_rate_limit_headers_at_the_boundary(tmp_path: Path) -> None:
    with open_gateway(tmp_path) as (settings, registry, gateway, client):
        gateway.limiter = limiter(registry)
        deploy(registry, settings, DeployRequest(source=CITIES, slug="cities", price="0",
                                                 rate="3/h"))  # fmt: skip
        answers = [client.get("/t/cities/v1/records?_limit=1") for _ in range(3)]
        answers.append(client.get("/t/cities/v1/schema"))  # every route of the tenant counts
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        for a in answers:
            assert a.headers["ratelimit-policy"] == '"rate";q=3;w=3600'
        states = [_STATE.fullmatch(a.headers["ratelimit"]) for a in answers]
        assert [int(m[1]) for m in states if m] == [2, 1, 0, 0]
        refused = answers[-1]
        assert refused.json()["error"] == "rate_limited"
        reset = int(states[-1][2])  # type: ignore[index]
        assert 1 <= reset <= 3600 and int(refused.headers["retry-after"]) == reset


def test_a_replayed_402_passes_the_rate_limit_too(tmp_path: Path) -> None:
    with open_gateway(tmp_path) as (settings, registry, gateway, client):
        gateway.limiter = limiter(registry)
        deploy(registry, settings, DeployRequest(source=CITIES, slug="paid", price="0.01",
                                                 rate="2/h"))  # fmt: skip
        codes = [client.get("/t/paid/v1/records").status_code for _ in range(3)]
        # The gateway has no payment network: its 402 is the unpriced guard's; the second is
        # still counted, and the third refused before any guard.
        assert codes == [402, 402, 429]


def test_forwarded_for_names_the_caller_only_behind_a_trusted_proxy(tmp_path: Path) -> None:
    with open_gateway(tmp_path) as (settings, registry, gateway, client):
        deploy(registry, settings, DeployRequest(source=CITIES, slug="cities", price="0",
                                                 rate="1/h"))  # fmt: skip
        gateway.limiter = limiter(registry, "127.0.0.1")
        url = "/t/cities/v1/schema"
        assert client.get(url, headers={"x-forwarded-for": "9.9.9.1"}).status_code == 200
        assert client.get(url, headers={"x-forwarded-for": "9.9.9.2"}).status_code == 200
        assert client.get(url, headers={"x-forwarded-for": "9.9.9.1"}).status_code == 429
        gateway.limiter = limiter(registry)  # no trusted proxy: the header is only a header
        assert client.get(url, headers={"x-forwarded-for": "9.9.9.3"}).status_code == 200
        assert client.get(url, headers={"x-forwarded-for": "9.9.9.4"}).status_code == 429


def test_quota_counts_served_calls_only(tmp_path: Path) -> None:
    with open_gateway(tmp_path) as (settings, registry, gateway, client):
        gateway.limiter = limiter(registry)
        made = deploy(registry, settings, DeployRequest(source=CITIES, slug="cities",
                                                        price="0", quota_day=2))  # fmt: skip
        assert client.get("/t/cities/v1/records?_limit=x").status_code == 400  # not served
        assert client.get("/t/cities/v1/schema").status_code == 200  # documents are free
        codes = [client.get("/t/cities/v1/records?_limit=1").status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        over = client.get("/t/cities/v1/records?_limit=1")
        body = over.json()
        assert body["error"] == "usage_quota_exceeded"
        assert body["quota"]["window"] == "day" and body["quota"]["limit"] == 2
        assert body["quota"]["reset"].endswith("T00:00:00+00:00")
        assert int(over.headers["retry-after"]) <= 86400
        books = UsageBooks(registry.engine)
        assert books.used(made.tenant_id, "calls_day", windows.day(now())[0]) == 2


def test_spend_cap_refuses_before_the_paywall(tmp_path: Path) -> None:
    guarded: list[int] = []

    async def guard(call, produce):  # type: ignore[no-untyped-def]
        guarded.append(1)
        return error_answer(402, "payment_required", call.request_id)

    with open_gateway(tmp_path, guard=guard) as (settings, registry, gateway, client):
        gateway.limiter = limiter(registry)
        made = deploy(registry, settings, DeployRequest(source=CITIES, slug="capped",
                                                        price="2", spend_cap_day="3"))  # fmt: skip
        paying = {"payment-signature": "not-even-base64"}
        # A payment the guard refuses (402 here) is given back: the cap is still whole.
        for _ in range(3):
            assert client.get("/t/capped/v1/records", headers=paying).status_code == 402
        assert len(guarded) == 3
        books = UsageBooks(registry.engine)
        assert books.used(made.tenant_id, "spend_day", windows.day(now())[0]) == 0
        # $2 + $2 would pass the $3 cap: the books say so before any guard runs.
        policy = gateway.policy(gateway.directory.current(), made.route())
        assert books.take(made.tenant_id, slots(policy, now())) is None  # $2 spent today
        refused = client.get("/t/capped/v1/records", headers=paying)
        assert refused.status_code == 402 and refused.json()["error"] == "cap_exceeded"
        assert len(guarded) == 3  # the paywall never saw it: nothing verified, nothing charged
        # A bare request still gets the guard's challenge: the cap takes nothing from it.
        assert client.get("/t/capped/v1/records").status_code == 402 and len(guarded) == 4


def test_spend_cap_counts_a_row_priced_call_at_its_full_page(tmp_path: Path) -> None:
    guarded: list[int] = []

    async def guard(call, produce):  # type: ignore[no-untyped-def]
        guarded.append(1)
        return error_answer(402, "payment_required", call.request_id)

    with open_gateway(tmp_path, guard=guard) as (settings, registry, gateway, client):
        gateway.limiter = limiter(registry)
        made = deploy(registry, settings, DeployRequest(
            source=CITIES, slug="rows", price_per_1k_rows="1", spend_cap_day="0.05"))  # fmt: skip
        policy = gateway.policy(gateway.directory.current(), made.route())
        page = made.call_price_atomic  # what the 402 advertises and a payer authorises
        assert page > 50_000 and policy.price_atomic == page
        assert [(s.counter, s.amount) for s in slots(policy, now())] == [("spend_day", page)]
        # A full page would pass the $0.05 cap: refused before the paywall, nothing charged.
        refused = client.get("/t/rows/v1/records", headers={"payment-signature": "x"})
        assert refused.status_code == 402 and refused.json()["error"] == "cap_exceeded"
        assert guarded == []
