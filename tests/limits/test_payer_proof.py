"""A wallet is the rate-limit caller only once its signature is proven: a forged header naming
a victim's wallet counts against the sender's address, never against the victim's budget."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import orjson
from eth_account import Account
from eth_account.messages import encode_typed_data
from gwlimits import open_gateway
from x402.mechanisms.evm.batch_settlement.constants import VOUCHER_TYPES
from x402.mechanisms.evm.batch_settlement.utils import get_batch_settlement_eip712_domain

from claw402.chain.eip3009 import Authorization, Domain, sign_authorization
from claw402.limits.caller import Callers, parse_proxies
from claw402.limits.counters import MemoryCounters
from claw402.limits.limiter import Limiter
from claw402.limits.signer import _token_separator, _voucher_separator, proven_payer
from claw402.payments.channels.lane import voucher_separator
from claw402.payments.voucher_signer import VoucherSigner
from claw402.registry.deploy import DeployRequest, deploy
from claw402.samples import CITIES
from claw402.tenant_api.answer import error_answer

TOKEN = "0x" + "ab" * 20
PAY_TO = "0x" + "cd" * 20
VICTIM = Account.from_key("0x" + "11" * 32)
ATTACKER = Account.from_key("0x" + "22" * 32)
DOMAIN = Domain("USD Coin", "2", 31337, TOKEN)


def _accepted(scheme: str = "exact") -> dict[str, Any]:
    return {"scheme": scheme, "network": "eip155:31337", "asset": TOKEN, "amount": "1000",
            "payTo": PAY_TO, "maxTimeoutSeconds": 60,
            "extra": {"name": DOMAIN.name, "version": DOMAIN.version}}  # fmt: skip


def _header(payload: dict[str, Any]) -> str:
    return base64.b64encode(orjson.dumps(payload)).decode()


def exact(claimed: str, key: str, *, valid_for: int = 300, **bent: Any) -> str:
    """A v2 `exact` header whose authorization names `claimed`, signed with `key`."""
    authorization = Authorization.new(claimed, PAY_TO, 1000, valid_for=valid_for)
    signature = sign_authorization(key, authorization, DOMAIN)
    fields = {**authorization.as_x402(), **bent}
    inner = {"authorization": fields, "signature": "0x" + signature.hex()}
    return _header({"x402Version": 2, "accepted": _accepted(), "payload": inner})


def voucher(payer: str, authorizer: str, signer: Any) -> str:
    """A v2 channel voucher for a channel whose config names `payer` and `authorizer`."""
    channel = "0x" + os.urandom(32).hex()
    message = {"channelId": channel, "maxClaimableAmount": 5000}
    domain = get_batch_settlement_eip712_domain(31337)
    signature = VoucherSigner(signer).sign_typed_data(domain, VOUCHER_TYPES, "Voucher", message)
    config = {"payer": payer, "payerAuthorizer": authorizer, "receiver": PAY_TO,
              "receiverAuthorizer": PAY_TO, "token": TOKEN, "salt": "0x" + "00" * 32,
              "withdrawDelay": 900}  # fmt: skip
    inner = {"type": "voucher", "channelConfig": config,
             "voucher": {"channelId": channel, "maxClaimableAmount": "5000",
                         "signature": "0x" + signature.hex()}}  # fmt: skip
    return _header({"x402Version": 2, "accepted": _accepted("batch-settlement"),
                    "payload": inner})  # fmt: skip


def test_the_separators_are_the_eip712_ones() -> None:
    signable = encode_typed_data(
        domain_data=DOMAIN.as_dict(),
        message_types={"TransferWithAuthorization": [
            {"name": n, "type": t} for n, t in (("from", "address"), ("to", "address"),
            ("value", "uint256"), ("validAfter", "uint256"), ("validBefore", "uint256"),
            ("nonce", "bytes32"))]},
        message_data=Authorization.new(VICTIM.address, PAY_TO, 1).message(),
    )  # fmt: skip
    assert _token_separator(DOMAIN.name, DOMAIN.version, 31337, TOKEN) == bytes(signable.header)
    assert _voucher_separator(31337) == voucher_separator(31337)


def test_only_a_signature_proves_an_exact_payer() -> None:
    victim = "w:" + VICTIM.address.lower()
    assert proven_payer(exact(VICTIM.address, VICTIM.key.hex())) == victim
    assert proven_payer(exact(VICTIM.address, ATTACKER.key.hex())) is None  # forged
    assert proven_payer(exact(VICTIM.address, VICTIM.key.hex(), value="999999")) is None
    assert proven_payer(exact(VICTIM.address, VICTIM.key.hex(), valid_for=-1)) is None
    assert proven_payer("not-base64") is None
    v1 = orjson.loads(base64.b64decode(exact(VICTIM.address, VICTIM.key.hex())))
    v1 = {"x402Version": 1, "scheme": "exact", "network": "eip155:31337",
          "payload": v1["payload"]}  # fmt: skip
    assert proven_payer(_header(v1)) is None  # names no token domain: nothing to check against


def test_a_voucher_proves_its_signer_never_the_payer_it_names() -> None:
    zero = "0x" + "00" * 20
    me = "w:" + VICTIM.address.lower()
    assert proven_payer(voucher(VICTIM.address, VICTIM.address, VICTIM)) == me
    assert proven_payer(voucher(VICTIM.address, zero, VICTIM)) == me  # the payer signs
    assert proven_payer(voucher(VICTIM.address, VICTIM.address, ATTACKER)) is None
    assert proven_payer(voucher(VICTIM.address, zero, ATTACKER)) is None
    # Anyone may write a config naming the victim as payer with their own authorizer:
    # that caller is the authorizer who signed.
    named = proven_payer(voucher(VICTIM.address, ATTACKER.address, ATTACKER))
    assert named == "w:" + ATTACKER.address.lower()


def test_a_forged_header_naming_a_wallet_does_not_spend_its_budget(tmp_path: Path) -> None:
    async def guard(call, produce):  # type: ignore[no-untyped-def]
        return error_answer(402, "payment_required", call.request_id)

    with open_gateway(tmp_path, guard=guard) as (settings, registry, gateway, client):
        deploy(registry, settings, DeployRequest(source=CITIES, slug="paid", price="0.01",
                                                 rate="2/h"))  # fmt: skip
        gateway.limiter = Limiter(MemoryCounters(), None, Callers(parse_proxies("127.0.0.1")))
        url = "/t/paid/v1/records"

        def get(client_ip: str, header: str) -> int:
            sent = {"x-forwarded-for": client_ip, "payment-signature": header}
            return client.get(url, headers=sent).status_code

        forged = [exact(VICTIM.address, ATTACKER.key.hex()) for _ in range(3)]
        # The attacker's forgeries count against the attacker's own address.
        assert [get("9.9.9.1", h) for h in forged] == [402, 402, 429]
        # The victim's budget is whole: two genuine calls, from anywhere, then refused.
        genuine = [exact(VICTIM.address, VICTIM.key.hex()) for _ in range(3)]
        ips = ("9.9.9.2", "9.9.9.3", "9.9.9.4")
        answers = [get(ip, h) for ip, h in zip(ips, genuine, strict=True)]
        assert answers == [402, 402, 429]


def test_the_limits_step_and_the_paywall_decode_and_recover_a_payment_once(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Proving the payer costs the limits step a decode and a signature recovery; the paywall
    and the voucher lane must not pay for them again on the same request."""
    from claw402.payments import codec
    from claw402.payments.channels import lane

    decoded: list[str] = []
    recovered: list[int] = []
    real_decode, real_recover = codec.decode_payment, lane._recover
    monkeypatch.setattr(codec, "decode_payment", lambda v: decoded.append(v) or real_decode(v))
    monkeypatch.setattr(lane, "_recover", lambda *a: recovered.append(1) or real_recover(*a))
    seen: list[Any] = []

    async def guard(call, produce):  # type: ignore[no-untyped-def]
        payment = codec.decode_once(call, call.headers["payment-signature"])  # as the paywall
        inner = payment.inner
        separator = voucher_separator(31337)
        amount = int(inner["voucher"]["maxClaimableAmount"])  # as the lane checks it
        seen.append(lane.voucher_signer_of(separator, inner["voucher"]["channelId"], amount,
                                           inner["voucher"]["signature"]))  # fmt: skip
        return error_answer(402, "payment_required", call.request_id)

    with open_gateway(tmp_path, guard=guard) as (settings, registry, gateway, client):
        deploy(registry, settings, DeployRequest(source=CITIES, slug="paid", price="0.01"))
        gateway.limiter = Limiter(MemoryCounters(), None, Callers(parse_proxies(None)))
        header = voucher(VICTIM.address, VICTIM.address, VICTIM)
        sent = {"payment-signature": header}
        assert client.get("/t/paid/v1/records", headers=sent).status_code == 402
    assert decoded == [header]
    assert recovered == [1]
    assert seen == [bytes.fromhex(VICTIM.address[2:].lower())]
