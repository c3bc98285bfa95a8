"""A voucher's channel update and its booking are one transaction, on SQLite and PostgreSQL:
through the SDK's commit (`SqlChannelStorage.booking`) and through the voucher lane's group
commit (`VoucherLane.commit`). A failed booking leaves the channel as it was; a lost
compare-and-swap books nothing. Also the lane's own checks: the signature it recovers is
eth_account's, and it accepts only what continues the channel.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from typing import Any

import pytest
import sqlalchemy as sa
from eth_account import Account
from sqlalchemy import Connection
from test_channel_store import NETWORK, PRICE, RECEIVER, RECEIVER_AUTHORIZER, TOKEN, WITHDRAW_DELAY
from x402.mechanisms.evm.batch_settlement.client.voucher import sign_voucher
from x402.mechanisms.evm.batch_settlement.server.storage import Channel
from x402.mechanisms.evm.batch_settlement.types import ChannelConfig
from x402.mechanisms.evm.batch_settlement.utils import compute_channel_id
from x402.mechanisms.evm.signers import EthAccountSigner
from x402.schemas import PaymentRequirements

from claw402.ledger.amounts import fee_bps, fee_of
from claw402.ledger.balances import balance, check_books
from claw402.ledger.book import UnbalancedTransaction
from claw402.ledger.schema import channel_charges, ledger_transactions
from claw402.ledger.vouchers import (
    Voucher,
    book_voucher,
    post_pending,
    post_vouchers,
    record_vouchers,
)
from claw402.payments.channels.lane import VoucherLane, voucher_signer_of
from claw402.payments.channels.storage import SqlChannelStorage

REQUIREMENTS = PaymentRequirements(
    scheme="batch-settlement",
    network=NETWORK,
    asset=TOKEN,
    amount=str(PRICE),
    pay_to=RECEIVER,
    max_timeout_seconds=60,
    extra={"receiverAuthorizer": RECEIVER_AUTHORIZER, "withdrawDelay": WITHDRAW_DELAY},
)


class Refused(RuntimeError):
    pass


def _opened(storage: SqlChannelStorage, charged: int = PRICE) -> tuple[Any, Channel]:
    """A payer and its funded channel, stored as a deposit leaves it (fresh on-chain state)."""
    account = Account.create()
    config = ChannelConfig(
        payer=account.address,
        payer_authorizer=account.address,
        receiver=RECEIVER,
        receiver_authorizer=RECEIVER_AUTHORIZER,
        token=TOKEN,
        withdraw_delay=WITHDRAW_DELAY,
        salt="0x" + secrets.token_hex(32),
    )
    channel = Channel(
        channel_id=compute_channel_id(config, NETWORK),
        channel_config=config,
        charged_cumulative_amount=str(charged),
        signed_max_claimable=str(charged),
        signature="0x",
        balance=str(100 * PRICE),
        total_claimed="0",
        withdraw_requested_at=0,
        refund_nonce=0,
        onchain_synced_at=_now_ms(),
        last_request_timestamp=_now_ms(),
    )
    assert storage.update_channel(channel.channel_id, lambda _: channel).status == "updated"
    return account, channel


def _now_ms() -> int:

    return int(time.time() * 1000)


def _voucher(account: Any, channel: Channel, amount: int) -> dict[str, Any]:
    signed = sign_voucher(EthAccountSigner(account), channel.channel_id, str(amount), NETWORK)
    return {
        "type": "voucher",
        "channelConfig": channel.channel_config.to_dict(),
        "voucher": signed.to_dict(),
    }


def _book(conn: Connection, before: Channel | None, after: Channel) -> None:
    cumulative = int(after.charged_cumulative_amount)
    amount = cumulative - int(before.charged_cumulative_amount if before else 0)
    voucher = Voucher(
        NETWORK, after.channel_id, cumulative, amount, "t1", RECEIVER, "0x" + "1" * 40
    )
    book_voucher(conn, voucher)


def _refuse(conn: Connection, before: Channel | None, after: Channel) -> None:
    _book(conn, before, after)  # written, then refused: the whole transaction must go
    raise Refused("the ledger said no")


def _lane_book(before: Channel, after: Channel) -> tuple[Voucher, bool]:
    """What the lane books (the attempt's `_voucher`): a treasury-paid voucher."""
    cumulative = int(after.charged_cumulative_amount)
    amount = cumulative - int(before.charged_cumulative_amount)
    payer = "0x" + "1" * 40
    return Voucher(NETWORK, after.channel_id, cumulative, amount, "t1", RECEIVER, payer), False


async def _accept(lane: VoucherLane, account: Any, channel: Channel, amount: int) -> None:
    """The lane admits and commits `account`'s voucher for `amount` on `channel`."""
    raw = _voucher(account, channel, amount)
    ticket = await lane.admit(raw, REQUIREMENTS)
    assert ticket is not None
    assert await lane.commit(ticket, raw, REQUIREMENTS, _lane_book) is not None


def _lane_refuse(before: Channel, after: Channel) -> tuple[Voucher, bool]:
    """A voucher the ledger refuses (a zero posting), once the channel's row was written."""
    voucher, direct = _lane_book(before, after)
    return dataclasses.replace(voucher, amount=0), direct


def _books(storage: SqlChannelStorage) -> tuple[int, int]:
    """(vouchers recorded, ledger transactions) as any reader of the books sees them: the
    recorded vouchers the lane's poster has not posted yet are posted first."""
    post_pending(storage.engine)
    return _recorded(storage)


def _recorded(storage: SqlChannelStorage) -> tuple[int, int]:
    """(vouchers recorded, ledger transactions) as they are in the database right now."""
    with storage.engine.connect() as conn:
        charges = conn.execute(sa.select(sa.func.count()).select_from(channel_charges))
        postings = conn.execute(sa.select(sa.func.count()).select_from(ledger_transactions))
        return charges.scalar_one(), postings.scalar_one()


def _advanced(channel: Channel) -> Any:
    def update(current: Channel | None) -> Channel | None:
        assert current is not None
        moved = current.copy()
        moved.charged_cumulative_amount = str(int(current.charged_cumulative_amount) + PRICE)
        return moved

    return update


def test_the_sdk_commit_and_its_booking_commit_together(engine) -> None:
    storage = SqlChannelStorage(engine, receiver=RECEIVER)
    _, channel = _opened(storage)
    start = storage.read(channel.channel_id)
    with pytest.raises(Refused), storage.booking(_refuse):
        storage.update_channel(channel.channel_id, _advanced(channel))
    assert storage.read(channel.channel_id) == start  # the channel did not move
    assert _books(storage) == (0, 0)  # and nothing was booked
    with storage.booking(_book):
        assert storage.update_channel(channel.channel_id, _advanced(channel)).status == "updated"
    found = storage.get(channel.channel_id)
    assert found is not None and found.charged_cumulative_amount == str(2 * PRICE)
    assert _books(storage) == (1, 1)
    storage.update_channel(channel.channel_id, _advanced(channel))  # outside: no booking
    assert _books(storage) == (1, 1)


def test_a_lost_compare_and_swap_books_nothing(engine) -> None:
    storage = SqlChannelStorage(engine, receiver=RECEIVER)
    _, channel = _opened(storage)
    found = storage.read(channel.channel_id)
    assert found is not None
    stored, version = found
    storage.update_channel(channel.channel_id, _advanced(channel))  # someone else moved it
    moved = stored.copy()
    moved.charged_cumulative_amount = str(2 * PRICE)
    with engine.begin() as conn:
        assert not storage.swap(conn, moved, version)  # at the old version: refused
    assert _books(storage) == (0, 0)


def test_the_lane_commits_the_voucher_and_its_booking_together(engine) -> None:
    storage = SqlChannelStorage(engine, receiver=RECEIVER)
    account, channel = _opened(storage)
    lane = VoucherLane(storage, NETWORK, ttl_ms=60_000)
    raw = _voucher(account, channel, 2 * PRICE)

    async def scenario() -> None:
        ticket = await lane.admit(raw, REQUIREMENTS)
        assert ticket is not None
        with pytest.raises(UnbalancedTransaction):
            await lane.commit(ticket, raw, REQUIREMENTS, _lane_refuse)
        stored = storage.get(channel.channel_id)
        assert stored is not None and stored.charged_cumulative_amount == str(PRICE)
        assert _books(storage) == (0, 0)
        ticket = await lane.admit(raw, REQUIREMENTS)
        assert ticket is not None
        assert await lane.commit(ticket, raw, REQUIREMENTS, _lane_book) is not None
        stored = storage.get(channel.channel_id)
        assert stored is not None and stored.charged_cumulative_amount == str(2 * PRICE)
        assert _books(storage) == (1, 1)
        assert await lane.admit(raw, REQUIREMENTS) is None  # replayed: not the lane's to accept

    asyncio.run(scenario())


def test_the_lane_records_a_voucher_and_its_poster_posts_it_just_after(engine) -> None:
    """On SQLite the request commits the channel and the voucher's row; the ledger transaction
    follows `POST_AFTER` later, from the poster's timer, and only once. On PostgreSQL (the
    commit in a thread, a WAL flush each) it is posted in the request's transaction."""
    storage = SqlChannelStorage(engine, receiver=RECEIVER)
    account, channel = _opened(storage)
    lane = VoucherLane(storage, NETWORK, ttl_ms=60_000)

    async def scenario() -> float:
        await _accept(lane, account, channel, 2 * PRICE)
        assert lane.post_later == (engine.dialect.name == "sqlite")
        # durable with the channel; on SQLite not yet in the books
        assert _recorded(storage) == (1, 0 if lane.post_later else 1)
        started = time.monotonic()
        while _recorded(storage) != (1, 1):
            assert time.monotonic() - started < 5, "the poster never posted the voucher"
            await asyncio.sleep(0.005)
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 2
    assert post_pending(engine) == 0  # nothing left: posted once
    found = balance(engine, "t1")
    fee = fee_of(PRICE, fee_bps())
    assert (found.earned, found.fees, found.unclaimed) == (PRICE, fee, PRICE - fee)
    assert check_books(engine) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # nothing waits elsewhere
def test_a_voucher_recorded_and_never_posted_is_in_the_books_when_they_are_read(engine) -> None:
    """The gateway stops between a voucher's commit and its posting (the loop ends before the
    timer fires): the voucher is not lost, the next reader of the books posts it, once."""
    storage = SqlChannelStorage(engine, receiver=RECEIVER)
    account, channel = _opened(storage)
    lane = VoucherLane(storage, NETWORK, ttl_ms=60_000)

    asyncio.run(_accept(lane, account, channel, 2 * PRICE))  # the loop ends before POST_AFTER
    asyncio.run(_accept(lane, account, channel, 3 * PRICE))
    lane.close()
    assert _recorded(storage) == (2, 0)
    found = balance(engine, "t1")  # what `402claw balance` reads
    assert found.earned == 2 * PRICE
    assert _recorded(storage) == (2, 2)
    assert check_books(engine) == []


def test_a_voucher_recorded_then_booked_is_posted_once(engine) -> None:
    """The lane recorded a voucher and the SDK's path books the same one before the poster
    ran: one ledger transaction, and the row is marked with it once the poster comes."""
    voucher = Voucher(NETWORK, "0x" + "ab" * 32, PRICE, PRICE, "t1", RECEIVER, "0x" + "1" * 40)
    with engine.begin() as conn:
        record_vouchers(conn, [(voucher, False)])
    with engine.begin() as conn:
        assert book_voucher(conn, voucher, direct=False) is not None
    assert post_pending(engine) == 1  # the row: marked with the booked transaction
    assert _recorded(SqlChannelStorage(engine, receiver=RECEIVER)) == (1, 1)
    assert balance(engine, "t1").earned == PRICE


def test_posters_racing_post_each_voucher_once(engine) -> None:
    """Two gateway processes post the same recorded vouchers at once: each voucher becomes
    one ledger transaction, and every row is marked with it."""
    import threading

    with engine.begin() as conn:
        record_vouchers(
            conn,
            [
                (
                    Voucher(
                        NETWORK, "0x" + f"{n:064x}", PRICE, PRICE, "t1", RECEIVER, "0x" + "1" * 40
                    ),
                    False,
                )
                for n in range(1, 201)
            ],
        )
    start, posted = threading.Barrier(2), []

    def poster() -> None:
        start.wait()
        with engine.begin() as conn:
            posted.append(post_vouchers(conn))

    threads = [threading.Thread(target=poster) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _recorded(SqlChannelStorage(engine, receiver=RECEIVER)) == (200, 200)
    with engine.connect() as conn:
        marks = conn.execute(
            sa.select(channel_charges.c.transaction_id, ledger_transactions.c.key).join(
                ledger_transactions, ledger_transactions.c.id == channel_charges.c.transaction_id
            )
        ).all()
    assert len(marks) == 200 and len({key for _, key in marks}) == 200
    assert sum(len(p) for p in posted) >= 200  # the loser, if any, marked its rows too
    assert check_books(engine) == []


def test_the_lane_rereads_a_channel_that_moved_and_never_accepts_twice(engine) -> None:
    storage = SqlChannelStorage(engine, receiver=RECEIVER)
    account, channel = _opened(storage)
    mine = VoucherLane(storage, NETWORK, ttl_ms=60_000)
    other = VoucherLane(storage, NETWORK, ttl_ms=60_000)  # another gateway process
    raw = _voucher(account, channel, 2 * PRICE)

    async def scenario() -> None:
        ticket, theirs = await mine.admit(raw, REQUIREMENTS), await other.admit(raw, REQUIREMENTS)
        assert ticket is not None and theirs is not None
        assert await other.commit(theirs, raw, REQUIREMENTS, _lane_book) is not None
        assert await mine.commit(ticket, raw, REQUIREMENTS, _lane_book) is None  # the same amount
        assert _books(storage) == (1, 1)
        following = _voucher(account, channel, 3 * PRICE)
        ticket = await mine.admit(following, REQUIREMENTS)  # stale copy: re-read, accepted
        assert ticket is not None and ticket.before.charged_cumulative_amount == str(2 * PRICE)
        # a claim moves the row without touching the charged amount: the commit re-checks
        storage.update_channel(channel.channel_id, _claimed)
        assert await mine.commit(ticket, following, REQUIREMENTS, _lane_book) is not None
        stored = storage.get(channel.channel_id)
        assert stored is not None
        assert (stored.charged_cumulative_amount, stored.total_claimed) == (
            str(3 * PRICE),
            str(PRICE),
        )
        assert _books(storage) == (2, 2)

    asyncio.run(scenario())


def _claimed(current: Channel | None) -> Channel | None:
    assert current is not None
    moved = current.copy()
    moved.total_claimed = str(PRICE)
    return moved


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_lane_accepts_only_what_continues_the_channel(engine) -> None:
    storage = SqlChannelStorage(engine, receiver=RECEIVER)
    account, channel = _opened(storage)
    lane = VoucherLane(storage, NETWORK, ttl_ms=60_000)
    good = _voucher(account, channel, 2 * PRICE)
    forged = _voucher(Account.create(), channel, 2 * PRICE)
    other_terms = REQUIREMENTS.model_copy(update={"pay_to": "0x" + "22" * 20})
    above = _voucher(account, channel, 3 * PRICE)
    past_deposit = REQUIREMENTS.model_copy(update={"amount": str(100 * PRICE)})
    high_s = dict(good, voucher=dict(good["voucher"], signature=_high_s(good)))
    cases = [
        (forged, REQUIREMENTS),
        (above, REQUIREMENTS),
        (good, other_terms),
        (_voucher(account, channel, 101 * PRICE), past_deposit),
        (high_s, REQUIREMENTS),
    ]

    async def scenario() -> None:
        for raw, terms in cases:
            assert await lane.admit(raw, terms) is None
        assert await lane.admit(good, REQUIREMENTS) is not None
        stale = VoucherLane(storage, NETWORK, ttl_ms=0)  # on-chain state too old
        storage.update_channel(channel.channel_id, _synced_long_ago)
        assert await stale.admit(good, REQUIREMENTS) is None

    asyncio.run(scenario())


def _synced_long_ago(current: Channel | None) -> Channel | None:
    assert current is not None
    moved = current.copy()
    moved.onchain_synced_at = _now_ms() - 10_000
    return moved


def _high_s(raw: dict[str, Any]) -> str:
    """The same signature with s mirrored (valid for ecrecover, refused by OpenZeppelin)."""
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    sig = bytes.fromhex(raw["voucher"]["signature"][2:])
    s = n - int.from_bytes(sig[32:64], "big")
    return "0x" + (sig[:32] + s.to_bytes(32, "big") + bytes([55 - sig[64]])).hex()


def test_the_recovered_signer_is_eth_accounts() -> None:
    from claw402.payments.channels.lane import voucher_separator

    separator = voucher_separator(84532)
    for _ in range(5):
        account = Account.create()
        channel_id = "0x" + secrets.token_hex(32)
        amount = secrets.randbelow(2**128)
        signed = sign_voucher(EthAccountSigner(account), channel_id, str(amount), NETWORK)
        signer = voucher_signer_of(separator, channel_id, amount, signed.signature)
        assert signer == bytes.fromhex(account.address[2:])
        assert voucher_signer_of(separator, channel_id, amount + 1, signed.signature) != signer
    assert voucher_signer_of(separator, channel_id, amount, "0x1234") == b""


def test_on_the_gateway_vouchers_take_the_lane_and_each_is_booked_once(stack) -> None:
    from test_channels_paywall import _charges, _opened, _url

    from claw402.events.store import EventStore

    tenant, payer, _, channel_id = _opened(stack, calls=2)  # a deposit, then a voucher
    answers = [payer.call(_url(stack, tenant))[0] for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [c["cumulative"] for c in _charges(stack, channel_id)] == [
        n * PRICE for n in range(1, 6)
    ]
    store, deadline = EventStore(stack.registry.engine), time.monotonic() + 5
    for answer in answers:
        request_id = answer.headers["x-request-id"]
        while True:
            found = store.read_events(request_id=request_id)
            verified = [e for e in found if e["type"] == "payment_verified"]
            if verified or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert verified and verified[0]["details"].get("lane") is True, found


def test_a_group_of_vouchers_is_one_transaction(engine) -> None:
    storage = SqlChannelStorage(engine, receiver=RECEIVER)
    lane = VoucherLane(storage, NETWORK, ttl_ms=60_000)
    opened = [_opened(storage) for _ in range(3)]
    raws = [_voucher(account, channel, 2 * PRICE) for account, channel in opened]

    async def scenario() -> list[Any]:
        tickets = [await lane.admit(raw, REQUIREMENTS) for raw in raws]
        return await asyncio.gather(
            *(
                lane.commit(t, raw, REQUIREMENTS, _lane_book)  # type: ignore[arg-type]
                for t, raw in zip(tickets, raws, strict=True)
            )
        )

    assert all(done is not None for done in asyncio.run(scenario()))
    assert lane.commits.transactions == 1
    assert _books(storage) == (3, 3)
    for _, channel in opened:
        stored = storage.get(channel.channel_id)
        assert stored is not None and stored.charged_cumulative_amount == str(2 * PRICE)


def test_in_a_group_a_moved_channel_or_a_refused_booking_is_only_its_own(engine) -> None:
    storage = SqlChannelStorage(engine, receiver=RECEIVER)
    lane = VoucherLane(storage, NETWORK, ttl_ms=60_000)
    opened = [_opened(storage) for _ in range(4)]
    raws = [_voucher(account, channel, 2 * PRICE) for account, channel in opened]
    books = [_lane_book, _lane_book, _lane_refuse, _lane_book]

    async def scenario() -> list[Any]:
        tickets = [await lane.admit(raw, REQUIREMENTS) for raw in raws]
        moved = opened[1][1]  # another process charged this channel after the lane read it
        storage.update_channel(moved.channel_id, _advanced(moved))
        return await asyncio.gather(
            *(
                lane.commit(t, raw, REQUIREMENTS, book)  # type: ignore[arg-type]
                for t, raw, book in zip(tickets, raws, books, strict=True)
            ),
            return_exceptions=True,
        )

    done = asyncio.run(scenario())
    assert done[0] is not None and done[3] is not None
    assert done[1] is None  # its voucher no longer continues the channel: the SDK path's
    assert isinstance(done[2], UnbalancedTransaction)
    charged = []
    for _, channel in opened:
        stored = storage.get(channel.channel_id)
        assert stored is not None
        charged.append(int(stored.charged_cumulative_amount))
    assert charged == [2 * PRICE, 2 * PRICE, PRICE, 2 * PRICE]  # the refused one did not move
    assert _books(storage) == (2, 2)  # the two accepted by the lane, each booked once


def test_on_sqlite_a_group_commits_on_the_loop_and_a_locked_file_sends_it_to_the_thread(
    tmp_path,
) -> None:
    """A thread's transaction must win the GIL back from a busy loop around every SQLite call,
    so on a SQLite file a group is written on the loop when the write lock is free; when
    another writer holds it, the loop is not blocked: the group waits in the thread.
    (PostgreSQL groups are always the thread's: the other tests here run on both.)"""
    import sqlite3
    import threading

    from claw402.registry.db import make_engine, migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    migrate(engine)
    storage = SqlChannelStorage(engine, receiver=RECEIVER)
    lane = VoucherLane(storage, NETWORK, ttl_ms=60_000)
    opened = [_opened(storage) for _ in range(2)]

    async def commit(account: Any, channel: Channel, amount: int) -> Any:
        raw = _voucher(account, channel, amount)
        ticket = await lane.admit(raw, REQUIREMENTS)
        assert ticket is not None
        return await lane.commit(ticket, raw, REQUIREMENTS, _lane_book)  # type: ignore[arg-type]

    assert asyncio.run(commit(*opened[0], 2 * PRICE)) is not None
    assert (lane.commits.on_loop, lane.commits.transactions) == (1, 1)

    other = sqlite3.connect(engine.url.database, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process writing: the lock is taken
    release = threading.Timer(0.3, other.rollback)
    ticks = 0

    async def scenario() -> Any:
        nonlocal ticks
        task = asyncio.ensure_future(commit(*opened[1], 2 * PRICE))
        while not task.done():  # the loop keeps running while the group waits for the lock
            ticks += 1
            await asyncio.sleep(0.01)
        return task.result()

    release.start()
    try:
        assert asyncio.run(scenario()) is not None
    finally:
        release.join()
        other.close()
    assert ticks >= 10
    assert (lane.commits.on_loop, lane.commits.transactions) == (1, 2)
    assert _books(storage) == (2, 2)
    for _, channel in opened:
        stored = storage.get(channel.channel_id)
        assert stored is not None and stored.charged_cumulative_amount == str(2 * PRICE)
    lane.commits.close()
    engine.dispose()
