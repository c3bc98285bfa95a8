"""The batch-settlement escrow and its ERC-3009 collector on a real anvil, called directly.

Every signature and id is made by the x402 SDK's own helpers, so passing here means the
contracts agree with the SDK byte for byte; the threats are refused by the contract itself.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from web3.exceptions import ContractCustomError
from web3.logs import DISCARD
from x402.mechanisms.evm.batch_settlement.abi import BATCH_SETTLEMENT_ABI
from x402.mechanisms.evm.batch_settlement.constants import (
    VOUCHER_TYPES,
)
from x402.mechanisms.evm.batch_settlement.facilitator.utils import to_contract_channel_config
from x402.mechanisms.evm.batch_settlement.types import ChannelConfig, VoucherClaim
from x402.mechanisms.evm.batch_settlement.utils import (
    coerce_bytes32,
    get_batch_settlement_eip712_domain,
)

from claw402.chain.artifacts import load_artifact
from claw402.chain.channels import (
    BATCH_SETTLEMENT_ADDRESS,
    ERC3009_DEPOSIT_COLLECTOR_ADDRESS,
    Escrow,
    install_batch_settlement,
)
from claw402.chain.devchain import DevChain, start_dev_chain
from claw402.chain.tx import transact
from claw402.chain.wallet import Wallet

DEPOSIT = 5_000


@pytest.fixture
def escrow(chain: DevChain) -> Escrow:
    return Escrow(chain.web3(), chain.token_name, chain.token_version)


def _config(chain: DevChain, payer: Wallet, authorizer: Wallet | None = None) -> ChannelConfig:
    """A fresh channel (random salt) from `payer` to a fresh receiver."""
    return ChannelConfig(
        payer=payer.address,
        payer_authorizer=payer.address,
        receiver=Wallet.create().address,
        receiver_authorizer=(authorizer or chain.treasury).address,
        token=chain.token,
        withdraw_delay=900,
        salt="0x" + secrets.token_hex(32),
    )


def _deposit(chain: DevChain, escrow: Escrow, config: ChannelConfig, payer: Wallet) -> None:
    transact(
        chain.web3(), chain.facilitator.account, escrow.deposit_call(payer.account, config, DEPOSIT)
    )


def _row(
    escrow: Escrow, signer: Wallet, config: ChannelConfig, ceiling: int, total: int
) -> VoucherClaim:
    signature = escrow.voucher(signer.account, config, ceiling)
    return VoucherClaim(config, str(ceiling), signature, str(total))


_ERRORS = {
    keccak(text=f"{e['name']}({','.join(i['type'] for i in e['inputs'])})")[:4].hex(): e["name"]
    for name in ("BatchSettlement", "ERC3009DepositCollector")
    for e in load_artifact(name).abi
    if e["type"] == "error"
}


def _reverts(call: Any, sender: str, block: int | str = "latest") -> str:
    """The custom error `call` reverts with when sent by `sender` (simulated: burns nothing)."""
    with pytest.raises(ContractCustomError) as caught:
        call.call({"from": sender}, block_identifier=block)
    data = caught.value.data if isinstance(caught.value.data, str) else str(caught.value.args[0])
    return _ERRORS[data.removeprefix("0x")[:8]]


def _signature(entry: dict[str, Any]) -> tuple[Any, ...]:
    def kind(item: dict[str, Any]) -> str:
        if not item["type"].startswith("tuple"):
            return item["type"]
        return f"({','.join(kind(c) for c in item['components'])}){item['type'][5:]}"

    return (
        entry["type"],
        entry["name"],
        tuple((kind(i), i.get("indexed")) for i in entry.get("inputs", [])),
        tuple(kind(o) for o in entry.get("outputs", [])),
        entry.get("stateMutability"),
    )


def test_every_function_and_event_of_the_sdk_abi_matches_ours() -> None:
    ours = {_signature(e) for e in load_artifact("BatchSettlement").abi if "name" in e}
    missing = [_signature(e) for e in BATCH_SETTLEMENT_ABI if _signature(e) not in ours]
    assert missing == []


def test_contracts_sit_at_the_sdk_addresses_with_their_immutables(chain: DevChain) -> None:
    w3 = chain.web3()
    collector = w3.eth.contract(
        address=ERC3009_DEPOSIT_COLLECTOR_ADDRESS, abi=load_artifact("ERC3009DepositCollector").abi
    )
    assert collector.functions.settlement().call() == BATCH_SETTLEMENT_ADDRESS
    before = w3.eth.get_code(BATCH_SETTLEMENT_ADDRESS)
    install_batch_settlement(w3)  # idempotent: nothing changes on a second install
    assert w3.eth.get_code(BATCH_SETTLEMENT_ADDRESS) == before


def test_channel_id_and_digests_match_the_sdk(chain: DevChain, escrow: Escrow) -> None:
    config = _config(chain, chain.payers[0])
    channel_id = escrow.channel_id(config)
    functions = escrow.contract.functions
    assert (
        "0x" + functions.getChannelId(to_contract_channel_config(config)).call().hex() == channel_id
    )
    signable = encode_typed_data(
        domain_data=get_batch_settlement_eip712_domain(chain.chain_id),
        message_types=VOUCHER_TYPES,
        message_data={"channelId": coerce_bytes32(channel_id), "maxClaimableAmount": 1234},
    )
    expected = keccak(b"\x19\x01" + signable.header + signable.body)
    assert functions.getVoucherDigest(coerce_bytes32(channel_id), 1234).call() == expected


def test_deposit_claim_settle_refund_move_exact_amounts(chain: DevChain, escrow: Escrow) -> None:
    w3, payer, authorizer = chain.web3(), chain.payers[0], chain.treasury
    config = _config(chain, payer)
    payer_start = chain.balance(payer.address)
    _deposit(chain, escrow, config, payer)
    assert chain.balance(payer.address) == payer_start - DEPOSIT
    assert escrow.channel(config) == (DEPOSIT, 0)

    rows = escrow.claims([_row(escrow, payer, config, 3_000, 3_000)])
    transact(w3, authorizer.account, escrow.contract.functions.claim(rows))
    assert escrow.channel(config) == (DEPOSIT, 3_000)
    assert chain.balance(config.receiver) == 0  # a claim moves accounting only

    # Anyone may settle; the money can only go to the receiver.
    receipt = transact(
        w3, chain.payers[1].account, escrow.contract.functions.settle(config.receiver, chain.token)
    )
    (event,) = escrow.contract.events.Settled().process_receipt(receipt, errors=DISCARD)
    assert event.args.receiver == config.receiver and event.args.amount == 3_000
    assert chain.balance(config.receiver) == 3_000
    assert escrow.contract.functions.receivers(config.receiver, chain.token).call() == [
        3_000,
        3_000,
    ]

    refund = escrow.contract.functions.refund(to_contract_channel_config(config), 10**9)
    receipt = transact(w3, authorizer.account, refund)
    assert chain.balance(payer.address) == payer_start - 3_000  # the unspent 2,000 came back
    assert escrow.channel(config) == (3_000, 3_000)
    assert escrow.contract.events.ChannelClosed().process_receipt(receipt, errors=DISCARD)


def test_a_replayed_claim_moves_nothing(chain: DevChain, escrow: Escrow) -> None:
    w3, payer = chain.web3(), chain.payers[1]
    config = _config(chain, payer)
    _deposit(chain, escrow, config, payer)
    rows = escrow.claims([_row(escrow, payer, config, 2_000, 2_000)])
    claim = escrow.contract.functions.claim(rows)
    transact(w3, chain.treasury.account, claim)
    receipt = transact(w3, chain.treasury.account, claim)
    assert escrow.contract.events.Claimed().process_receipt(receipt, errors=DISCARD) == ()
    assert escrow.channel(config) == (DEPOSIT, 2_000)
    assert escrow.contract.functions.receivers(config.receiver, chain.token).call()[0] == 2_000
    # An older, smaller voucher is superseded as well.
    older = escrow.claims([_row(escrow, payer, config, 1_000, 1_000)])
    transact(w3, chain.treasury.account, escrow.contract.functions.claim(older))
    assert escrow.channel(config) == (DEPOSIT, 2_000)


def test_claims_past_the_deposit_or_the_voucher_revert(chain: DevChain, escrow: Escrow) -> None:
    payer = chain.payers[2]
    config = _config(chain, payer)
    _deposit(chain, escrow, config, payer)
    past_deposit = escrow.claims([_row(escrow, payer, config, DEPOSIT + 1, DEPOSIT + 1)])
    claim = escrow.contract.functions.claim
    assert _reverts(claim(past_deposit), chain.treasury.address) == "ClaimExceedsBalance"
    past_voucher = escrow.claims([_row(escrow, payer, config, 1_000, 1_001)])
    assert _reverts(claim(past_voucher), chain.treasury.address) == "ClaimExceedsVoucher"


def test_a_voucher_not_signed_by_the_payer_authorizer_reverts(
    chain: DevChain, escrow: Escrow
) -> None:
    payer = chain.payers[0]
    config = _config(chain, payer)
    _deposit(chain, escrow, config, payer)
    forged = escrow.claims([_row(escrow, chain.payers[3], config, 1_000, 1_000)])
    call = escrow.contract.functions.claim(forged)
    assert _reverts(call, chain.treasury.address) == "InvalidVoucherSignature"


def test_only_the_receiver_side_claims(chain: DevChain, escrow: Escrow) -> None:
    payer = chain.payers[1]
    config = _config(chain, payer)
    _deposit(chain, escrow, config, payer)
    voucher = _row(escrow, payer, config, 1_000, 1_000)
    rows = escrow.claims([voucher])
    functions = escrow.contract.functions
    assert _reverts(functions.claim(rows), payer.address) == "NotReceiverSide"
    # A ClaimBatch signed by any key but the channel's receiverAuthorizer is refused.
    wrong = escrow.claim_batch_signature(chain.payers[3].account, [voucher])
    assert _reverts(functions.claimWithSignature(rows, wrong), payer.address) == (
        "InvalidAuthorizerSignature"
    )
    right = escrow.claim_batch_signature(chain.treasury.account, [voucher])
    transact(chain.web3(), chain.payers[3].account, functions.claimWithSignature(rows, right))
    assert escrow.channel(config) == (DEPOSIT, 1_000)


def test_the_collector_serves_only_the_escrow(chain: DevChain, escrow: Escrow) -> None:
    payer = chain.payers[2]
    config = _config(chain, payer)
    deposit = escrow.deposit_call(payer.account, config, DEPOSIT)
    _, amount, _, data = deposit.args
    collector = chain.web3().eth.contract(
        address=ERC3009_DEPOSIT_COLLECTOR_ADDRESS, abi=load_artifact("ERC3009DepositCollector").abi
    )
    steal = collector.functions.collect(
        payer.address, chain.token, amount, coerce_bytes32(escrow.channel_id(config)), data
    )
    assert _reverts(steal, chain.payers[3].address) == "OnlySettlement"


def test_a_deposit_authorization_is_bound_to_its_channel(chain: DevChain, escrow: Escrow) -> None:
    payer = chain.payers[3]
    config = _config(chain, payer)
    _, amount, collector, data = escrow.deposit_call(payer.account, config, DEPOSIT).args
    other = _config(chain, payer)  # same payer, another channel
    redirected = escrow.contract.functions.deposit(
        to_contract_channel_config(other), amount, collector, data
    )
    with pytest.raises(Exception, match="invalid signature"):
        redirected.call({"from": chain.facilitator.address})


@pytest.fixture
def own_chain() -> Iterator[DevChain]:
    """A chain of its own: moving its clock would expire the payments of other tests."""
    with start_dev_chain(payers=1) as dev_chain:
        yield dev_chain


def _next_block_at(chain: DevChain, timestamp: int) -> None:
    """Pin the next block's time (anvil's clock otherwise follows the wall clock, even loaded)."""
    provider = chain.web3().provider
    provider.make_request("evm_setNextBlockTimestamp", [timestamp])  # type: ignore[arg-type]


def test_the_receiver_claims_during_a_timed_withdrawal_and_the_payer_gets_the_rest(
    own_chain: DevChain,
) -> None:
    chain, payer = own_chain, own_chain.payers[0]
    escrow = Escrow(chain.web3(), chain.token_name, chain.token_version)
    w3, functions = chain.web3(), escrow.contract.functions
    config = _config(chain, payer)
    onchain = to_contract_channel_config(config)
    start = chain.balance(payer.address)
    _deposit(chain, escrow, config, payer)

    assert _reverts(functions.initiateWithdraw(onchain, DEPOSIT), chain.treasury.address) == (
        "NotPayerSide"
    )
    assert _reverts(functions.initiateWithdraw(onchain, DEPOSIT + 1), payer.address) == (
        "AmountExceedsAvailable"
    )
    transact(w3, payer.account, functions.initiateWithdraw(onchain, DEPOSIT))
    channel_id = coerce_bytes32(escrow.channel_id(config))
    initiated_at = functions.pendingWithdrawals(channel_id).call()[1]
    # One second before the delay ends the receiver claims what the payer owes...
    _next_block_at(chain, initiated_at + 899)
    rows = escrow.claims([_row(escrow, payer, config, 2_000, 2_000)])
    claimed_in = transact(w3, chain.treasury.account, functions.claim(rows))["blockNumber"]
    finalize = functions.finalizeWithdraw(onchain)
    # ... when the payer could not finalize yet,
    assert _reverts(finalize, payer.address, claimed_in) == "WithdrawDelayNotElapsed"
    # and at the delay the payer gets only what is left unclaimed.
    _next_block_at(chain, initiated_at + 900)
    transact(w3, payer.account, finalize, gas=200_000)  # anvil estimates at the latest time
    assert chain.balance(payer.address) == start - 2_000
    assert escrow.channel(config) == (2_000, 2_000)
    transact(w3, chain.treasury.account, functions.settle(config.receiver, chain.token))
    assert chain.balance(config.receiver) == 2_000
    # Nothing is left to claim: a later, larger voucher exceeds the channel.
    later = escrow.claims([_row(escrow, payer, config, 3_000, 3_000)])
    assert _reverts(functions.claim(later), chain.treasury.address) == "ClaimExceedsBalance"


def test_signed_refunds_spend_their_nonce_and_shrink_a_pending_withdrawal(
    chain: DevChain, escrow: Escrow
) -> None:
    payer = chain.payers[0]
    w3, functions = chain.web3(), escrow.contract.functions
    config = _config(chain, payer)
    onchain = to_contract_channel_config(config)
    channel_id = coerce_bytes32(escrow.channel_id(config))
    _deposit(chain, escrow, config, payer)
    transact(w3, payer.account, functions.initiateWithdraw(onchain, 3_000))

    signature: Callable[[int, int], bytes] = lambda amount, nonce: escrow.refund_signature(  # noqa: E731
        chain.treasury.account, config, amount, nonce
    )
    relayer = chain.payers[0].address
    stale = functions.refundWithSignature(onchain, 1_000, 1, signature(1_000, 1))
    assert _reverts(stale, relayer) == "InvalidRefundNonce"
    forged = escrow.refund_signature(chain.payers[0].account, config, 1_000, 0)
    assert _reverts(functions.refundWithSignature(onchain, 1_000, 0, forged), relayer) == (
        "InvalidAuthorizerSignature"
    )
    good = functions.refundWithSignature(onchain, 1_000, 0, signature(1_000, 0))
    transact(w3, chain.facilitator.account, good)
    assert functions.refundNonce(channel_id).call() == 1
    assert functions.pendingWithdrawals(channel_id).call()[0] == 2_000
    assert _reverts(good, relayer) == "InvalidRefundNonce"  # a replay is refused
    assert escrow.channel(config) == (DEPOSIT - 1_000, 0)
