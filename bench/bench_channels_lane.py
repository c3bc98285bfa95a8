"""The voucher lane's server work per voucher, in process, on SQLite and PostgreSQL.

What a channel call costs the gateway beyond the query, without HTTP: `VoucherLane.admit`
(the in-process checks and the signature recovery), the group commit (the channel's
compare-and-swap and the voucher's row) and the posting of its ledger transaction, for
`--channels` channels each sending one voucher per round at once (so a round is one group,
as concurrent requests make one), then the same one voucher at a time. CPU per voucher is
what limits the sustained rate of paid calls on a loaded machine.

    python bench/bench_channels_lane.py [--backend sqlite|postgresql|both] [--rounds 50]
                                        [--channels 20] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from eth_account import Account
from x402.mechanisms.evm.batch_settlement.client.voucher import sign_voucher
from x402.mechanisms.evm.batch_settlement.server.storage import Channel
from x402.mechanisms.evm.batch_settlement.types import ChannelConfig
from x402.mechanisms.evm.batch_settlement.utils import compute_channel_id
from x402.schemas import PaymentRequirements

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_channel_store import database
from claw402.ledger.vouchers import Voucher, book_voucher
from claw402.payments.channels.lane import VoucherLane
from claw402.payments.channels.storage import SqlChannelStorage
from claw402.payments.voucher_signer import VoucherSigner

NETWORK, PRICE = "eip155:84532", 1_000
RECEIVER, AUTHORIZER, TOKEN = "0x" + "cd" * 20, "0x" + "ef" * 20, "0x" + "12" * 20
REQUIREMENTS = PaymentRequirements(
    scheme="batch-settlement",
    network=NETWORK,
    asset=TOKEN,
    amount=str(PRICE),
    pay_to=RECEIVER,
    max_timeout_seconds=60,
    extra={"receiverAuthorizer": AUTHORIZER, "withdrawDelay": 900},
)


def opened(storage: SqlChannelStorage, count: int) -> list[tuple[Any, Channel]]:
    from eth_utils import to_checksum_address

    found = []
    for _ in range(count):
        account = Account.create()
        config = ChannelConfig(
            payer=account.address,
            payer_authorizer=account.address,
            receiver=to_checksum_address(RECEIVER),
            receiver_authorizer=to_checksum_address(AUTHORIZER),
            token=to_checksum_address(TOKEN),
            withdraw_delay=900,
            salt="0x" + secrets.token_hex(32),
        )
        now = int(time.time() * 1000)
        channel = Channel(
            channel_id=compute_channel_id(config, NETWORK),
            channel_config=config,
            balance=str(10**15),
            onchain_synced_at=now + 3_600_000,  # fresh for the whole run
            last_request_timestamp=now,
        )
        storage.update_channel(channel.channel_id, lambda _, c=channel: c)
        found.append((account, channel))
    return found


def book(*args: Any) -> tuple[Voucher, bool] | None:
    """What `ChannelAttempt._voucher` books for a treasury-paid tenant: `(before, after)`,
    or, for the lane before group booking (to compare), `(conn, before, after)`, booked."""
    before, after = args[-2:]
    cumulative = int(after.charged_cumulative_amount)
    amount = cumulative - int(before.charged_cumulative_amount)
    payer = "0x" + "1" * 40
    voucher = Voucher(NETWORK, after.channel_id, cumulative, amount, "t1", RECEIVER, payer)
    if len(args) == 3:
        book_voucher(args[0], voucher, bps=500, direct=False)
        return None
    return voucher, False


def vouchers(channels: list[tuple[Any, Channel]], rounds: int) -> list[list[dict[str, Any]]]:
    """Per round, one voucher of every channel (signed beforehand)."""
    out = []
    for n in range(1, rounds + 1):
        row = []
        for account, channel in channels:
            signed = sign_voucher(
                VoucherSigner(account), channel.channel_id, str(n * PRICE), NETWORK
            )
            row.append({
                "type": "voucher",
                "channelConfig": channel.channel_config.to_dict(),
                "voucher": signed.to_dict(),
            })  # fmt: skip
        out.append(row)
    return out


async def one(lane: VoucherLane, raw: dict[str, Any]) -> tuple[float, float]:
    started = time.process_time()
    ticket = await lane.admit(raw, REQUIREMENTS)
    assert ticket is not None, "the lane refused a good voucher"
    admitted = time.process_time()
    assert await lane.commit(ticket, raw, REQUIREMENTS, book) is not None
    return admitted - started, 0.0


async def run(lane: VoucherLane, rounds: list[list[dict[str, Any]]], grouped: bool) -> float:
    """Every voucher accepted, then every one posted to the books (the poster's work, which
    the gateway does `POST_AFTER` later, counts too)."""
    started = time.perf_counter()
    for row in rounds:
        if grouped:
            await asyncio.gather(*(one(lane, raw) for raw in row))
        else:
            for raw in row:
                await one(lane, raw)
    await lane.post()
    return time.perf_counter() - started


def measure(engine: Any, channels: int, rounds: int, profile: bool) -> dict[str, float]:
    results = {}
    for grouped in (True, False):
        storage = SqlChannelStorage(engine, receiver=RECEIVER)
        made = opened(storage, channels)
        signed = vouchers(made, rounds)
        lane = VoucherLane(storage, NETWORK, ttl_ms=60_000)
        profiler = cProfile.Profile() if profile and grouped else None
        cpu = time.process_time()
        if profiler:
            profiler.enable()
        wall = asyncio.run(run(lane, signed, grouped))
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        cpu = time.process_time() - cpu
        count = channels * rounds
        name = "grouped" if grouped else "one_by_one"
        results[f"{name}_vouchers_per_s"] = round(count / wall)
        results[f"{name}_cpu_us_per_voucher"] = round(cpu / count * 1e6)
        results[f"{name}_transactions"] = lane.commits.transactions
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--postgres-url", default="postgresql://127.0.0.1:5432/test")
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        with database(backend, args.postgres_url) as engine:
            print(backend, measure(engine, args.channels, args.rounds, args.profile), flush=True)


if __name__ == "__main__":
    main()
