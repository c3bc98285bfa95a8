"""Payment state on both registry backends: claims are unique, released, settled, pending."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy.exc import IntegrityError

from claw402.payments.schema import CLAIMED, PENDING, SETTLED
from claw402.payments.store import ClaimRequest, PaymentStore, SettledPayment, StoredResponse
from claw402.registry.db import make_engine, migrate


@pytest.fixture
def store(database_url: str) -> Iterator[PaymentStore]:
    engine = make_engine(database_url)
    migrate(engine)
    yield PaymentStore(engine)
    engine.dispose()


PAYER = "0xAbC0000000000000000000000000000000000001"


def claim_request(nonce: str, payer: str = PAYER) -> ClaimRequest:
    return ClaimRequest(
        network="eip155:31337",
        payer=payer,
        nonce=nonce,
        tenant_id="tnt_1",
        request_id="req-1",
        amount=10_000,
        asset="0x5FbDB2315678afecb367f032d93F642f64180aa3",
        pay_to="0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    )


def payment(tx_hash: str) -> SettledPayment:
    return SettledPayment(
        network="eip155:31337",
        tx_hash=tx_hash,
        payer="0xabc0000000000000000000000000000000000001",
        amount=10_000,
        asset="0x5FbDB2315678afecb367f032d93F642f64180aa3",
        pay_to="0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
        tenant_id="tnt_1",
        request_id="req-1",
        resource="http://gateway/t/alpha/v1/records",
    )


def test_one_claim_per_authorization_until_released(store: PaymentStore):
    nonce = "0x" + os.urandom(32).hex()
    first = store.claim(claim_request(nonce))
    assert first.won and first.status == CLAIMED
    again = store.claim(claim_request(nonce.upper().replace("0X", "0x")))  # case-insensitive
    assert not again.won and again.status == CLAIMED
    assert store.claim(claim_request(nonce, payer="0x" + "22" * 20)).won  # another payer's nonce
    store.release(first.id)  # type: ignore[arg-type]
    assert store.claim(claim_request(nonce)).won


def test_settled_and_pending_claims_stay(store: PaymentStore):
    settled = store.claim(claim_request("0x" + "01" * 32))
    tx = "0x" + os.urandom(32).hex()
    store.settle(settled.id, payment(tx))  # type: ignore[arg-type]
    store.release(settled.id)  # type: ignore[arg-type]  # no effect on a settled claim
    assert store.claim(claim_request("0x" + "01" * 32)) == type(settled)(None, SETTLED, tx)

    pending = store.claim(claim_request("0x" + "02" * 32))
    store.mark_pending(pending.id, "0xfeed")  # type: ignore[arg-type]
    store.release(pending.id)  # type: ignore[arg-type]
    assert store.claim(claim_request("0x" + "02" * 32)).status == PENDING
    assert [c["tx_hash"] for c in store.pending_claims()] == ["0xfeed"]


def test_a_transaction_is_recorded_once(store: PaymentStore):
    tx = "0x" + os.urandom(32).hex()
    store.settle(store.claim(claim_request("0x" + "03" * 32)).id, payment(tx))  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        store.settle(store.claim(claim_request("0x" + "04" * 32)).id, payment(tx))  # type: ignore[arg-type]


def test_the_first_answer_for_a_payment_id_is_kept(store: PaymentStore):
    first = StoredResponse("a" * 64, 200, {"payment-response": "x"}, b'{"ok":true}')
    store.store_response("pay_0123456789abcdef", "tnt_1", first)
    store.store_response("pay_0123456789abcdef", "tnt_1", StoredResponse("b" * 64, 202, {}, b""))
    assert store.stored_response("pay_0123456789abcdef") == first
    assert store.stored_response("pay_unknown_0123456789") is None


def test_failed_attempts_are_counted_until_the_authorization_is_spent(store: PaymentStore):
    nonce = "0x" + os.urandom(32).hex()
    for attempt in range(3):
        claim = store.claim(claim_request(nonce), max_attempts=3)
        assert claim.won, attempt
        store.release(claim.id, failed=True, verified="d" * 64)  # type: ignore[arg-type]
    spent = store.claim(claim_request(nonce), max_attempts=3)
    assert spent.exhausted and not spent.won
    assert spent.found is not None and spent.found["attempts"] == 3
    assert spent.found["verified_sha256"] == "d" * 64
    assert store.claim(claim_request(nonce), max_attempts=4).won  # a higher bound: one more


def test_an_unavailable_facilitator_does_not_count(store: PaymentStore):
    nonce = "0x" + os.urandom(32).hex()
    for _ in range(5):
        claim = store.claim(claim_request(nonce), max_attempts=1)
        assert claim.won
        store.release(claim.id)  # type: ignore[arg-type]
    taken = store.claim(claim_request(nonce), max_attempts=1)
    assert taken.won
    assert not store.claim(claim_request(nonce), max_attempts=1).won  # held: not released


def test_a_pending_claim_is_taken_back_once_and_served_once(store: PaymentStore):
    pending = store.claim(claim_request("0x" + os.urandom(32).hex()))
    assert pending.id is not None
    store.mark_pending(pending.id, None, "e" * 64)
    assert store.retake_pending(pending.id) and not store.retake_pending(pending.id)
    store.settle(pending.id, payment("0x" + os.urandom(32).hex()), "e" * 64)
    assert not store.mark_served(pending.id)  # the gateway's own settle served it
