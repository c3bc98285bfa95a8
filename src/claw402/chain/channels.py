"""The x402 `batch-settlement` contracts on a dev chain, at the addresses the SDK expects.

The SDK hard-codes the canonical CREATE2 addresses of the escrow and its ERC-3009 deposit
collector. Locally we run our own contracts (contracts/BatchSettlement.sol,
contracts/ERC3009DepositCollector.sol) there: each constructor runs in an `eth_call`, which
returns the runtime code with its immutables filled in, and `anvil_setCode` puts that code at
the canonical address. Storage written by a constructor would not travel, so neither contract
keeps any: the escrow derives its EIP-712 domain from `address(this)`, the collector holds
the escrow's address as an immutable.
"""

from __future__ import annotations

from typing import Any

from eth_abi import encode
from eth_account.signers.local import LocalAccount
from web3 import Web3
from x402.mechanisms.evm.batch_settlement.authorizer_signer import (
    LocalAuthorizerSigner,
    sign_claim_batch,
    sign_refund,
)
from x402.mechanisms.evm.batch_settlement.client.eip3009 import (
    create_batch_settlement_eip3009_deposit_payload,
)
from x402.mechanisms.evm.batch_settlement.client.voucher import sign_voucher
from x402.mechanisms.evm.batch_settlement.constants import (
    BATCH_SETTLEMENT_ADDRESS,
    ERC3009_DEPOSIT_COLLECTOR_ADDRESS,
)
from x402.mechanisms.evm.batch_settlement.facilitator.claim import build_voucher_claim_args
from x402.mechanisms.evm.batch_settlement.facilitator.deposit_eip3009 import (
    build_eip3009_deposit_collector_data,
)
from x402.mechanisms.evm.batch_settlement.facilitator.utils import to_contract_channel_config
from x402.mechanisms.evm.batch_settlement.types import ChannelConfig, VoucherClaim
from x402.mechanisms.evm.batch_settlement.utils import compute_channel_id
from x402.mechanisms.evm.signers import EthAccountSigner
from x402.schemas import PaymentRequirements

from claw402.chain.artifacts import load_artifact

__all__ = [
    "BATCH_SETTLEMENT_ADDRESS",
    "ERC3009_DEPOSIT_COLLECTOR_ADDRESS",
    "Escrow",
    "install_batch_settlement",
    "runtime_code",
]


def runtime_code(w3: Web3, init_code: str) -> str:
    """The code a deployment of `init_code` would leave on chain, without sending anything."""
    code = w3.eth.call({"data": init_code})  # type: ignore[typeddict-item]
    if not code:
        raise RuntimeError("the constructor returned no code")
    return "0x" + bytes(code).hex()


def install_batch_settlement(w3: Web3) -> None:
    """Put the escrow and the ERC-3009 collector at their canonical addresses, if absent."""
    settlement = load_artifact("BatchSettlement").bytecode
    collector = (
        load_artifact("ERC3009DepositCollector").bytecode
        + encode(["address"], [BATCH_SETTLEMENT_ADDRESS]).hex()
    )
    for address, init_code in (
        (BATCH_SETTLEMENT_ADDRESS, settlement),
        (ERC3009_DEPOSIT_COLLECTOR_ADDRESS, collector),
    ):
        if w3.eth.get_code(address):
            continue
        code = runtime_code(w3, init_code)
        w3.provider.make_request("anvil_setCode", [address, code])  # type: ignore[arg-type]


class Escrow:
    """The escrow driven directly from Python: what tests, benchmarks and audits need.

    Payloads are built with the SDK's own helpers (channel ids, EIP-712 vouchers, the
    ERC-3009 deposit authorization), so a call here is what the facilitator would send.
    """

    def __init__(self, w3: Web3, token_name: str, token_version: str) -> None:
        self.w3 = w3
        self.contract = w3.eth.contract(
            address=BATCH_SETTLEMENT_ADDRESS, abi=load_artifact("BatchSettlement").abi
        )
        self.token_name = token_name
        self.token_version = token_version

    @property
    def network(self) -> str:
        return f"eip155:{self.w3.eth.chain_id}"

    def channel_id(self, config: ChannelConfig) -> str:
        return compute_channel_id(config, self.network)

    def channel(self, config: ChannelConfig) -> tuple[int, int]:
        """(balance, totalClaimed) on chain."""
        balance, claimed = self.contract.functions.channels(_b32(self.channel_id(config))).call()
        return int(balance), int(claimed)

    def deposit_call(self, payer: LocalAccount, config: ChannelConfig, amount: int) -> Any:
        """`deposit(...)` carrying `payer`'s signed ERC-3009 authorization, as the SDK builds it."""
        requirements = PaymentRequirements(
            scheme="batch-settlement",
            network=self.network,
            asset=config.token,
            amount=str(amount),
            pay_to=config.receiver,
            max_timeout_seconds=3600,
            extra={"name": self.token_name, "version": self.token_version},
        )
        payload = create_batch_settlement_eip3009_deposit_payload(
            EthAccountSigner(payer), requirements, config, amount, amount
        )
        return self.contract.functions.deposit(
            to_contract_channel_config(config),
            amount,
            ERC3009_DEPOSIT_COLLECTOR_ADDRESS,
            build_eip3009_deposit_collector_data(payload),
        )

    def voucher(self, signer: LocalAccount, config: ChannelConfig, max_claimable: int) -> str:
        """The signature of a cumulative voucher for `config`'s channel."""
        fields = sign_voucher(
            EthAccountSigner(signer), self.channel_id(config), max_claimable, self.network
        )
        return fields.signature

    def claims(self, rows: list[VoucherClaim]) -> list[tuple[Any, ...]]:
        """`VoucherClaim`s as the tuples `claim` / `claimWithSignature` take."""
        return build_voucher_claim_args(rows)

    def claim_batch_signature(self, authorizer: LocalAccount, rows: list[VoucherClaim]) -> bytes:
        signature = sign_claim_batch(LocalAuthorizerSigner(authorizer), rows, self.network)
        return bytes.fromhex(signature.removeprefix("0x"))

    def refund_signature(
        self, authorizer: LocalAccount, config: ChannelConfig, amount: int, nonce: int
    ) -> bytes:
        signature = sign_refund(
            LocalAuthorizerSigner(authorizer), self.channel_id(config), amount, nonce, self.network
        )
        return bytes.fromhex(signature.removeprefix("0x"))


def _b32(hex_value: str) -> bytes:
    return bytes.fromhex(hex_value.removeprefix("0x"))
