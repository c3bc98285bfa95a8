"""The dispatch Worker's payer proof (templates/proof.js, with the shipped @noble modules) under
workerd recovers the same signers as eth-account, and proves the same payers as the gateway's
`limits.signer.proven_payer`, for EIP-3009 authorizations and batch-settlement vouchers."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from x402.mechanisms.evm.batch_settlement.constants import VOUCHER_TYPES
from x402.mechanisms.evm.batch_settlement.utils import get_batch_settlement_eip712_domain

from claw402.chain.eip3009 import Authorization, Domain, sign_authorization
from claw402.cloudflare.bundle import Module, WorkerBundle
from claw402.cloudflare.dispatcher import vouchers_module
from claw402.cloudflare.noble import noble_modules
from claw402.cloudflare.workerd import LocalEdge, template
from claw402.limits.signer import proven_payer
from claw402.payments.config import PaymentConfig
from claw402.payments.voucher_signer import VoucherSigner

TOKEN = "0x" + "ab" * 20
PAY_TO = "0x" + "cd" * 20
CHAIN = 84532
DOMAIN = Domain("USDC", "2", CHAIN, TOKEN)
ZERO = "0x" + "00" * 20
KEYS = [Account.from_key("0x" + f"{i:02x}" * 32) for i in (0x11, 0x22, 0x5A)]
PAYMENT = PaymentConfig(network=f"eip155:{CHAIN}", asset=TOKEN, asset_name=DOMAIN.name,
                         asset_version=DOMAIN.version, facilitator_url="http://127.0.0.1:9",
                         treasury=PAY_TO)  # fmt: skip
TRANSFER = [{"name": n, "type": t} for n, t in (
    ("from", "address"), ("to", "address"), ("value", "uint256"), ("validAfter", "uint256"),
    ("validBefore", "uint256"), ("nonce", "bytes32"))]  # fmt: skip

# A Worker answering POST [[fn, ...args], ...] with each call's result, under workerd.
PROBE = b"""
import { provenPayer, recover, voucherSigner } from "./proof.js";
const hex = (h) => Uint8Array.from(h.slice(2).match(/../g), (b) => parseInt(b, 16));
const calls = {
  provenPayer: (header, now) => provenPayer(header, now),
  recover: (digest, signature) => recover(hex(digest), signature),
  voucherSigner: (chain, channel, amount, signature) =>
    voucherSigner(BigInt(chain), channel, amount, signature),
};
export default {
  async fetch(request) {
    const asked = await request.json();
    return Response.json(asked.map(([fn, ...args]) => calls[fn](...args)));
  },
};
"""


@pytest.fixture(scope="module")
def probe() -> Iterator[Any]:
    modules = (Module("probe.js", PROBE), Module("proof.js", template("proof.js")),
               vouchers_module(PAYMENT), *noble_modules())  # fmt: skip
    bundle = WorkerBundle("proof-probe", modules, {"main_module": "probe.js"})
    with LocalEdge(None, [bundle]) as edge:

        def ask(*calls: list[Any]) -> list[Any]:
            r = httpx.post(edge.url, json=list(calls), timeout=30)
            assert r.status_code == 200, r.text
            return r.json()

        yield ask


def header(payload: dict[str, Any], scheme: str = "exact") -> str:
    accepted = {"scheme": scheme, "network": f"eip155:{CHAIN}", "asset": TOKEN,
                "amount": "1000", "payTo": PAY_TO, "maxTimeoutSeconds": 60,
                "extra": {"name": DOMAIN.name, "version": DOMAIN.version}}  # fmt: skip
    data = {"x402Version": 2, "accepted": accepted, "payload": payload}
    return base64.b64encode(orjson.dumps(data)).decode()


def exact(claimed: str, signer: Any, **bent: Any) -> tuple[str, str, str]:
    """(header, digest, signature) of an authorization naming `claimed`, signed by `signer`."""
    authorization = Authorization.new(claimed, PAY_TO, 1000, valid_for=300)
    signature = "0x" + sign_authorization(signer.key.hex(), authorization, DOMAIN).hex()
    typed = encode_typed_data(domain_data=DOMAIN.as_dict(),
                              message_types={"TransferWithAuthorization": TRANSFER},
                              message_data=authorization.message())  # fmt: skip
    digest = "0x" + _digest(typed).hex()
    inner = {"authorization": {**authorization.as_x402(), **bent}, "signature": signature}
    return header(inner), digest, signature


def _digest(signable: Any) -> bytes:
    from eth_utils import keccak

    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def voucher(payer: str, authorizer: str, signer: Any) -> tuple[str, str, str, str]:
    """(header, channelId, amount, signature) of a voucher signed by `signer`."""
    channel, amount = "0x" + os.urandom(32).hex(), str(int.from_bytes(os.urandom(15), "big"))
    domain = get_batch_settlement_eip712_domain(CHAIN)
    message = {"channelId": channel, "maxClaimableAmount": int(amount)}
    raw = VoucherSigner(signer).sign_typed_data(domain, VOUCHER_TYPES, "Voucher", message)
    signature = "0x" + raw.hex()
    config = {"payer": payer, "payerAuthorizer": authorizer, "receiver": PAY_TO,
              "receiverAuthorizer": PAY_TO, "token": TOKEN, "salt": "0x" + "00" * 32,
              "withdrawDelay": 900}  # fmt: skip
    inner = {"type": "voucher", "channelConfig": config,
             "voucher": {"channelId": channel, "maxClaimableAmount": amount,
                         "signature": signature}}  # fmt: skip
    return header(inner, "batch-settlement"), channel, amount, signature


def eth_account_voucher_signer(channel: str, amount: str, signature: str) -> str:
    typed = encode_typed_data(full_message={
        "types": {"EIP712Domain": [
            {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"}], **VOUCHER_TYPES},
        "primaryType": "Voucher", "domain": get_batch_settlement_eip712_domain(CHAIN),
        "message": {"channelId": channel, "maxClaimableAmount": int(amount)}})  # fmt: skip
    return Account.recover_message(typed, signature=signature).lower()


def test_exact_recovery_equals_eth_accounts(probe) -> None:
    cases = [exact(k.address, k) for k in KEYS] + [exact(KEYS[0].address, KEYS[1])]
    asked = [["recover", digest, signature] for _, digest, signature in cases]
    asked += [["provenPayer", h, time.time()] for h, _, _ in cases]
    answers = probe(*asked)
    recovered, proven = answers[: len(cases)], answers[len(cases) :]
    expected = [Account._recover_hash(bytes.fromhex(d[2:]), signature=s).lower()
                for _, d, s in cases]  # fmt: skip
    assert recovered == expected
    assert expected[-1] == KEYS[1].address.lower()  # the forgery recovers to its real signer
    assert proven == ["w:" + k.address.lower() for k in KEYS] + [None]
    assert proven == [proven_payer(h) for h, _, _ in cases]  # the gateway's answers


def test_a_bent_or_expired_authorization_proves_nothing(probe) -> None:
    key = KEYS[2]
    bent = exact(key.address, key, value="999999")[0]
    late, _, _ = exact(key.address, key)
    unreadable = ["not-base64", base64.b64encode(b"[1]").decode(), ""]
    asked = [["provenPayer", bent, time.time()], ["provenPayer", late, time.time() + 3600]]
    asked += [["provenPayer", h, time.time()] for h in unreadable]
    assert probe(*asked) == [None] * len(asked)
    assert proven_payer(bent) is None and proven_payer(late, time.time() + 3600) is None


def test_voucher_recovery_equals_eth_accounts(probe) -> None:
    victim, attacker = KEYS[0], KEYS[1]
    cases = [
        voucher(victim.address, victim.address, victim),  # the authorizer signs: victim
        voucher(victim.address, ZERO, victim),  # no authorizer: the payer signs
        voucher(victim.address, victim.address, attacker),  # forged
        voucher(victim.address, ZERO, attacker),  # forged
        voucher(victim.address, attacker.address, attacker),  # the caller is who signed
    ]
    asked = [["voucherSigner", str(CHAIN), c, a, s] for _, c, a, s in cases]
    asked += [["provenPayer", h, time.time()] for h, _, _, _ in cases]
    answers = probe(*asked)
    recovered, proven = answers[: len(cases)], answers[len(cases) :]
    assert recovered == [eth_account_voucher_signer(c, a, s) for _, c, a, s in cases]
    me, them = "w:" + victim.address.lower(), "w:" + attacker.address.lower()
    assert proven == [me, me, None, None, them]
    assert proven == [proven_payer(h) for h, _, _, _ in cases]


def test_without_payment_settings_no_voucher_proves_a_payer() -> None:
    """A dispatcher built with no payment settings ships no voucher domain (and no x402 SDK)."""
    assert b"VOUCHER_DOMAIN = Object.freeze(null)" in vouchers_module(None).content
    assert b'"x402 Batch Settlement"' in vouchers_module(PAYMENT).content
