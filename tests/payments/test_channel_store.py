"""SqlChannelStorage on SQLite and PostgreSQL: every field kept, the SDK's statuses exactly, no
lost update between processes, one reservation per channel, and the SDK's own server scheme
verifying and settling vouchers on it.

Run as a script, this file is the hammer the process tests start: `python test_channel_store.py
URL MODE THREADS N CHANNEL_ID...` prints "ready", waits for a line on stdin, runs, prints JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from eth_account import Account
from x402.mechanisms.evm.batch_settlement.client.voucher import sign_voucher
from x402.mechanisms.evm.batch_settlement.errors import (
    ERR_CHANNEL_BUSY,
    ERR_CUMULATIVE_AMOUNT_MISMATCH,
)
from x402.mechanisms.evm.batch_settlement.server.channel_manager_common import (
    ChannelManagerConfigSync,
)
from x402.mechanisms.evm.batch_settlement.server.channel_manager_sync import (
    BatchSettlementChannelManagerSync,
)
from x402.mechanisms.evm.batch_settlement.server.scheme import (
    BatchSettlementEvmScheme,
    BatchSettlementEvmSchemeServerConfig,
)
from x402.mechanisms.evm.batch_settlement.server.storage import (
    Channel,
    InMemoryChannelStorage,
    PendingRequest,
)
from x402.mechanisms.evm.batch_settlement.types import ChannelConfig
from x402.mechanisms.evm.batch_settlement.utils import compute_channel_id
from x402.mechanisms.evm.signers import EthAccountSigner
from x402.schemas import PaymentPayload, PaymentRequirements
from x402.schemas.hooks import (
    AbortResult,
    SettleContext,
    SkipSettleResult,
    SkipVerifyResult,
    VerifyContext,
    VerifyResultContext,
)

from claw402.payments.channels.storage import (
    ChannelUpdateConflict,
    SqlChannelStorage,
    channels_query,
)
from claw402.registry.db import make_engine

NETWORK = "eip155:84532"
RECEIVER = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
RECEIVER_AUTHORIZER = "0x1111111111111111111111111111111111111111"
TOKEN = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
PRICE = 1_000
WITHDRAW_DELAY = 900


def _config(
    payer: str = "0x" + "ab" * 20, receiver: str = RECEIVER, salt: int = 0
) -> ChannelConfig:
    return ChannelConfig(
        payer=payer,
        payer_authorizer=payer,
        receiver=receiver,
        receiver_authorizer=RECEIVER_AUTHORIZER,
        token=TOKEN,
        withdraw_delay=WITHDRAW_DELAY,
        salt=f"0x{salt:064x}",
    )


def _channel(config: ChannelConfig | None = None, **fields: Any) -> Channel:
    config = config or _config()
    return Channel(channel_id=compute_channel_id(config, NETWORK), channel_config=config, **fields)


def _put(storage: Any, channel: Channel) -> None:
    assert storage.update_channel(channel.channel_id, lambda _: channel).status == "updated"


def _now_ms() -> int:
    return int(time.time() * 1000)


# -- fields, statuses, bad input ----------------------------------------------------------------


def test_every_field_round_trips(engine):
    big = 2**255 + 7 if engine.dialect.name == "postgresql" else 2**63 - 1  # each backend's most
    channel = _channel(
        charged_cumulative_amount=str(big - 2),
        signed_max_claimable=str(big - 1),
        signature="0x" + "5a" * 65,
        balance=str(big),
        total_claimed="123456789",
        withdraw_requested_at=1_765_000_000,
        refund_nonce=3,
        onchain_synced_at=1_765_000_000_123,
        last_request_timestamp=1_765_000_000_456,
        pending_request=PendingRequest("0x" + "9c" * 32, str(big - 1), 1_765_000_060_000),
    )
    storage = SqlChannelStorage(engine)
    _put(storage, channel)
    assert storage.get(channel.channel_id).to_dict() == channel.to_dict()
    assert (
        storage.get(channel.channel_id.upper().replace("0X", "0x")).to_dict() == channel.to_dict()
    )
    assert [c.to_dict() for c in storage.list()] == [channel.to_dict()]
    # the defaults (no synced time, no pending request) come back as None, not as zeros
    plain = _channel(_config(salt=1))
    _put(storage, plain)
    assert storage.get(plain.channel_id).to_dict() == plain.to_dict()
    with engine.connect() as conn:  # the columns the ledger will query hold numbers
        row = conn.execute(
            sa.text("SELECT balance, receiver, payer FROM payment_channels WHERE channel_id = :i"),
            {"i": channel.channel_id},
        ).one()
    assert int(row.balance) == big
    assert (row.receiver, row.payer) == (RECEIVER.lower(), channel.channel_config.payer.lower())


def test_statuses_and_channels_match_the_sdks_in_memory_storage(engine):
    """The same updates against InMemoryChannelStorage and ours give the same results."""
    ours, sdk = SqlChannelStorage(engine), InMemoryChannelStorage()
    first, second = _channel(), _channel(_config(salt=2))
    expires_at = _now_ms() + 60_000

    def bump(current: Channel | None) -> Channel | None:
        assert current is not None
        nxt = current.copy()
        nxt.charged_cumulative_amount = str(int(current.charged_cumulative_amount) + PRICE)
        nxt.last_request_timestamp += 1
        return nxt

    def reserve(current: Channel | None) -> Channel | None:
        assert current is not None
        nxt = current.copy()
        nxt.pending_request = PendingRequest("0xfeed", "5000", expires_at)
        return nxt

    steps: list[tuple[Channel, Any]] = [
        (first, lambda current: current),  # absent, left absent: unchanged, None
        (first, lambda current: None),  # delete what is absent: unchanged, None
        (first, lambda current: first),  # create
        (first, lambda current: current),  # unchanged, the stored channel
        (first, bump),
        (first, bump),
        (first, reserve),
        (second, lambda current: second),
        (second, lambda current: current.copy()),  # an equal copy is a write: updated
        (first, lambda current: None),  # delete
        (first, lambda current: None),  # delete again: unchanged
        (first, lambda current: first),  # create again
    ]
    for channel, update in steps:
        mine, theirs = (s.update_channel(channel.channel_id, update) for s in (ours, sdk))
        assert mine.status == theirs.status
        assert (mine.channel and mine.channel.to_dict()) == (
            theirs.channel and theirs.channel.to_dict()
        )
        for c in (first, second):
            got, want = ours.get(c.channel_id), sdk.get(c.channel_id)
            assert (got and got.to_dict()) == (want and want.to_dict())
        listed = sorted((c.to_dict() for c in sdk.list()), key=lambda d: d["channelId"])
        assert [c.to_dict() for c in ours.list()] == listed


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("balance", "-1", "balance must be a decimal uint string"),
        ("balance", "007", "balance must be a decimal uint string"),
        ("charged_cumulative_amount", 5, "charged_cumulative_amount must be a decimal"),
        ("total_claimed", str(2**256), "total_claimed"),
        ("refund_nonce", -1, "refund_nonce must be an integer"),
        ("withdraw_requested_at", True, "withdraw_requested_at must be an integer"),
        ("channel_id", "0x" + "00" * 32, "the update returned channel"),
        ("signature", None, "signature must be a string"),
    ],
)
def test_a_channel_that_cannot_be_stored_is_refused_and_nothing_changes(
    engine, field, value, message
):
    storage = SqlChannelStorage(engine)
    channel = _channel(balance="10")
    _put(storage, channel)

    def bad(current: Channel | None) -> Channel:
        assert current is not None
        nxt = current.copy()
        setattr(nxt, field, value)
        return nxt

    with pytest.raises(ValueError, match=message):
        storage.update_channel(channel.channel_id, bad)
    assert storage.get(channel.channel_id).to_dict() == channel.to_dict()


def test_ids_are_checked_and_sqlite_refuses_amounts_it_cannot_hold(engine):
    storage = SqlChannelStorage(engine)
    for bad_id in ("0x1234", "not-an-id", "0x" + "g" * 64):
        with pytest.raises(ValueError):
            storage.get(bad_id)
        with pytest.raises(ValueError):
            storage.update_channel(bad_id, lambda current: current)
    huge = _channel(balance=str(2**64))
    if engine.dialect.name == "sqlite":
        with pytest.raises(ValueError, match="use PostgreSQL"):
            storage.update_channel(huge.channel_id, lambda _: huge)
        assert storage.get(huge.channel_id) is None
    else:
        _put(storage, huge)
        assert storage.get(huge.channel_id).balance == str(2**64)


# -- listing -------------------------------------------------------------------------------------


def test_list_is_one_receivers_channels_in_id_order(engine):
    other = "0x" + "cd" * 20
    mine = [_channel(_config(salt=i)) for i in range(5)]
    theirs = [_channel(_config(receiver=other, salt=i)) for i in range(3)]
    payer_two = _channel(_config(payer="0x" + "ef" * 20, salt=9))
    everyone = SqlChannelStorage(engine)
    for channel in [*mine, *theirs, payer_two]:
        _put(everyone, channel)
    scoped = SqlChannelStorage(engine, receiver=RECEIVER.lower(), token=TOKEN)
    want = sorted(c.channel_id for c in [*mine, payer_two])
    assert [c.channel_id for c in scoped.list()] == want
    assert [c.channel_id for c in SqlChannelStorage(engine, receiver=other).list()] == sorted(
        c.channel_id for c in theirs
    )
    assert len(everyone.list()) == 9
    assert [c.channel_id for c in everyone.channels_of(payer=("0x" + "EF" * 20))] == [
        payer_two.channel_id
    ]


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({"receiver": RECEIVER}, "ix_payment_channels_receiver"),
        ({"receiver": RECEIVER, "token": TOKEN}, "ix_payment_channels_receiver"),
        ({"payer": RECEIVER}, "ix_payment_channels_payer"),
    ],
)
def test_list_queries_are_planned_on_an_index(engine, filters, index):
    query = channels_query(**filters)
    with engine.begin() as conn:
        compiled = query.compile(engine)
        if engine.dialect.name == "sqlite":
            plan = conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {compiled}", tuple(compiled.params.values())
            ).all()
        else:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a tiny table scans otherwise
            plan = conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params).all()
    assert index in str(plan), plan


# -- the compare-and-swap, deterministically -----------------------------------------------------


def _charged_plus(amount: int):
    def update(current: Channel | None) -> Channel | None:
        assert current is not None
        nxt = current.copy()
        nxt.charged_cumulative_amount = str(int(current.charged_cumulative_amount) + amount)
        return nxt

    return update


def test_a_lost_race_reruns_the_callback_on_the_newer_row(engine, database_url):
    """Another process writes between our read and our write: our write must not erase it."""
    storage = SqlChannelStorage(engine)
    rival_engine = make_engine(database_url)
    rival = SqlChannelStorage(rival_engine)
    channel = _channel(balance="100000")
    _put(storage, channel)
    seen: list[str] = []

    def update(current: Channel | None) -> Channel | None:
        assert current is not None
        seen.append(current.charged_cumulative_amount)
        if len(seen) == 1:
            rival.update_channel(channel.channel_id, _charged_plus(7))
        return _charged_plus(PRICE)(current)

    try:
        result = storage.update_channel(channel.channel_id, update)
    finally:
        rival_engine.dispose()
    assert seen == ["0", "7"]
    assert result.status == "updated" and result.channel.charged_cumulative_amount == str(PRICE + 7)
    assert storage.get(channel.channel_id).charged_cumulative_amount == str(PRICE + 7)
    assert storage.lost_races == 1


def test_losing_every_race_ends_in_a_clear_error(engine):
    storage = SqlChannelStorage(engine, max_attempts=3)
    rival = SqlChannelStorage(engine)
    channel = _channel()
    _put(storage, channel)
    calls = 0

    def update(current: Channel | None) -> Channel | None:
        nonlocal calls
        calls += 1
        rival.update_channel(channel.channel_id, _charged_plus(1))
        return _charged_plus(PRICE)(current)

    with pytest.raises(ChannelUpdateConflict, match="lost 3 concurrent updates"):
        storage.update_channel(channel.channel_id, update)
    assert calls == 3
    assert storage.get(channel.channel_id).charged_cumulative_amount == "3"  # the rival's only


def test_an_insert_loses_cleanly_to_a_concurrent_insert(engine):
    storage, rival = SqlChannelStorage(engine), SqlChannelStorage(engine)
    theirs = _channel(balance="500")
    ours = _channel(balance="900")
    seen: list[Channel | None] = []

    def create_or_bump(current: Channel | None) -> Channel | None:
        seen.append(current)
        if current is None:
            rival.update_channel(theirs.channel_id, lambda _: theirs)
            return ours
        return _charged_plus(PRICE)(current)

    result = storage.update_channel(ours.channel_id, create_or_bump)
    assert seen[0] is None and seen[1].to_dict() == theirs.to_dict()
    assert result.status == "updated"
    stored = storage.get(ours.channel_id)
    assert (stored.balance, stored.charged_cumulative_amount) == ("500", str(PRICE))


def test_a_delete_loses_to_a_concurrent_recreate(engine):
    """Deleted and created again between our read and our write: the new row is not ours."""
    storage, rival = SqlChannelStorage(engine), SqlChannelStorage(engine)
    channel = _channel(balance="100")
    _put(storage, channel)
    reborn = _channel(balance="200")
    calls = 0

    def delete_if_100(current: Channel | None) -> Channel | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            rival.update_channel(channel.channel_id, lambda _: None)
            rival.update_channel(channel.channel_id, lambda _: reborn)
        if current is None or current.balance != "100":
            return current
        return None

    result = storage.update_channel(channel.channel_id, delete_if_100)
    assert (calls, result.status) == (2, "unchanged")
    assert storage.get(channel.channel_id).balance == "200"


# -- processes and threads on one database -------------------------------------------------------


def _hammer(database_url: str, mode: str, processes: int, threads: int, n: int, ids: list[str]):
    """Start `processes` hammers, release them at once, return their JSON reports."""
    children = [
        subprocess.Popen(
            [sys.executable, __file__, database_url, mode, str(threads), str(n), *ids],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for child in children:
            assert child.stdout.readline().strip() == "ready", child.stderr.read()
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
        reports = []
        for child in children:
            out, err = child.communicate(timeout=240)
            assert child.returncode == 0, err
            reports.append(json.loads(out))
        return reports
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def test_processes_and_threads_incrementing_one_channel_lose_no_update(engine, database_url):
    storage = SqlChannelStorage(engine)
    channel = _channel(balance=str(10**12))
    _put(storage, channel)
    reports = _hammer(database_url, "increment", 2, 4, 60, [channel.channel_id])
    assert sum(r["updated"] for r in reports) == 2 * 4 * 60
    stored = storage.get(channel.channel_id)
    assert int(stored.charged_cumulative_amount) == 2 * 4 * 60 * PRICE
    assert sum(r["lost_races"] for r in reports) > 0  # the writers did collide


def test_reserve_and_commit_by_the_sdks_rules_from_two_processes(engine, database_url):
    """Each call reserves the channel (pending request), then commits its charge: the charges
    add up exactly, and no commit ever finds another request's reservation in place."""
    storage = SqlChannelStorage(engine)
    channel = _channel(balance=str(10**12))
    _put(storage, channel)
    reports = _hammer(database_url, "cycle", 2, 4, 15, [channel.channel_id])
    assert sum(r["committed"] for r in reports) == 2 * 4 * 15
    assert sum(r["stolen"] for r in reports) == 0
    stored = storage.get(channel.channel_id)
    assert int(stored.charged_cumulative_amount) == 2 * 4 * 15 * PRICE
    assert stored.signed_max_claimable == stored.charged_cumulative_amount
    assert stored.pending_request is None


def test_concurrent_reservations_of_a_channel_exactly_one_wins(engine, database_url):
    storage = SqlChannelStorage(engine)
    channels = [_channel(_config(salt=i), balance="1000000") for i in range(20)]
    for channel in channels:
        _put(storage, channel)
    ids = [c.channel_id for c in channels]
    reports = _hammer(database_url, "reserve", 2, 4, 1, ids)
    for channel_id in ids:
        winners = [w for r in reports for w in r["reserved"].get(channel_id, [])]
        assert len(winners) == 1, (channel_id, winners)
        assert storage.get(channel_id).pending_request.pending_id == winners[0]
    assert sum(r["busy"] for r in reports) == len(ids) * (2 * 4 - 1)


# -- the SDK's server scheme on this storage -----------------------------------------------------


def _requirements() -> PaymentRequirements:
    return PaymentRequirements(
        scheme="batch-settlement",
        network=NETWORK,
        asset=TOKEN,
        amount=str(PRICE),
        pay_to=RECEIVER,
        max_timeout_seconds=60,
        extra={"receiverAuthorizer": RECEIVER_AUTHORIZER, "withdrawDelay": WITHDRAW_DELAY},
    )


def _voucher_payload(account: Any, config: ChannelConfig, cumulative: int) -> PaymentPayload:
    channel_id = compute_channel_id(config, NETWORK)
    voucher = sign_voucher(EthAccountSigner(account), channel_id, cumulative, NETWORK)
    return PaymentPayload(
        x402_version=2,
        payload={
            "type": "voucher",
            "channelConfig": config.to_dict(),
            "voucher": voucher.to_dict(),
        },
        accepted=_requirements(),
    )


def _verify(scheme: BatchSettlementEvmScheme, payload: PaymentPayload):
    """before_verify (local verification, no chain) then after_verify (the reservation)."""
    requirements = _requirements()
    before = scheme.before_verify(VerifyContext(payment_payload=payload, requirements=requirements))
    if not isinstance(before, SkipVerifyResult):
        return before
    assert before.result.is_valid, before.result
    return scheme.after_verify(
        VerifyResultContext(
            payment_payload=payload, requirements=requirements, result=before.result
        )
    )


def test_the_sdks_scheme_verifies_and_settles_vouchers_on_two_gateways(engine, database_url):
    """Two gateways (two schemes, two engines) share the channel through the database."""
    account = Account.create()
    config = _config(payer=account.address)
    channel_id = compute_channel_id(config, NETWORK)
    other_engine = make_engine(database_url)
    storages = [SqlChannelStorage(e, receiver=RECEIVER) for e in (engine, other_engine)]
    gateway_a, gateway_b = (
        BatchSettlementEvmScheme(RECEIVER, BatchSettlementEvmSchemeServerConfig(storage=s))
        for s in storages
    )
    storage = storages[0]
    try:
        # the deposit is on chain and mirrored fresh: vouchers verify locally
        _put(storage, Channel(channel_id, config, balance="1000000", onchain_synced_at=_now_ms()))

        first = _voucher_payload(account, config, PRICE)
        assert _verify(gateway_a, first) is None
        reserved = storage.get(channel_id)
        assert reserved.pending_request is not None
        assert reserved.pending_request.signed_max_claimable == str(PRICE)
        settled = gateway_a.before_settle(
            SettleContext(payment_payload=first, requirements=_requirements())
        )
        assert isinstance(settled, SkipSettleResult) and settled.result.success
        after_first = storage.get(channel_id)
        assert after_first.charged_cumulative_amount == str(PRICE)
        assert after_first.pending_request is None
        assert after_first.signature == first.payload["voucher"]["signature"]

        # the next voucher reaches both gateways at once: one reserves, the other is busy
        second_a = _voucher_payload(account, config, 2 * PRICE)
        second_b = PaymentPayload.model_validate(second_a.model_dump())
        requirements = _requirements()
        ok_a = gateway_a.before_verify(
            VerifyContext(payment_payload=second_a, requirements=requirements)
        )
        ok_b = gateway_b.before_verify(
            VerifyContext(payment_payload=second_b, requirements=requirements)
        )
        assert isinstance(ok_a, SkipVerifyResult) and isinstance(ok_b, SkipVerifyResult)
        won = gateway_a.after_verify(
            VerifyResultContext(
                payment_payload=second_a, requirements=requirements, result=ok_a.result
            )
        )
        lost = gateway_b.after_verify(
            VerifyResultContext(
                payment_payload=second_b, requirements=requirements, result=ok_b.result
            )
        )
        assert won is None
        assert isinstance(lost, AbortResult) and lost.reason == ERR_CHANNEL_BUSY
        settled = gateway_a.before_settle(
            SettleContext(payment_payload=second_a, requirements=requirements)
        )
        assert isinstance(settled, SkipSettleResult)
        assert storage.get(channel_id).charged_cumulative_amount == str(2 * PRICE)

        # gateway B sees the new state at once: the replayed voucher is now stale
        stale = _verify(gateway_b, PaymentPayload.model_validate(second_a.model_dump()))
        assert isinstance(stale, AbortResult) and stale.reason == ERR_CUMULATIVE_AMOUNT_MISMATCH
        third = _voucher_payload(account, config, 3 * PRICE)
        assert _verify(gateway_b, third) is None
        settled = gateway_b.before_settle(
            SettleContext(payment_payload=third, requirements=requirements)
        )
        assert isinstance(settled, SkipSettleResult)
        final = storage.get(channel_id)
        assert (final.charged_cumulative_amount, final.signed_max_claimable) == (
            str(3 * PRICE),
            str(3 * PRICE),
        )
        assert [c.channel_id for c in storage.list()] == [channel_id]

        # the SDK's channel manager finds the voucher to claim through list()
        manager = BatchSettlementChannelManagerSync(
            ChannelManagerConfigSync(
                scheme=gateway_b, facilitator=None, receiver=RECEIVER, token=TOKEN, network=NETWORK
            )
        )
        (claim,) = manager.get_claimable_vouchers()
        assert (claim.total_claimed, claim.signature) == (
            str(3 * PRICE),
            third.payload["voucher"]["signature"],
        )
        assert claim.channel.to_dict() == config.to_dict()
    finally:
        other_engine.dispose()


# -- the hammer (a child process of the tests above) ---------------------------------------------


def _hammer_main(url: str, mode: str, threads: int, n: int, ids: list[str]) -> None:
    import secrets

    engine = make_engine(url)
    storage = SqlChannelStorage(engine, max_attempts=10_000)
    report: dict[str, Any] = {"updated": 0, "committed": 0, "stolen": 0, "busy": 0, "reserved": {}}
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def count(key: str, amount: int = 1) -> None:
        with lock:
            report[key] += amount

    def reserve(channel_id: str, pending_id: str) -> bool:
        """after_verify's rule: a live pending request makes the channel busy."""

        def update(current: Channel | None) -> Channel | None:
            assert current is not None
            pending = current.pending_request
            if pending is not None and pending.expires_at > _now_ms():
                return current
            nxt = current.copy()
            nxt.signed_max_claimable = str(int(current.charged_cumulative_amount) + PRICE)
            nxt.pending_request = PendingRequest(
                pending_id, nxt.signed_max_claimable, _now_ms() + 60_000
            )
            return nxt

        return storage.update_channel(channel_id, update).status == "updated"

    def commit(channel_id: str, pending_id: str) -> bool:
        """before_settle's rule: charge only under our own reservation, then release it."""

        def update(current: Channel | None) -> Channel | None:
            assert current is not None
            pending = current.pending_request
            if pending is None or pending.pending_id != pending_id:
                return current
            nxt = current.copy()
            nxt.charged_cumulative_amount = str(int(current.charged_cumulative_amount) + PRICE)
            nxt.pending_request = None
            return nxt

        return storage.update_channel(channel_id, update).status == "updated"

    def run() -> None:
        start.wait()
        for _ in range(n):
            for channel_id in ids:
                if mode == "increment":
                    storage.update_channel(channel_id, _charged_plus(PRICE))
                    count("updated")
                elif mode == "reserve":
                    pending_id = secrets.token_hex(16)
                    if reserve(channel_id, pending_id):
                        with lock:
                            report["reserved"].setdefault(channel_id, []).append(pending_id)
                    else:
                        count("busy")
                else:  # cycle: reserve (retrying while busy), then commit
                    pending_id = secrets.token_hex(16)
                    while not reserve(channel_id, pending_id):
                        time.sleep(0.0005)
                    count("committed" if commit(channel_id, pending_id) else "stolen")

    print("ready", flush=True)
    sys.stdin.readline()
    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    report["lost_races"] = storage.lost_races
    engine.dispose()
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    _url, _mode, _threads, _n, *_ids = sys.argv[1:]
    _hammer_main(_url, _mode, int(_threads), int(_n), _ids)
