"""Quotas and spend caps on real payments (anvil, the facilitator, the paywall): only served
paid calls count, a call over quota or cap is refused before anything is verified or charged,
and one payment sent to two gateways at once is honoured once and counted once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from paidstack import Stack, encode

from claw402.chain.token import usdc
from claw402.chain.wallet import Wallet
from claw402.clock import now
from claw402.limits import windows
from claw402.limits.usage import UsageBooks
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.models import Tenant
from claw402.samples import CITIES


def _tenant(stack: Stack, slug: str, **limits: object) -> Tenant:
    request = DeployRequest(source=CITIES, slug=slug, price="0.01", schemes="exact", **limits)  # type: ignore[arg-type]
    return deploy(stack.registry, stack.settings, request)


def _used(stack: Stack, tenant: Tenant, counter: str) -> int:
    return UsageBooks(stack.registry.engine).used(tenant.tenant_id, counter, windows.day(now())[0])


def test_quota_counts_served_paid_calls_only(stack: Stack, payer: Wallet) -> None:
    tenant = _tenant(stack, "quota-paid", quota_day=2)
    path = "/t/quota-paid/v1/records"
    assert stack.get(path).status_code == 402  # a bare challenge takes nothing
    underpaid = stack.get(path, stack.sign(payer, "quota-paid", value=1))
    assert underpaid.status_code == 402  # a refused payment takes nothing either
    assert _used(stack, tenant, "calls_day") == 0
    for _ in range(2):
        assert stack.pay(stack.url + path, payer, usdc("0.01")).paid
    assert _used(stack, tenant, "calls_day") == 2
    before = stack.balance(payer.address)
    payment = stack.sign(payer, "quota-paid")
    over = stack.get(path, payment)
    assert over.status_code == 429 and over.json()["error"] == "usage_quota_exceeded"
    assert over.json()["quota"]["limit"] == 2
    nonce = payment["payload"]["authorization"]["nonce"]
    assert stack.claims(nonce) == []  # refused before any claim, verify or settle
    assert stack.balance(payer.address) == before
    # Known full: a bare call now gets the 429 too, not a 402 it could never pay.
    assert stack.get(path).status_code == 429


def test_spend_cap_refuses_the_payment_that_would_pass_it(stack: Stack, payer: Wallet) -> None:
    tenant = _tenant(stack, "capped-paid", spend_cap_day="0.025")
    url = stack.url + "/t/capped-paid/v1/records"
    assert stack.pay(url, payer, usdc("0.01")).paid
    assert stack.pay(url, payer, usdc("0.01")).paid
    before = stack.balance(payer.address)
    payment = stack.sign(payer, "capped-paid")
    refused = stack.get("/t/capped-paid/v1/records", payment)
    assert refused.status_code == 402 and refused.json()["error"] == "cap_exceeded"
    assert stack.claims(payment["payload"]["authorization"]["nonce"]) == []
    assert stack.balance(payer.address) == before
    assert _used(stack, tenant, "spend_day") == usdc("0.02")


def test_one_payment_to_two_gateways_at_once_is_honoured_and_counted_once(
    stack: Stack, payer: Wallet
) -> None:
    tenant = _tenant(stack, "quota-twice", quota_day=5)
    other = stack.serve(stack.paywall_with())  # a second gateway: its own paywall, same database
    header = encode(stack.sign(payer, "quota-twice"))
    before = stack.balance(payer.address)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(
            lambda base: stack.get("/t/quota-twice/v1/records", header, base=base),
            [stack.url, other],
        ))  # fmt: skip
    codes = sorted(a.status_code for a in answers)
    assert codes[0] == 200 and codes[1] in (202, 409), [(a.status_code, a.text) for a in answers]
    assert before - stack.balance(payer.address) == usdc("0.01")
    assert _used(stack, tenant, "calls_day") == 1
