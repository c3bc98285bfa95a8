"""Gas of the batch-settlement escrow on a local anvil: what each channel operation costs.

    python bench/bench_channels_gas.py            # claims of 1 and 100 vouchers
    python bench/bench_channels_gas.py --batch 50

Every call goes the way the facilitator sends it (the SDK's payloads and signatures, relayed
by the facilitator's account): a first deposit into a channel through the ERC-3009
collector, `claimWithSignature` of 1 voucher and of a batch of vouchers (one per channel, all
paying one receiver), `settle` of everything claimed, and `refundWithSignature` of a
channel's unspent balance. Prints gas used per transaction (and per voucher for the batch).
"""

from __future__ import annotations

import argparse
import secrets

from x402.mechanisms.evm.batch_settlement.facilitator.utils import to_contract_channel_config
from x402.mechanisms.evm.batch_settlement.types import ChannelConfig, VoucherClaim

from claw402.chain.channels import Escrow
from claw402.chain.devchain import DevChain, start_dev_chain
from claw402.chain.tx import transact
from claw402.chain.wallet import Wallet

DEPOSIT = 10_000
CHARGE = 3_000


def _channel(chain: DevChain, receiver: str) -> ChannelConfig:
    payer = chain.payers[0].address
    return ChannelConfig(
        payer=payer,
        payer_authorizer=payer,
        receiver=receiver,
        receiver_authorizer=chain.facilitator.address,
        token=chain.token,
        withdraw_delay=900,
        salt="0x" + secrets.token_hex(32),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100, help="vouchers in the large claim")
    args = parser.parse_args()
    with start_dev_chain(payers=1) as chain:
        w3 = chain.web3()
        escrow = Escrow(w3, chain.token_name, chain.token_version)
        payer, relayer = chain.payers[0], chain.facilitator

        def gas(call: object) -> int:
            return int(transact(w3, relayer.account, call)["gasUsed"])  # type: ignore[arg-type]

        def claim(rows: list[VoucherClaim]) -> int:
            signature = escrow.claim_batch_signature(relayer.account, rows)
            return gas(escrow.contract.functions.claimWithSignature(escrow.claims(rows), signature))

        def open_channels(receiver: str, count: int) -> list[VoucherClaim]:
            rows, deposits = [], []
            for _ in range(count):
                config = _channel(chain, receiver)
                deposits.append(gas(escrow.deposit_call(payer.account, config, DEPOSIT)))
                signature = escrow.voucher(payer.account, config, CHARGE)
                rows.append(VoucherClaim(config, str(CHARGE), signature, str(CHARGE)))
            results["deposit (first, via ERC-3009 collector)"] = deposits[0]
            return rows

        results: dict[str, int] = {}
        one = open_channels(Wallet.create().address, 1)
        results["claimWithSignature, 1 voucher"] = claim(one)
        receiver = Wallet.create().address
        many = open_channels(receiver, args.batch)
        batch_gas = claim(many)
        results[f"claimWithSignature, {args.batch} vouchers"] = batch_gas
        results["settle"] = gas(escrow.contract.functions.settle(receiver, chain.token))
        config = many[0].channel
        refund = escrow.refund_signature(relayer.account, config, DEPOSIT - CHARGE, 0)
        call = escrow.contract.functions.refundWithSignature(
            to_contract_channel_config(config), DEPOSIT - CHARGE, 0, refund
        )
        results["refundWithSignature"] = gas(call)
        assert chain.balance(receiver) == CHARGE * args.batch

    width = max(len(name) for name in results)
    for name, used in results.items():
        print(f"{name:<{width}}  {used:>10,} gas")
    print(f"{'per voucher in the batch':<{width}}  {batch_gas // args.batch:>10,} gas")


if __name__ == "__main__":
    main()
