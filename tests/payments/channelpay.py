"""Paying a gateway through a batch-settlement channel with the SDK's own client scheme.

`ChannelPayer.call` does what an x402 HTTP client does, in the open so tests can see each
step: GET -> 402 -> the SDK client signs (a deposit first, then cumulative vouchers) -> GET
with `PAYMENT-SIGNATURE` -> the `PAYMENT-RESPONSE` goes back to the client scheme, which
tracks the channel's charged total from it. `voucher` signs a voucher by hand, for threats.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx
from eth_account import Account
from x402 import x402ClientSync
from x402.http.utils import decode_payment_required_header, decode_payment_response_header
from x402.mechanisms.evm.batch_settlement.client import (
    BatchSettlementEvmScheme as ClientScheme,
)
from x402.mechanisms.evm.batch_settlement.client import BatchSettlementEvmSchemeOptions
from x402.mechanisms.evm.batch_settlement.client.voucher import sign_voucher
from x402.mechanisms.evm.batch_settlement.types import ChannelConfig
from x402.mechanisms.evm.batch_settlement.utils import compute_channel_id
from x402.mechanisms.evm.signers import EthAccountSigner
from x402.schemas import PaymentPayload, PaymentRequired, PaymentResponseContext

from claw402.chain.wallet import Wallet

SCHEME = "batch-settlement"


def encode(payload: PaymentPayload | dict[str, Any]) -> str:
    data = payload if isinstance(payload, dict) else payload.model_dump(by_alias=True)
    return base64.b64encode(json.dumps(data).encode()).decode()


@dataclass
class ChannelPayer:
    wallet: Wallet
    network: str
    token: str
    salt: str = field(default_factory=lambda: "0x" + secrets.token_hex(32))
    client: x402ClientSync = field(init=False)
    scheme: ClientScheme = field(init=False)

    def __post_init__(self) -> None:
        signer = EthAccountSigner(Account.from_key(self.wallet.private_key))
        self.scheme = ClientScheme(signer, BatchSettlementEvmSchemeOptions(salt=self.salt))
        self.client = x402ClientSync()
        self.client.register(self.network, self.scheme)
        self.client.set_spend_controls(
            {"allowed_assets": [{"network": self.network, "asset": self.token}]}
        )

    def sign(self, url: str) -> PaymentPayload:
        """The next payment the SDK client makes for `url`'s 402 (not sent)."""
        challenge = httpx.get(url, timeout=10)
        assert challenge.status_code == 402, challenge.text
        required = decode_payment_required_header(challenge.headers["payment-required"])
        payload = self.client.create_payment_payload(required)
        assert isinstance(payload, PaymentPayload)
        return payload

    def send(self, url: str, payload: PaymentPayload | dict[str, Any]) -> httpx.Response:
        answer = httpx.get(url, headers={"PAYMENT-SIGNATURE": encode(payload)}, timeout=30)
        if answer.status_code == 200 and isinstance(payload, PaymentPayload):
            self.receipt(payload, answer)
        return answer

    def receipt(self, payload: PaymentPayload, answer: httpx.Response) -> None:
        """Give the client scheme the `PAYMENT-RESPONSE` of a paid answer, as HTTP clients do."""
        self.client.handle_payment_response(
            PaymentResponseContext(
                payment_payload=payload,
                requirements=payload.accepted,
                settle_response=decode_payment_response_header(answer.headers["payment-response"]),
            )
        )

    def call(self, url: str) -> tuple[httpx.Response, PaymentPayload]:
        payload = self.sign(url)
        return self.send(url, payload), payload


def config_of(payload: PaymentPayload) -> ChannelConfig:
    return ChannelConfig.from_dict(payload.payload["channelConfig"])


def voucher(
    like: PaymentPayload, key: str, cumulative: int, config: ChannelConfig | None = None
) -> dict[str, Any]:
    """A voucher payload for `like`'s channel (or `config`), signed by `key`, as a dict."""
    config = config or config_of(like)
    channel_id = compute_channel_id(config, like.accepted.network)
    signed = sign_voucher(
        EthAccountSigner(Account.from_key(key)), channel_id, cumulative, like.accepted.network
    )
    return {
        "x402Version": 2,
        "accepted": like.accepted.model_dump(by_alias=True),
        "payload": {
            "type": "voucher",
            "channelConfig": config.to_dict(),
            "voucher": signed.to_dict(),
        },
    }


def required_of(answer: httpx.Response) -> PaymentRequired:
    return decode_payment_required_header(answer.headers["payment-required"])
