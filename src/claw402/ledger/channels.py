"""Channel (x402 `batch-settlement`) money in the books: vouchers, claims, settles.

A channel payment moves no token when the call is served: the payer's deposit sits in the
escrow and the voucher only raises what the receiver may claim. So the books follow the
money in three steps, each posted exactly once:

1. voucher accepted (the gateway, keyed on network + channel id + cumulative amount): the
   tenant earns the increment now, as a receivable it cannot withdraw yet, the fee taken at
   the rate then in force, as for `exact`. Recorded as the request commits, posted just
   after: `ledger.vouchers`.
2. claim (read from the escrow's `Claimed` log, keyed on its tx hash + log index): the
   vouchers of that channel up to its new `totalClaimed` are collected: the gross moves from
   `unclaimed` to `claimed`, and each tenant's net from `receivable` to `available`.
3. settle (the escrow's token Transfer into the treasury, booked by `reconcile` on its tx
   hash + log index): debit `treasury:<address>`, credit `channels:<treasury>:claimed`.

`check_channels` is what `reconcile` asserts: for every channel, the vouchers the books
marked claimed add up to the escrow's `totalClaimed`, to the unit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, func, select, update

from claw402.ledger import accounts
from claw402.ledger.book import Entry, credit, debit, post
from claw402.ledger.schema import channel_charges, ledger_transactions
from claw402.ledger.vouchers import VOUCHER, VOUCHER_DIRECT, post_vouchers

if TYPE_CHECKING:
    from web3 import Web3

CLAIM, SETTLE = "channel_claim", "channel_settle"
_C = channel_charges.c
_CLAIMED = "Claimed(bytes32,address,uint128,uint128)"
_WITHDRAW_INITIATED = "WithdrawInitiated(bytes32,uint128,uint40)"


@dataclass(frozen=True, slots=True)
class ClaimLog:
    """The escrow's `Claimed(channelId, receiver, amount, totalClaimed)` log."""

    tx_hash: str
    log_index: int
    block: int
    channel_id: str
    receiver: str
    amount: int
    total_claimed: int


def chain_key(network: str, tx_hash: str, log_index: int) -> str:
    """The key `reconcile` gives any chain log's posting, so a claim is posted once."""
    return f"chain:{network}:{tx_hash.lower()}:{log_index}"


def book_claim(conn: Connection, network: str, log: ClaimLog) -> int | None:
    """Post what one `Claimed` log collected (once); None if it was booked already."""
    key = chain_key(network, log.tx_hash, log.log_index)
    channel = log.channel_id.lower()
    post_vouchers(conn)  # what the claim collects must be in the books first
    rows = conn.execute(
        select(_C.id, _C.amount, _C.fee, _C.tenant_id, _C.receiver, _C.direct).where(
            _C.network == network,
            _C.channel_id == channel,
            _C.claim_key.is_(None),
            _C.cumulative <= log.total_claimed,
        )
    ).all()
    gross: dict[str, int] = defaultdict(int)
    net: dict[str, int] = defaultdict(int)
    for row in rows:
        if not row.direct:
            gross[row.receiver] += row.amount
            net[row.tenant_id] += row.amount - row.fee
    entries: list[Entry] = []
    for receiver, amount in sorted(gross.items()):
        entries += [
            debit(accounts.channel_claimed(receiver), amount),
            credit(accounts.channel_unclaimed(receiver), amount),
        ]
    for tenant_id, amount in sorted(net.items()):
        if amount:
            entries += [
                debit(accounts.receivable(tenant_id), amount),
                credit(accounts.available(tenant_id), amount),
            ]
    posted = post(
        conn,
        key=key,
        kind=CLAIM,
        entries=entries,
        network=network,
        tx_hash=log.tx_hash,
        log_index=log.log_index,
        gross=log.amount,
        memo=f"claim of channel {channel} to {log.total_claimed}",
    )
    if posted is not None and rows:
        conn.execute(
            update(channel_charges).where(_C.id.in_([row.id for row in rows])).values(claim_key=key)
        )
    return posted


def settle_entries(treasury: str, amount: int) -> list[Entry]:
    """The escrow paid the treasury what was claimed for it."""
    return [
        debit(accounts.treasury(treasury), amount),
        credit(accounts.channel_claimed(treasury), amount),
    ]


def open_channels(conn: Connection, network: str) -> list[str]:
    """Channels with vouchers the books have not seen claimed."""
    return list(
        conn.execute(
            select(_C.channel_id)
            .where(_C.network == network, _C.claim_key.is_(None))
            .distinct()
            .order_by(_C.channel_id)
        ).scalars()
    )


def claimed_in_books(conn: Connection, network: str) -> dict[str, int]:
    """Per channel, the highest voucher total the books marked claimed (0 if none)."""
    rows = conn.execute(
        select(_C.channel_id, func.max(_C.cumulative))
        .where(_C.network == network, _C.claim_key.is_not(None))
        .group_by(_C.channel_id)
    ).all()
    return {channel: int(total) for channel, total in rows}


def charged_in_books(conn: Connection, network: str) -> dict[str, int]:
    rows = conn.execute(
        select(_C.channel_id, func.max(_C.cumulative))
        .where(_C.network == network)
        .group_by(_C.channel_id)
    ).all()
    return {channel: int(total) for channel, total in rows}


def earned(conn: Connection, tenant_id: str) -> int:
    """Gross of every voucher this tenant served."""
    t = ledger_transactions.c
    return int(
        conn.execute(
            select(func.coalesce(func.sum(t.gross), 0)).where(
                t.tenant_id == tenant_id, t.kind.in_([VOUCHER, VOUCHER_DIRECT])
            )
        ).scalar_one()
    )


# -- the chain side ----------------------------------------------------------------------------


def claim_logs(w3: Web3, channel_ids: list[str], from_block: int = 0) -> list[ClaimLog]:
    """The escrow's `Claimed` logs of these channels, oldest first."""
    if not channel_ids:
        return []
    from eth_utils import keccak

    contract = _escrow(w3)
    event = contract.events.Claimed
    topic = "0x" + keccak(text=_CLAIMED).hex()
    found: list[ClaimLog] = []
    for start in range(0, len(channel_ids), 100):
        chunk = channel_ids[start : start + 100]
        raw = w3.eth.get_logs(
            {
                "address": contract.address,
                "fromBlock": from_block,
                "toBlock": "latest",
                "topics": [topic, chunk],
            }
        )
        for entry in raw:
            decoded: Any = event().process_log(entry)
            found.append(
                ClaimLog(
                    tx_hash="0x" + bytes(entry["transactionHash"]).hex().removeprefix("0x"),
                    log_index=int(entry["logIndex"]),
                    block=int(entry["blockNumber"]),
                    channel_id="0x" + bytes(decoded.args.channelId).hex(),
                    receiver=str(decoded.args.receiver),
                    amount=int(decoded.args.amount),
                    total_claimed=int(decoded.args.totalClaimed),
                )
            )
    return sorted(found, key=lambda log: (log.block, log.log_index))


def withdrawals_initiated(
    w3: Web3, channel_ids: list[str], from_block: int, to_block: int
) -> set[str]:
    """Which of these channels had a `WithdrawInitiated` log in the block range (lowercase)."""
    from eth_utils import keccak

    address = _escrow(w3).address
    topic = "0x" + keccak(text=_WITHDRAW_INITIATED).hex()
    found: set[str] = set()
    for start in range(0, len(channel_ids), 100):
        chunk = [c.lower() for c in channel_ids[start : start + 100]]
        raw = w3.eth.get_logs(
            {"address": address, "fromBlock": from_block, "toBlock": to_block,
             "topics": [topic, chunk]}
        )  # fmt: skip
        found |= {"0x" + bytes(entry["topics"][1]).hex().removeprefix("0x") for entry in raw}
    return found


def onchain_claimed(w3: Web3, channel_id: str) -> int:
    _, total = _escrow(w3).functions.channels(bytes.fromhex(channel_id[2:])).call()
    return int(total)


def sync_claims(engine: Engine, w3: Web3, network: str, from_block: int = 0) -> int:
    """Book every `Claimed` log of a channel with unclaimed vouchers; returns how many posted."""
    with engine.connect() as conn:
        channels = open_channels(conn, network)
    posted = 0
    for log in claim_logs(w3, channels, from_block):
        with engine.begin() as conn:
            posted += book_claim(conn, network, log) is not None
    return posted


def check_channels(engine: Engine, w3: Web3, network: str) -> list[str]:
    """Problems where the books' claimed vouchers differ from the escrow's `totalClaimed`."""
    with engine.connect() as conn:
        claimed = claimed_in_books(conn, network)
        charged = charged_in_books(conn, network)
    problems = []
    for channel in sorted(charged):
        chain_total = onchain_claimed(w3, channel)
        books = claimed.get(channel, 0)
        if chain_total != books:
            problems.append(
                f"channel {channel}: the escrow's totalClaimed is {chain_total}, "
                f"the books' claimed vouchers add up to {books}"
            )
    return problems


def _escrow(w3: Web3) -> Any:
    """Our escrow's ABI (the SDK's lists only `Settled` among the events)."""
    from x402.mechanisms.evm.batch_settlement.constants import BATCH_SETTLEMENT_ADDRESS

    from claw402.chain.artifacts import load_artifact

    abi = load_artifact("BatchSettlement").abi
    return w3.eth.contract(address=BATCH_SETTLEMENT_ADDRESS, abi=abi)
