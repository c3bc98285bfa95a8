"""Payment headers: what decodes, and that nothing undecodable escapes as anything but
`InvalidPayment` (the gateway's 400), whatever the bytes."""

from __future__ import annotations

import base64
import contextlib
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claw402.payments.codec import MAX_HEADER_BYTES, InvalidPayment, decode_payment, payment_header

AUTHORIZATION = {
    "from": "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    "to": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "value": "10000",
    "validAfter": "0",
    "validBefore": "9999999999",
    "nonce": "0x" + "ab" * 32,
}
INNER = {"authorization": AUTHORIZATION, "signature": "0x" + "11" * 65}
ACCEPTED = {
    "scheme": "exact",
    "network": "eip155:31337",
    "asset": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    "amount": "10000",
    "payTo": AUTHORIZATION["to"],
    "maxTimeoutSeconds": 120,
    "extra": {"name": "USD Coin", "version": "2"},
}


def b64(value: object) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.b64encode(raw).decode()


def test_v2_and_v1_payloads_decode():
    v2 = decode_payment(b64({"x402Version": 2, "accepted": ACCEPTED, "payload": INNER}))
    assert (v2.version, v2.scheme, v2.network) == (2, "exact", "eip155:31337")
    assert v2.payer == AUTHORIZATION["from"] and v2.nonce == "0x" + "ab" * 32
    assert v2.payment_id is None
    v1 = decode_payment(
        b64({"x402Version": 1, "scheme": "exact", "network": "base", "payload": INNER})
    )
    assert (v1.version, v1.network, v1.accepted) == (1, "base", None)


def test_payment_identifier_is_read_and_checked():
    extension = {"payment-identifier": {"info": {"required": False, "id": "pay_0123456789abcdef"}}}
    payload = {"x402Version": 2, "accepted": ACCEPTED, "payload": INNER, "extensions": extension}
    assert decode_payment(b64(payload)).payment_id == "pay_0123456789abcdef"
    extension["payment-identifier"]["info"]["id"] = "short"
    with pytest.raises(InvalidPayment, match="payment-identifier"):
        decode_payment(b64(payload))


def test_the_v2_header_wins_over_v1():
    assert payment_header({"payment-signature": "a", "x-payment": "b"}) == "a"
    assert payment_header({"x-payment": "b"}) == "b"
    assert payment_header({}) is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "!!!not base64!!!",
        b64(b"not json"),
        b64([1, 2, 3]),
        b64({"x402Version": 3, "accepted": ACCEPTED, "payload": INNER}),
        b64({"x402Version": True, "accepted": ACCEPTED, "payload": INNER}),
        b64({"x402Version": 2, "payload": INNER}),
        b64({"x402Version": 2, "accepted": ACCEPTED, "payload": {}}),
        b64({"x402Version": 2, "accepted": ACCEPTED, "payload": {**INNER, "signature": "0x12"}}),
        b64(
            {
                "x402Version": 2,
                "accepted": ACCEPTED,
                "payload": {**INNER, "authorization": {**AUTHORIZATION, "value": "-1"}},
            }
        ),
        b64({"x402Version": 2, "accepted": ACCEPTED, "payload": INNER})[:-40],
        "A" * (MAX_HEADER_BYTES + 1),
        b64(os.urandom(900)),
    ],
)
def test_garbage_is_invalid_payment(value):
    with pytest.raises(InvalidPayment):
        decode_payment(value)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=400), st.binary(max_size=400).map(b64)))
def test_no_input_raises_anything_else(value):
    with contextlib.suppress(InvalidPayment):
        decode_payment(value)
