"""Paid calls through the real gateway, facilitator and chain: what is paid, what is refused.

Every refusal is checked for the stated answer and for what matters most: no data left the
gateway, and no money moved.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import httpx
import pytest
from paidstack import MAX_TIMEOUT, Stack, encode, free_port, nonce_of
from x402.http.utils import decode_payment_required_header, decode_payment_response_header

from claw402.chain.eip3009 import sign_cancel
from claw402.chain.token import usdc
from claw402.chain.wallet import Wallet
from claw402.events.store import EventStore
from claw402.payments.client import PriceTooHigh
from claw402.payments.schema import SETTLED

PRICE_A = usdc("0.01")


def assert_no_data(r: httpx.Response) -> None:
    body = r.json()
    assert body["ok"] is False
    assert "items" not in body and "item" not in body
    assert "payment-response" not in r.headers or not receipt(r).success


def receipt(r: httpx.Response):  # type: ignore[no-untyped-def]
    return decode_payment_response_header(r.headers["payment-response"])


# -- the challenge ---------------------------------------------------------------------------


def test_unpaid_call_gets_a_v2_challenge_and_a_v1_body(stack: Stack):
    r = stack.get("/t/alpha/v1/records?country=Japan")
    assert r.status_code == 402
    required = decode_payment_required_header(r.headers["payment-required"])
    assert required.x402_version == 2
    batch, accept = required.accepts  # a channel first (test_channels_paywall), then exact
    assert batch.scheme == "batch-settlement"
    assert accept.scheme == "exact"
    assert accept.network == stack.chain.network
    assert accept.amount == str(PRICE_A)
    assert accept.asset == stack.chain.token
    assert accept.pay_to == stack.chain.treasury.address
    assert accept.max_timeout_seconds == MAX_TIMEOUT
    assert accept.extra["name"] == stack.chain.token_name
    assert accept.extra["version"] == stack.chain.token_version
    assert required.resource is not None
    assert required.resource.url == f"{stack.url}/t/alpha/v1/records"
    assert required.resource.description
    assert "payment-identifier" in (required.extensions or {})
    body = r.json()
    assert body["ok"] is False and body["error"] == "payment_required"
    assert body["requestId"] == r.headers["x-request-id"]
    assert body["x402Version"] == 1
    assert body["accepts"][0]["maxAmountRequired"] == str(PRICE_A)
    assert body["accepts"][0]["payTo"] == stack.chain.treasury.address


def test_each_402_carries_its_own_request_id_and_the_resource_as_addressed(stack: Stack):
    # The unpaid answer is encoded once per resource; only the request id changes per call.
    traced = stack.get("/t/alpha/v1/records", headers={"x-request-id": "agent-run-7"})
    fresh = stack.get("/t/alpha/v1/records")
    by_host = stack.get("/v1/records", headers={"host": "alpha.test"})
    assert traced.json()["requestId"] == traced.headers["x-request-id"] != "agent-run-7"
    assert traced.headers["x-correlation-id"] == "agent-run-7"
    assert fresh.json()["requestId"] == fresh.headers["x-request-id"] != "agent-run-7"
    assert "x-correlation-id" not in fresh.headers
    for r in (traced, fresh, by_host):
        assert r.status_code == 402
        assert int(r.headers["content-length"]) == len(r.content)
        assert r.headers["x-tenant-id"] == traced.headers["x-tenant-id"]
    resource = decode_payment_required_header(by_host.headers["payment-required"]).resource
    assert resource is not None and resource.url == "http://alpha.test/v1/records"
    assert by_host.json()["accepts"][0]["resource"] == "http://alpha.test/v1/records"


def test_head_shows_the_price_and_never_takes_a_payment(stack: Stack, payer: Wallet):
    payment = stack.sign(payer, "alpha")
    r = httpx.head(
        f"{stack.url}/t/alpha/v1/records", headers={"PAYMENT-SIGNATURE": encode(payment)}
    )
    assert r.status_code == 402
    assert "payment-required" in r.headers
    assert stack.claims(nonce_of(payment)) == []
    assert stack.balance(payer.address) == usdc(1)


def test_free_routes_of_a_priced_tenant_stay_free(stack: Stack):
    assert stack.get("/t/alpha/v1/schema").status_code == 200
    assert stack.get("/t/alpha/v1/openapi.json").status_code == 200


def test_a_creator_paid_tenant_names_the_creator(stack: Stack):
    accept = stack.requirements("beta")
    assert accept.pay_to == stack.creator.address
    assert accept.amount == str(usdc("0.02"))


# -- paying -----------------------------------------------------------------------------------


def test_official_python_client_pays_through_the_path(stack: Stack, payer: Wallet):
    treasury_before = stack.balance(stack.chain.treasury.address)
    call = stack.pay(
        f"{stack.url}/t/alpha/v1/records?country=Japan&_sort=-population", payer, PRICE_A
    )
    r = call.response
    assert r.status_code == 200, r.text
    assert [item["city"] for item in r.json()["items"]] == ["Tokyo", "Osaka", "Nagoya"]
    assert r.headers["cache-control"] == "no-store"  # a paid answer is this payer's only
    assert "PAYMENT-RESPONSE" in r.headers["access-control-expose-headers"]
    assert call.paid and call.settlement is not None
    settlement = call.settlement
    assert settlement.network == stack.chain.network
    assert settlement.payer and settlement.payer.lower() == payer.address.lower()
    assert settlement.transaction.startswith("0x")
    assert stack.balance(payer.address) == usdc(1) - PRICE_A
    assert stack.balance(stack.chain.treasury.address) == treasury_before + PRICE_A

    (row,) = stack.payments(settlement.transaction)
    assert row["amount_atomic"] == PRICE_A
    assert row["tenant_id"] == stack.tenants["alpha"].tenant_id
    assert row["pay_to"] == stack.chain.treasury.address
    assert row["network"] == stack.chain.network
    assert row["request_id"] == r.headers["x-request-id"]
    assert row["payer"].lower() == payer.address.lower()
    assert _event_types(stack, r.headers["x-request-id"]) >= {
        "payment_verified",
        "payment_settled",
    }


def test_hand_built_payment_through_a_host_pays_the_creator(stack: Stack, payer: Wallet):
    payment = stack.sign(payer, "beta")
    creator_before = stack.balance(stack.creator.address)
    r = stack.get("/v1/records?_limit=2", payment, headers={"host": "alpha.test"})
    # alpha.test is alpha's host: beta's payment is refused there ...
    assert r.status_code == 402 and r.json()["error"] == "payment_mismatch"
    # ... and alpha's payment pays alpha through its host.
    alpha = stack.sign(payer, "alpha")
    r = stack.get("/v1/records?_limit=2", alpha, headers={"host": "alpha.test"})
    assert r.status_code == 200, r.text
    assert len(r.json()["items"]) == 2
    assert receipt(r).success
    r = stack.get("/t/beta/v1/records?_limit=1", payment)
    assert r.status_code == 200, r.text
    assert stack.balance(stack.creator.address) == creator_before + usdc("0.02")
    assert stack.balance(payer.address) == usdc(1) - PRICE_A - usdc("0.02")


def test_v1_x_payment_is_understood(stack: Stack, payer: Wallet):
    v2 = stack.sign(payer, "alpha")
    v1 = {
        "x402Version": 1,
        "scheme": "exact",
        "network": stack.chain.network,
        "payload": v2["payload"],
    }
    r = stack.get("/t/alpha/v1/records?_limit=1", v1, header="X-PAYMENT")
    assert r.status_code == 200, r.text
    assert r.headers["x-payment-response"] == r.headers["payment-response"]
    assert receipt(r).success
    assert stack.balance(payer.address) == usdc(1) - PRICE_A


def test_official_javascript_client_pays(stack: Stack, payer: Wallet):
    report = stack.pay_js(f"{stack.url}/t/alpha/v1/records?_limit=3", payer, PRICE_A)
    assert report["status"] == 200, report
    assert len(report["body"]["items"]) == 3
    assert report["paymentResponse"]["success"] is True
    assert report["paymentResponse"]["transaction"].startswith("0x")
    assert stack.balance(payer.address) == usdc(1) - PRICE_A


def test_client_refuses_a_price_above_its_maximum(stack: Stack, payer: Wallet):
    with pytest.raises(PriceTooHigh, match=r"costs \$0.02"):
        stack.pay(f"{stack.url}/t/beta/v1/records", payer, usdc("0.01"))
    assert stack.balance(payer.address) == usdc(1)


# -- replays -----------------------------------------------------------------------------------


def test_the_same_signature_twice_is_a_replay(stack: Stack, payer: Wallet):
    payment = stack.sign(payer, "alpha")
    first = stack.get("/t/alpha/v1/records?_limit=1", payment)
    assert first.status_code == 200
    again = stack.get("/t/alpha/v1/records?_limit=1", payment)
    assert again.status_code == 409
    assert again.json()["error"] == "payment_replayed"
    assert_no_data(again)
    assert stack.balance(payer.address) == usdc(1) - PRICE_A


def test_twenty_concurrent_requests_with_one_payment(stack: Stack, payer: Wallet):
    header = encode(stack.sign(payer, "alpha"))
    treasury_before = stack.balance(stack.chain.treasury.address)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as http:
            return await asyncio.gather(
                *(
                    http.get(
                        f"{stack.url}/t/alpha/v1/records?_limit=1",
                        headers={"PAYMENT-SIGNATURE": header},
                    )
                    for _ in range(20)
                )
            )

    responses = asyncio.run(burst())
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1, statuses
    assert set(statuses) <= {200, 409}, statuses
    for r in responses:
        if r.status_code != 200:
            assert r.json()["error"] == "payment_replayed"
            assert_no_data(r)
    assert stack.balance(payer.address) == usdc(1) - PRICE_A
    assert stack.balance(stack.chain.treasury.address) == treasury_before + PRICE_A
    (paid,) = [r for r in responses if r.status_code == 200]
    assert len(stack.payments(receipt(paid).transaction)) == 1


def test_payment_identifier_replays_the_first_answer(stack: Stack, payer: Wallet):
    ident = {"payment-identifier": {"info": {"required": False, "id": "pay_bench0123456789abcd"}}}
    payment = stack.sign(payer, "alpha", extensions=ident)
    first = stack.get("/t/alpha/v1/records?_limit=2", payment)
    assert first.status_code == 200
    again = stack.get("/t/alpha/v1/records?_limit=2", payment)
    assert again.status_code == 200
    assert again.content == first.content
    assert again.headers["payment-response"] == first.headers["payment-response"]
    assert stack.balance(payer.address) == usdc(1) - PRICE_A  # charged once

    other = stack.sign(payer, "alpha", extensions=ident)  # same id, another payment
    conflict = stack.get("/t/alpha/v1/records?_limit=2", other)
    assert conflict.status_code == 409
    assert conflict.json()["error"] == "payment_id_conflict"
    assert_no_data(conflict)
    assert stack.balance(payer.address) == usdc(1) - PRICE_A


# -- payments for other terms ----------------------------------------------------------------


def test_a_payment_for_one_tenant_is_refused_by_another(stack: Stack, payer: Wallet):
    payment = stack.sign(payer, "alpha")
    for slug, reason in (("gamma", "tenant_mismatch"), ("beta", "pay_to_mismatch")):
        r = stack.get(f"/t/{slug}/v1/records", payment)
        assert r.status_code == 402, slug
        assert r.json()["error"] == "payment_mismatch"
        assert r.json()["reason"] == reason
        assert_no_data(r)
        assert "payment-required" in r.headers
    assert stack.claims(nonce_of(payment)) == []
    assert stack.balance(payer.address) == usdc(1)


MISMATCHES: list[tuple[str, dict[str, Any], str]] = [
    ("underpaid", {"accepted": {"amount": str(PRICE_A - 1)}, "value": PRICE_A - 1}, "amount"),
    ("overpaid", {"accepted": {"amount": str(PRICE_A + 1)}, "value": PRICE_A + 1}, "amount"),
    ("authorization underpays", {"value": PRICE_A - 1}, "amount"),
    ("wrong payTo", {"accepted": {"payTo": "0x" + "12" * 20}, "to": "0x" + "12" * 20}, "pay_to"),
    ("authorization to another", {"to": "0x" + "34" * 20}, "pay_to"),
    ("wrong network", {"accepted": {"network": "eip155:84532"}}, "network"),
    ("wrong asset", {"accepted": {"asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e"}}, "asset"),
    ("wrong EIP-712 domain", {"accepted": {"extra": {"name": "USDC"}}}, "domain"),
    ("made for another tenant", {"accepted": {"extra": {"tenant": "t_other"}}}, "tenant"),
]


@pytest.mark.parametrize(("case", "bend", "reason"), MISMATCHES, ids=[m[0] for m in MISMATCHES])
def test_payments_for_other_terms_are_refused(stack: Stack, payer: Wallet, case, bend, reason):
    payment = stack.sign(payer, "alpha", **bend)
    r = stack.get("/t/alpha/v1/records", payment)
    assert r.status_code == 402, r.text
    assert r.json()["error"] == "payment_mismatch"
    assert r.json()["reason"] == f"{reason}_mismatch"
    assert_no_data(r)
    assert stack.balance(payer.address) == usdc(1)


def test_a_tampered_amount_fails_the_signature(stack: Stack, payer: Wallet):
    payment = stack.sign(payer, "alpha", value=1)  # signed for 1 atomic unit ...
    payment["payload"]["authorization"]["value"] = str(PRICE_A)  # ... presented as the price
    r = stack.get("/t/alpha/v1/records", payment)
    assert r.status_code == 402
    assert r.json()["error"] == "payment_invalid"
    assert_no_data(r)
    assert stack.released(nonce_of(payment)) == 1  # a failed attempt
    assert stack.balance(payer.address) == usdc(1)


# -- payments the facilitator refuses -----------------------------------------------------------


def _refused(stack: Stack, payer: Wallet, payment: dict[str, Any]) -> dict[str, Any]:
    r = stack.get("/t/alpha/v1/records", payment)
    assert r.status_code == 402, r.text
    body = r.json()
    assert body["error"] == "payment_invalid"
    assert_no_data(r)
    assert decode_payment_required_header(r.headers["payment-required"]).accepts
    assert stack.released(nonce_of(payment)) == 1  # released: nothing was used
    assert stack.balance(payer.address) == usdc(1)
    return body


def test_an_expired_authorization_is_refused(stack: Stack, payer: Wallet):
    body = _refused(stack, payer, stack.sign(payer, "alpha", valid_before=int(time.time()) - 5))
    assert "valid_before" in body["reason"]


def test_an_authorization_not_yet_valid_is_refused(stack: Stack, payer: Wallet):
    body = _refused(stack, payer, stack.sign(payer, "alpha", valid_after=int(time.time()) + 3600))
    assert "valid_after" in body["reason"]


def test_a_forged_signature_is_refused(stack: Stack, payer: Wallet):
    forger = Wallet.create()
    body = _refused(stack, payer, stack.sign(payer, "alpha", signer_key=forger.private_key))
    assert "signature" in body["reason"]


def test_a_signature_over_the_wrong_eip712_name_is_refused(stack: Stack, payer: Wallet):
    body = _refused(stack, payer, stack.sign(payer, "alpha", domain_name="USDC"))
    assert "signature" in body["reason"]


def test_a_payer_without_funds_is_refused(stack: Stack):
    broke = stack.payer(amount=0)
    r = stack.get("/t/alpha/v1/records", stack.sign(broke, "alpha"))
    assert r.status_code == 402
    assert r.json()["error"] == "payment_invalid"
    assert "insufficient" in r.json()["reason"]
    assert_no_data(r)


# -- failures around the payment ----------------------------------------------------------------


def test_facilitator_down_is_503_and_the_payment_stays_usable(stack: Stack, payer: Wallet):
    dead = stack.serve(stack.paywall_with(facilitator_url=f"http://127.0.0.1:{free_port()}"))
    payment = stack.sign(payer, "alpha")
    r = stack.get("/t/alpha/v1/records", payment, base=dead)
    assert r.status_code == 503
    assert r.headers["retry-after"]
    assert r.json()["error"] == "facilitator_unavailable"
    assert_no_data(r)
    assert stack.released(nonce_of(payment)) == 0  # the facilitator's fault: not counted
    assert stack.balance(payer.address) == usdc(1)
    assert stack.get("/t/alpha/v1/records?_limit=1", payment).status_code == 200


def test_a_failing_query_is_not_charged_and_frees_the_payment(stack: Stack, payer: Wallet):
    payment = stack.sign(payer, "alpha")
    r = stack.get("/t/alpha/v1/records?no_such_column=1", payment)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_query"
    assert "payment-response" not in r.headers
    assert stack.claims(nonce_of(payment)) == []
    missing = stack.get("/t/alpha/v1/records/999999", payment)
    assert missing.status_code == 404
    assert stack.released(nonce_of(payment)) == 1
    assert stack.balance(payer.address) == usdc(1)
    ok = stack.get("/t/alpha/v1/records?_limit=1", payment)
    assert ok.status_code == 200
    assert stack.balance(payer.address) == usdc(1) - PRICE_A
    (claim,) = stack.claims(nonce_of(payment))
    assert claim["status"] == SETTLED


def test_settlement_failing_after_verify_gets_no_data(stack: Stack, payer: Wallet):
    """The payer cancels the authorization on chain between verify and settle."""
    payment = stack.sign(payer, "alpha")
    nonce = bytes.fromhex(nonce_of(payment)[2:])
    token = stack.chain.token_contract()
    paywall = stack.paywall_with()  # a paywall belongs to the event loop of its server

    async def cancelling_guard(call, produce):  # type: ignore[no-untyped-def]
        async def produce_then_cancel():  # type: ignore[no-untyped-def]
            answer = await produce()
            signature = sign_cancel(payer.private_key, payer.address, nonce, token.domain())
            await asyncio.to_thread(
                token.cancel_authorization,
                stack.chain.deployer.account,
                payer.address,
                nonce,
                signature,
            )
            return answer

        return await paywall(call, produce_then_cancel)

    url = stack.serve(cancelling_guard)
    r = stack.get("/t/alpha/v1/records", payment, base=url)
    assert r.status_code == 402, r.text
    assert r.json()["error"] == "payment_settlement_failed"
    settlement = receipt(r)
    assert settlement.success is False and settlement.error_reason
    assert_no_data(r)
    assert stack.balance(payer.address) == usdc(1)
    assert stack.released(nonce_of(payment)) == 1


# -- headers that are not payments -----------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "garbage!!",
        base64.b64encode(b"{not json").decode(),
        base64.b64encode(json.dumps({"x402Version": 2}).encode()).decode(),
        "TRUNCATED",
        "A" * 100_000,
    ],
    ids=["garbage", "not-json", "not-a-payment", "truncated", "100KB"],
)
@pytest.mark.parametrize("name", ["PAYMENT-SIGNATURE", "X-PAYMENT"])
def test_unreadable_payment_headers_are_400(stack: Stack, payer: Wallet, header: str, name: str):
    if header == "TRUNCATED":
        header = encode(stack.sign(payer, "alpha"))[:150]
    r = stack.get("/t/alpha/v1/records", header, header=name)
    assert r.status_code == 400, r.text[:300]
    assert r.json()["error"] == "invalid_payment"
    assert_no_data(r)


def _event_types(stack: Stack, request_id: str) -> set[str]:
    deadline = time.monotonic() + 5
    while True:
        stored = EventStore(stack.registry.engine).read_events(request_id=request_id)
        found = {e["type"] for e in stored}
        if "payment_settled" in found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)
