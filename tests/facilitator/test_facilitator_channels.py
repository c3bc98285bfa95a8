"""batch-settlement through the real facilitator over HTTP, on anvil with our escrow contracts.

Payers use the SDK's own client scheme, the receiver the SDK's server scheme (in-memory channel
storage) and channel manager: exactly the parts a gateway will compose. Each test pays a fresh
receiver address so claims and settlements of other tests never mix into its balances.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from eth_account import Account
from web3.exceptions import ContractCustomError
from x402 import x402ClientSync, x402ResourceServerSync
from x402.http import HTTPFacilitatorClientSync
from x402.mechanisms.evm.batch_settlement.abi import BATCH_SETTLEMENT_ABI
from x402.mechanisms.evm.batch_settlement.client import (
    BatchSettlementEvmScheme as ClientScheme,
)
from x402.mechanisms.evm.batch_settlement.client import BatchSettlementEvmSchemeOptions
from x402.mechanisms.evm.batch_settlement.client.voucher import sign_voucher
from x402.mechanisms.evm.batch_settlement.constants import BATCH_SETTLEMENT_ADDRESS
from x402.mechanisms.evm.batch_settlement.errors import (
    ERR_AUTHORIZER_ADDRESS_MISMATCH,
    ERR_CHANNEL_ID_MISMATCH,
    ERR_CUMULATIVE_AMOUNT_BELOW_CLAIMED,
    ERR_CUMULATIVE_AMOUNT_MISMATCH,
    ERR_CUMULATIVE_EXCEEDS_BALANCE,
    ERR_INVALID_VOUCHER_SIGNATURE,
    ERR_NOTHING_TO_SETTLE,
    ERR_RECEIVER_MISMATCH,
)
from x402.mechanisms.evm.batch_settlement.facilitator.utils import to_contract_channel_config
from x402.mechanisms.evm.batch_settlement.server import (
    BatchSettlementChannelManagerSync,
    ChannelManagerConfigSync,
)
from x402.mechanisms.evm.batch_settlement.server import (
    BatchSettlementEvmScheme as ServerScheme,
)
from x402.mechanisms.evm.batch_settlement.server.channel_manager_common import (
    build_payment_requirements,
    build_settle_payment_payload,
)
from x402.mechanisms.evm.batch_settlement.types import ChannelConfig, VoucherClaim
from x402.mechanisms.evm.batch_settlement.utils import compute_channel_id
from x402.mechanisms.evm.signers import EthAccountSigner
from x402.schemas import (
    PaymentPayload,
    PaymentRequired,
    PaymentRequirements,
    PaymentResponseContext,
    ResourceConfig,
)
from x402.schemas.errors import PaymentAbortedError

from claw402.chain.channels import Escrow
from claw402.chain.devchain import DevChain
from claw402.chain.tx import transact
from claw402.chain.wallet import Wallet
from claw402.facilitator.client import facilitator_config
from claw402.facilitator.server import background_server
from claw402.facilitator.service import INVALID_PAYLOAD
from claw402.facilitator.settings import FacilitatorSettings
from claw402.facilitator.signer import SETTLE_GAS_LIMIT

PRICE = 1_000  # 0.001 test USDC per call
SCHEME = "batch-settlement"


@dataclass
class Receiver:
    """A resource server's side of batch settlement: SDK server scheme + channel manager."""

    address: str
    server: x402ResourceServerSync
    scheme: ServerScheme
    manager: BatchSettlementChannelManagerSync
    requirements: PaymentRequirements
    facilitator: HTTPFacilitatorClientSync


@dataclass
class Payer:
    wallet: Wallet
    client: x402ClientSync

    def pay(self, receiver: Receiver) -> tuple[PaymentPayload, Any]:
        """One paid call: sign, let the server verify and settle, feed the receipt back."""
        req = receiver.requirements
        payload = self.client.create_payment_payload(PaymentRequired(x402_version=2, accepts=[req]))
        verified = receiver.server.verify_payment(payload, req)
        assert verified.is_valid, verified.invalid_reason
        settled = receiver.server.settle_payment(payload, req)
        assert settled.success, settled.error_reason
        self.client.handle_payment_response(
            PaymentResponseContext(
                payment_payload=payload, requirements=req, settle_response=settled
            )
        )
        return payload, settled


@pytest.fixture
def make_receiver(chain: DevChain, facilitator_url: str) -> Iterator[Callable[[], Receiver]]:
    clients: list[HTTPFacilitatorClientSync] = []

    def make() -> Receiver:
        address = Account.create().address
        facilitator = HTTPFacilitatorClientSync(facilitator_config(facilitator_url))
        clients.append(facilitator)
        server = x402ResourceServerSync(facilitator)
        scheme = ServerScheme(address)
        server.register(chain.network, scheme)
        server.initialize()
        price = {"amount": str(PRICE), "asset": chain.token, "extra": dict(chain.asset_extra)}
        resource = ResourceConfig(
            scheme=SCHEME,
            pay_to=address,
            price=price,
            network=chain.network,
            max_timeout_seconds=300,
        )
        manager = BatchSettlementChannelManagerSync(
            ChannelManagerConfigSync(
                scheme=scheme,
                facilitator=facilitator,
                receiver=address,
                token=chain.token,
                network=chain.network,
            )
        )
        requirements = server.build_payment_requirements(resource)[0]
        return Receiver(address, server, scheme, manager, requirements, facilitator)

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def make_payer(chain: DevChain) -> Callable[[Wallet], Payer]:
    def make(wallet: Wallet) -> Payer:
        options = BatchSettlementEvmSchemeOptions(salt="0x" + secrets.token_hex(32))
        client = x402ClientSync()
        client.register(
            chain.network,
            ClientScheme(EthAccountSigner(Account.from_key(wallet.private_key)), options),
        )
        client.set_spend_controls(
            {"allowed_assets": [{"network": chain.network, "asset": chain.token}]}
        )
        return Payer(wallet, client)

    return make


def _escrow(chain: DevChain) -> Any:
    return chain.web3().eth.contract(address=BATCH_SETTLEMENT_ADDRESS, abi=BATCH_SETTLEMENT_ABI)


def _channel(chain: DevChain, channel_id: str) -> tuple[int, int]:
    balance, claimed = _escrow(chain).functions.channels(bytes.fromhex(channel_id[2:])).call()
    return int(balance), int(claimed)


def _config(payload: PaymentPayload) -> ChannelConfig:
    return ChannelConfig.from_dict(payload.payload["channelConfig"])


def _voucher_payload(
    accepted: PaymentRequirements, config: ChannelConfig, key: str, amount: int
) -> PaymentPayload:
    """A voucher payload signed by `key` for a cumulative `amount` (made outside the client)."""
    channel_id = compute_channel_id(config, accepted.network)
    signer = EthAccountSigner(Account.from_key(key))
    voucher = sign_voucher(signer, channel_id, amount, accepted.network)
    raw = {"type": "voucher", "channelConfig": config.to_dict(), "voucher": voucher.to_dict()}
    return PaymentPayload(x402_version=2, payload=raw, accepted=accepted)


def test_supported_lists_batch_settlement_with_the_receiver_authorizer(
    facilitator: Any, chain: DevChain
) -> None:
    kinds = {kind.scheme: kind for kind in facilitator.supported().kinds}
    assert set(kinds) == {"exact", SCHEME}
    assert kinds[SCHEME].network == chain.network
    assert kinds[SCHEME].extra == {"receiverAuthorizer": chain.facilitator.address}


def test_a_dedicated_authorizer_key_is_advertised_and_signs(chain: DevChain) -> None:
    settings = FacilitatorSettings(
        rpc_url=chain.rpc_url,
        private_key=chain.facilitator.private_key,
        network=chain.network,
        authorizer_private_key=chain.deployer.private_key,
    )
    with background_server(settings) as server:
        facilitator = HTTPFacilitatorClientSync(facilitator_config(server.url))
        kinds = {kind.scheme: kind for kind in facilitator.get_supported().kinds}
        assert kinds[SCHEME].extra == {"receiverAuthorizer": chain.deployer.address}
        assert facilitator.get_supported().signers == {"eip155:*": [chain.facilitator.address]}
        # It signs the ClaimBatch of a channel that names the dedicated key.
        escrow, payer = Escrow(chain.web3(), chain.token_name, chain.token_version), chain.payers[1]
        config = ChannelConfig(
            payer=payer.address,
            payer_authorizer=payer.address,
            receiver=Account.create().address,
            receiver_authorizer=chain.deployer.address,
            token=chain.token,
            withdraw_delay=900,
            salt="0x" + secrets.token_hex(32),
        )
        transact(
            chain.web3(), chain.deployer.account, escrow.deposit_call(payer.account, config, PRICE)
        )
        row = VoucherClaim(
            config, str(PRICE), escrow.voucher(payer.account, config, PRICE), str(PRICE)
        )
        requirements = PaymentRequirements(
            scheme=SCHEME,
            network=chain.network,
            asset=chain.token,
            amount="0",
            pay_to=config.receiver,
            max_timeout_seconds=0,
            extra={},
        )
        raw = {"type": "claim", "claims": [row.to_dict()]}
        payload = PaymentPayload(x402_version=2, payload=raw, accepted=requirements)
        result = facilitator.settle(payload, requirements)
        facilitator.close()
    assert result.success, result.error_reason
    assert escrow.channel(config) == (PRICE, PRICE)


def test_deposit_vouchers_one_claim_settle_refund_to_the_unit(
    chain: DevChain, make_receiver: Callable[[], Receiver], make_payer: Callable[[Wallet], Payer]
) -> None:
    receiver = make_receiver()
    alice, bob = make_payer(chain.payers[0]), make_payer(chain.payers[1])
    start = {p.wallet.address: chain.balance(p.wallet.address) for p in (alice, bob)}
    calls = {alice.wallet.address: 4, bob.wallet.address: 3}

    first, settled = alice.pay(receiver)
    assert first.payload["type"] == "deposit" and settled.transaction
    deposit = int(first.payload["deposit"]["amount"])
    assert deposit == 10 * PRICE  # the server's minDeposit hint: 10 calls
    for _ in range(calls[alice.wallet.address] - 1):
        payload, settled = alice.pay(receiver)
        assert payload.payload["type"] == "voucher" and settled.transaction == ""
    for _ in range(calls[bob.wallet.address]):
        bob.pay(receiver)
    channel_a = compute_channel_id(_config(first), chain.network)
    # Vouchers moved nothing yet: the deposits sit in escrow, nothing is claimed.
    assert _channel(chain, channel_a) == (deposit, 0)
    assert chain.balance(receiver.address) == 0

    claims = receiver.manager.claim()
    assert [c.vouchers for c in claims] == [2]  # both channels in one transaction
    assert _channel(chain, channel_a) == (deposit, 4 * PRICE)
    # What the channel manager's settle() sends; the answer names the amount transferred.
    requirements = build_payment_requirements(receiver.address, chain.token, chain.network)
    payload = build_settle_payment_payload(requirements, receiver.address, chain.token)
    settled = receiver.facilitator.settle(payload, requirements)
    assert settled.success and settled.amount == str(7 * PRICE)
    assert chain.balance(receiver.address) == 7 * PRICE

    refunds = receiver.manager.refund()
    assert len(refunds) == 2
    for payer in (alice, bob):
        spent = calls[payer.wallet.address] * PRICE
        assert chain.balance(payer.wallet.address) == start[payer.wallet.address] - spent
    assert _channel(chain, channel_a) == (4 * PRICE, 4 * PRICE)  # claimed stays claimed
    with pytest.raises(RuntimeError, match=ERR_NOTHING_TO_SETTLE):
        receiver.manager.settle()


def test_a_timed_withdrawal_shows_in_verify_and_is_met_by_a_claim(
    chain: DevChain, make_receiver: Callable[[], Receiver], make_payer: Callable[[Wallet], Payer]
) -> None:
    receiver = make_receiver()
    payer = make_payer(chain.payers[3])
    first, _ = payer.pay(receiver)
    payer.pay(receiver)
    config = _config(first)
    deposit = int(first.payload["deposit"]["amount"])
    escrow = Escrow(chain.web3(), chain.token_name, chain.token_version)
    onchain = to_contract_channel_config(config)
    # The payer tries to leave with everything, the two calls it owes included.
    transact(
        chain.web3(),
        payer.wallet.account,
        escrow.contract.functions.initiateWithdraw(onchain, deposit),
    )
    next_voucher = _voucher_payload(first.accepted, config, payer.wallet.private_key, 3 * PRICE)
    verified = receiver.facilitator.verify(next_voucher, receiver.requirements)
    assert verified.is_valid and verified.extra["withdrawRequestedAt"] > 0
    early = escrow.contract.functions.finalizeWithdraw(onchain)
    with pytest.raises(ContractCustomError):
        early.call({"from": payer.wallet.address})
    # Before the delay ends the receiver claims what it is owed: the withdrawal cannot take it.
    assert [c.vouchers for c in receiver.manager.claim()] == [1]
    assert escrow.channel(config) == (deposit, 2 * PRICE)
    receiver.manager.settle()
    assert chain.balance(receiver.address) == 2 * PRICE


def test_replayed_voucher_is_refused(
    chain: DevChain, make_receiver: Callable[[], Receiver], make_payer: Callable[[Wallet], Payer]
) -> None:
    receiver = make_receiver()
    payer = make_payer(chain.payers[2])
    payer.pay(receiver)
    second, _ = payer.pay(receiver)
    # The server already counted this voucher: a replay does not match its cumulative total.
    with pytest.raises(PaymentAbortedError, match=ERR_CUMULATIVE_AMOUNT_MISMATCH):
        receiver.server.verify_payment(second, receiver.requirements)
    # Once claimed, the facilitator refuses it against the chain's claimed total too.
    receiver.manager.claim()
    again = receiver.facilitator.verify(second, receiver.requirements)
    assert not again.is_valid and again.invalid_reason == ERR_CUMULATIVE_AMOUNT_BELOW_CLAIMED


def test_voucher_past_the_deposit_is_refused(
    chain: DevChain, make_receiver: Callable[[], Receiver], make_payer: Callable[[Wallet], Payer]
) -> None:
    receiver = make_receiver()
    payer = make_payer(chain.payers[0])
    first, _ = payer.pay(receiver)
    deposit = int(first.payload["deposit"]["amount"])
    greedy = _voucher_payload(first.accepted, _config(first), payer.wallet.private_key, deposit + 1)
    result = receiver.facilitator.verify(greedy, receiver.requirements)
    assert not result.is_valid and result.invalid_reason == ERR_CUMULATIVE_EXCEEDS_BALANCE


def test_voucher_signed_by_another_key_is_refused(
    chain: DevChain, make_receiver: Callable[[], Receiver], make_payer: Callable[[Wallet], Payer]
) -> None:
    receiver = make_receiver()
    payer = make_payer(chain.payers[1])
    first, _ = payer.pay(receiver)
    forged = _voucher_payload(
        first.accepted, _config(first), chain.payers[3].private_key, 2 * PRICE
    )
    result = receiver.facilitator.verify(forged, receiver.requirements)
    assert not result.is_valid and result.invalid_reason == ERR_INVALID_VOUCHER_SIGNATURE


def test_channel_for_another_receiver_is_refused(
    chain: DevChain, make_receiver: Callable[[], Receiver], make_payer: Callable[[Wallet], Payer]
) -> None:
    ours, theirs = make_receiver(), make_receiver()
    payer = make_payer(chain.payers[2])
    first, _ = payer.pay(theirs)
    # A funded, validly signed channel, but its receiver is not this server's payTo.
    voucher = _voucher_payload(
        ours.requirements, _config(first), payer.wallet.private_key, 2 * PRICE
    )
    result = ours.facilitator.verify(voucher, ours.requirements)
    assert not result.is_valid and result.invalid_reason == ERR_RECEIVER_MISMATCH
    # Rewriting the config's receiver breaks its binding to the channel id.
    moved = _config(first)
    moved.receiver = ours.address
    raw = dict(voucher.payload, channelConfig=moved.to_dict())
    rebound = PaymentPayload(x402_version=2, payload=raw, accepted=ours.requirements)
    result = ours.facilitator.verify(rebound, ours.requirements)
    assert not result.is_valid and result.invalid_reason == ERR_CHANNEL_ID_MISMATCH


def test_facilitator_signs_claims_only_for_channels_it_authorizes(
    chain: DevChain, make_receiver: Callable[[], Receiver], make_payer: Callable[[Wallet], Payer]
) -> None:
    receiver = make_receiver()
    payer = make_payer(chain.payers[3])
    first, _ = payer.pay(receiver)
    config = _config(first)
    config.receiver_authorizer = chain.treasury.address  # a channel another key authorizes
    channel_id = compute_channel_id(config, chain.network)
    voucher = sign_voucher(
        EthAccountSigner(Account.from_key(payer.wallet.private_key)),
        channel_id,
        PRICE,
        chain.network,
    )
    claim = VoucherClaim(config, str(PRICE), voucher.signature, str(PRICE))
    requirements = receiver.requirements.model_copy(
        update={"amount": "0", "max_timeout_seconds": 0}
    )
    payload = PaymentPayload(
        x402_version=2,
        payload={"type": "claim", "claims": [claim.to_dict()]},
        accepted=requirements,
    )
    result = receiver.facilitator.settle(payload, requirements)
    assert not result.success and result.error_reason == ERR_AUTHORIZER_ADDRESS_MISMATCH


def test_a_claim_too_big_for_the_fixed_gas_limit_goes_through(
    chain: DevChain, make_receiver: Callable[[], Receiver]
) -> None:
    """Claims grow with their rows: the facilitator sizes their gas instead of a fixed limit."""
    receiver = make_receiver()
    escrow = Escrow(chain.web3(), chain.token_name, chain.token_version)
    payer, rows = chain.payers[0], []
    for _ in range(25):  # ~27k gas a row: past SETTLE_GAS_LIMIT
        config = ChannelConfig(
            payer=payer.address,
            payer_authorizer=payer.address,
            receiver=receiver.address,
            receiver_authorizer=chain.facilitator.address,
            token=chain.token,
            withdraw_delay=900,
            salt="0x" + secrets.token_hex(32),
        )
        transact(
            chain.web3(),
            chain.deployer.account,
            escrow.deposit_call(payer.account, config, 2 * PRICE),
        )
        signature = escrow.voucher(payer.account, config, PRICE)
        rows.append(VoucherClaim(config, str(PRICE), signature, str(PRICE)).to_dict())
    requirements = receiver.requirements.model_copy(
        update={"amount": "0", "max_timeout_seconds": 0}
    )
    payload = PaymentPayload(
        x402_version=2, payload={"type": "claim", "claims": rows}, accepted=requirements
    )
    result = receiver.facilitator.settle(payload, requirements)
    assert result.success, result.error_message
    gas_used = chain.web3().eth.get_transaction_receipt(result.transaction)["gasUsed"]
    assert gas_used > SETTLE_GAS_LIMIT
    receiver.manager.settle()
    assert chain.balance(receiver.address) == 25 * PRICE


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "voucher"},
        {"type": "voucher", "channelConfig": {"payer": "0x12"}, "voucher": {}},
        {"type": "deposit", "channelConfig": {}, "voucher": {}, "deposit": {"amount": "x"}},
        {"type": "claim", "claims": [{"voucher": None}]},
        {"type": "settle", "receiver": "nobody", "token": 7},
        {"type": "teleport"},
    ],
)
def test_malformed_batch_payload_is_an_invalid_payment_not_a_crash(
    facilitator_url: str, chain: DevChain, raw: dict[str, Any]
) -> None:
    requirements = {
        "scheme": SCHEME,
        "network": chain.network,
        "asset": chain.token,
        "amount": "0",
        "payTo": chain.treasury.address,
        "maxTimeoutSeconds": 0,
        "extra": {},
    }
    body = {
        "x402Version": 2,
        "paymentPayload": {"x402Version": 2, "payload": raw, "accepted": requirements},
        "paymentRequirements": requirements,
    }
    for path, flag, reason in (
        ("/verify", "isValid", "invalidReason"),
        ("/settle", "success", "errorReason"),
    ):
        answer = httpx.post(facilitator_url + path, json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()[flag] is False
        assert answer.json()[reason] == INVALID_PAYLOAD
