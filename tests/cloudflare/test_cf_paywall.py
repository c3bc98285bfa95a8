"""The edge paywall under workerd, paying through the project's facilitator on anvil.

Each test pays from a fresh wallet. The answers are held against the gateway's own paywall
code where it can be called directly (the challenge header is byte-identical to
`payments.offer.Offer`'s) and against the chain (balances move only on a settled answer).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator

import httpx
import orjson
import pytest
from edgepay import PaidEdge, encode, paid_edge, payment_config
from x402.http.utils import decode_payment_response_header

from claw402.cloudflare.dispatcher import DispatcherOptions, build_dispatcher
from claw402.cloudflare.tenant import build_tenant
from claw402.cloudflare.workerd import LocalEdge
from claw402.payments.offer import Offer
from claw402.tenant_api.manners import EXPOSE_HEADERS
from jsclient import pay_with_js_client

PAGE = "/t/alpha/v1/records?_limit=2"


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaidEdge]:
    with paid_edge(tmp_path_factory.mktemp("paid-edge")) as opened:
        yield opened


def free_answer(edge: PaidEdge, path: str = PAGE) -> bytes:
    """What the same query answers on the free tenant with the same data."""
    return edge.get(path.replace("/t/alpha/", "/t/free/")).content


def test_challenge_matches_the_gateway_offer(edge):
    r = edge.get(PAGE)
    assert r.status_code == 402
    tenant = edge.tenants["alpha"]
    offer = Offer(
        edge.config,
        tenant_id=tenant.tenant_id,
        amount=tenant.price_atomic,
        pay_to=edge.config.treasury,
        description="alpha: one API call",
    )
    resource = f"{edge.url}/t/alpha/v1/records"
    challenge = offer.challenge(resource, "payment_required")
    assert r.headers["payment-required"] == challenge.header
    assert r.headers["access-control-expose-headers"] == EXPOSE_HEADERS  # tenant_api.manners
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["error"] == "payment_required" and body["x402Version"] == 1
    assert body["accepts"] == challenge.accepts_v1
    assert body["detail"] == (
        f"{resource} costs $0.01 per call: pay with x402 (the PAYMENT-REQUIRED header says how)"
    )
    assert edge.get("/t/alpha/v1/schema").status_code == 200  # free routes stay free


def test_paid_call_settles_and_returns_the_data(edge):
    payer = edge.payer()
    before = edge.chain.balance(edge.config.treasury)
    r = edge.get(PAGE, edge.sign(payer, "alpha"), headers={"x-request-id": "paid-1"})
    assert r.status_code == 200, r.text
    assert r.content == free_answer(edge)
    receipt = decode_payment_response_header(r.headers["payment-response"])
    assert receipt.success and receipt.transaction.startswith("0x")
    assert receipt.payer == payer.address and receipt.network == edge.chain.network
    assert edge.chain.balance(edge.config.treasury) - before == 10_000
    rid = r.headers["x-request-id"]
    kinds = [e["type"] for e in edge.edge.records("events") if e["requestId"] == rid]
    assert kinds == ["dispatch_start", "payment_verified", "payment_settled", "dispatch_success"]
    settled = next(
        e
        for e in edge.edge.records("events")
        if e["type"] == "payment_settled" and e["requestId"] == rid
    )
    assert settled["details"]["transaction"] == receipt.transaction
    assert settled["details"]["payer"] == payer.address and settled["details"]["amount"] == "10000"


def test_edge_settlement_is_credited_by_reconcile_from_its_events(edge):
    """The Worker's own payment_settled event, ingested as the gateway does, lets reconcile
    credit the tenant: the event carries the nonce, payer, amount and payTo the chain has."""
    from claw402.events.edge import ingest
    from claw402.events.store import EventStore
    from claw402.ledger import balance
    from claw402.ledger.chain import TokenChain
    from claw402.ledger.reconcile import reconcile

    payer = edge.payer()
    r = edge.get(PAGE, edge.sign(payer, "alpha"), headers={"x-request-id": "paid-ledger"})
    assert r.status_code == 200, r.text
    sent = [e for e in edge.edge.records("events") if e.get("correlationId") == "paid-ledger"]
    settled = next(e for e in sent if e["type"] == "payment_settled")
    assert settled["details"]["nonce"].startswith("0x") and len(settled["details"]["nonce"]) == 66
    assert edge.registry is not None and edge.config is not None
    assert ingest(EventStore(edge.registry.engine), orjson.dumps({"events": sent})) == len(sent)
    engine = edge.registry.engine
    chain = TokenChain(edge.chain.web3(), edge.chain.token)
    report = reconcile(engine, chain, edge.config.treasury, grace_seconds=0)
    assert report.edge_settlements == 1 and report.balanced, report.to_json()
    tenant_id = edge.tenants["alpha"].tenant_id
    assert balance(engine, tenant_id).earned == 10_000
    assert reconcile(engine, chain, edge.config.treasury, grace_seconds=0).posted == 0


def test_creator_paid_directly_owes_the_fee_once_reconciled(edge):
    """`beta` is paid to its creator's own wallet: the money never reaches the treasury, so
    reconcile books the edge's settlement from its event as a direct one (the fee owed by the
    creator), once, however often the events are posted or reconcile runs."""
    from claw402.events.edge import ingest
    from claw402.events.store import EventStore
    from claw402.ledger import balance
    from claw402.ledger.chain import TokenChain
    from claw402.ledger.reconcile import reconcile

    assert edge.registry is not None and edge.config is not None and edge.creator is not None
    engine, tenant_id = edge.registry.engine, edge.tenants["beta"].tenant_id
    payer = edge.payer()
    before = edge.chain.balance(edge.creator.address)
    r = edge.get("/t/beta/v1/records?_limit=1", edge.sign(payer, "beta"),
                 headers={"x-request-id": "paid-direct"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert edge.chain.balance(edge.creator.address) - before == 20_000
    sent = [e for e in edge.edge.records("events") if e.get("correlationId") == "paid-direct"]
    settled = next(e for e in sent if e["type"] == "payment_settled")
    assert settled["details"]["payTo"].lower() == edge.creator.address.lower()
    body = orjson.dumps({"events": sent})
    assert ingest(EventStore(engine), body) == len(sent)  # POST /_claw402/events
    chain = TokenChain(edge.chain.web3(), edge.chain.token)
    report = reconcile(engine, chain, edge.config.treasury, grace_seconds=0)
    assert (report.edge_settlements, report.edge_direct) == (1, 1), report.to_json()
    assert report.balanced and report.warnings == [], report.to_json()
    money = balance(engine, tenant_id)
    assert (money.earned, money.paid_direct, money.fees_due) == (20_000, 20_000, 1_000)
    assert money.available == 0  # the platform holds none of it
    ingest(EventStore(engine), body)  # the Worker posts the same batch again
    assert reconcile(engine, chain, edge.config.treasury, grace_seconds=0).posted == 0
    assert balance(engine, tenant_id) == money


def test_replayed_payment_is_refused(edge):
    payment = edge.sign(edge.payer(), "alpha")
    assert edge.get(PAGE, payment).status_code == 200
    again = edge.get(PAGE, payment)
    assert again.status_code == 409 and again.json()["error"] == "payment_replayed"


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        ("not base64!", "payment header is not base64-encoded JSON"),
        (base64.b64encode(b"[1]").decode(), "payment header must encode a JSON object"),
        (base64.b64encode(b'{"x402Version": 3}').decode(), "x402Version must be 1 or 2, got 3"),
    ],
)
def test_unreadable_payment_is_400(edge, header, detail):
    r = edge.get(PAGE, header)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_payment" and r.json()["detail"] == detail


def test_malformed_authorization_is_400(edge):
    payment = edge.sign(edge.payer(), "alpha")
    payment["payload"]["authorization"]["nonce"] = "0x1234"
    r = edge.get(PAGE, payment)
    assert r.status_code == 400 and r.json()["detail"] == "payload.authorization: malformed nonce"


def test_terms_mismatch_is_a_new_challenge(edge):
    payer = edge.payer()
    low = edge.sign(payer, "alpha", value=1, accepted={"amount": "1"})
    r = edge.get(PAGE, low)
    assert r.status_code == 402
    assert (r.json()["error"], r.json()["reason"]) == ("payment_mismatch", "amount_mismatch")
    assert "payment-required" in r.headers
    other_tenant = edge.sign(payer, "alpha")
    r = edge.get("/t/beta/v1/records", other_tenant)
    assert r.json()["reason"] in ("pay_to_mismatch", "amount_mismatch", "tenant_mismatch")


def test_bad_signature_is_refused_and_the_nonce_released(edge):
    payer = edge.payer()
    nonce = os.urandom(32)
    forged = edge.sign(payer, "alpha", nonce=nonce, signer_key="0x" + "11" * 32)
    r = edge.get(PAGE, forged)
    assert r.status_code == 402 and r.json()["error"] == "payment_invalid"
    assert edge.chain.balance(payer.address) == 1_000_000
    honest = edge.sign(payer, "alpha", nonce=nonce)  # the claim was released
    assert edge.get(PAGE, honest).status_code == 200


def test_failed_query_charges_nothing(edge):
    payer = edge.payer()
    payment = edge.sign(payer, "alpha")
    r = edge.get("/t/alpha/v1/records?nope=1", payment)
    assert r.status_code == 400 and r.json()["error"] == "invalid_query"
    assert "payment-response" not in r.headers
    assert edge.chain.balance(payer.address) == 1_000_000
    assert edge.get(PAGE, payment).status_code == 200  # the same payment still works
    assert edge.chain.balance(payer.address) == 1_000_000 - 10_000


def test_payment_identifier_replays_the_stored_answer(edge):
    payer = edge.payer()
    order = "order-" + os.urandom(8).hex()
    ext = {"payment-identifier": {"info": {"required": False, "id": order}}}
    payment = edge.sign(payer, "alpha", extensions=ext)
    first = edge.get(PAGE, payment)
    second = edge.get(PAGE, payment)
    assert first.status_code == second.status_code == 200
    assert second.content == first.content
    assert second.headers["payment-response"] == first.headers["payment-response"]
    assert edge.chain.balance(payer.address) == 1_000_000 - 10_000  # charged once
    conflict = edge.get(PAGE, edge.sign(payer, "alpha", extensions=ext))
    assert conflict.status_code == 409 and conflict.json()["error"] == "payment_id_conflict"


def test_v1_payment(edge):
    payer = edge.payer()
    v2 = edge.sign(payer, "alpha")
    v1 = {
        "x402Version": 1,
        "scheme": "exact",
        "network": edge.chain.network,
        "payload": v2["payload"],
    }
    r = edge.get(PAGE, v1, header="X-PAYMENT")
    assert r.status_code == 200, r.text
    assert r.headers["x-payment-response"] == r.headers["payment-response"]


def test_official_js_client_pays_the_edge(edge):
    payer = edge.payer()
    chain = edge.chain
    report = pay_with_js_client(
        f"{edge.url}{PAGE}", payer.private_key, chain.network, chain.token, 10_000
    )
    assert report["status"] == 200 and report["body"] == json.loads(free_answer(edge))
    assert report["paymentResponse"]["success"] is True


def test_facilitator_down_is_503_and_charges_nothing(edge):
    config = payment_config(edge.chain, "http://127.0.0.1:9")  # nothing listens there
    tenants = list(edge.tenants.values())
    dispatcher = build_dispatcher(tenants, DispatcherOptions(payment=config))
    with LocalEdge(dispatcher, [build_tenant(t) for t in tenants]) as down:
        payer = edge.payer()
        payment = edge.sign(payer, "alpha")
        r = httpx.get(f"{down.url}{PAGE}", headers={"PAYMENT-SIGNATURE": encode(payment)})
        assert r.status_code == 503 and r.json()["error"] == "facilitator_unavailable"
        assert r.headers["retry-after"] == "2"
    assert edge.get(PAGE, payment).status_code == 200  # nothing was charged or claimed there


def test_a_row_priced_tenant_is_paid_the_full_page_at_the_edge(edge):
    """The edge takes exact only, which cannot be partial: a row-priced tenant's 402 asks for
    a full page (the gateway's offer, byte for byte) and a 2-row page moves exactly that; a
    payment of the 2 rows' price alone is refused and moves nothing."""
    tenant = edge.tenants["rows"]
    assert tenant.call_price_atomic == 5_000 and tenant.price_per_1k_rows_atomic == 50_000
    path = "/t/rows/v1/records?_limit=2"
    r = edge.get(path)
    assert r.status_code == 402
    offer = Offer(
        edge.config,
        tenant_id=tenant.tenant_id,
        amount=5_000,
        pay_to=edge.config.treasury,
        description=tenant.offer_description,
    )
    resource = f"{edge.url}/t/rows/v1/records"
    assert r.headers["payment-required"] == offer.challenge(resource, "payment_required").header
    assert "an exact payment cannot be partial" in tenant.offer_description
    assert r.json()["detail"] == (
        f"{resource} costs at most $0.005 per call ($0.05 per 1,000 rows; an exact payment "
        "cannot be partial and pays the full page): pay with x402 (the PAYMENT-REQUIRED header "
        "says how)"
    )

    payer = edge.payer()
    before = edge.chain.balance(edge.config.treasury)
    short = edge.sign(payer, "rows", value=100, accepted={"amount": "100"})
    refused = edge.get(path, short)
    assert refused.status_code == 402 and refused.json()["reason"] == "amount_mismatch"
    assert edge.chain.balance(edge.config.treasury) == before

    paid = edge.get(path, edge.sign(payer, "rows"), headers={"x-request-id": "rows-1"})
    assert paid.status_code == 200, paid.text
    assert len(paid.json()["items"]) == 2
    assert edge.chain.balance(edge.config.treasury) - before == 5_000
    settled = next(
        e
        for e in edge.edge.records("events")
        if e["type"] == "payment_settled" and e.get("correlationId") == "rows-1"
    )
    assert settled["details"]["amount"] == "5000"
