"""The channel manager runs once per database (a lease), and watches withdrawals on chain."""

from __future__ import annotations

import select
import subprocess
import sys
import time
from typing import Any

import pytest
from paidstack import Stack
from test_channels_paywall import PRICE, _escrow, _manager, _opened

from claw402.payments.channels.lease import Lease
from procs import running, stop


def test_one_holder_at_a_time_renewed_taken_over_when_expired_released_at_once(engine) -> None:
    one, two = Lease(engine, "job", 0.5), Lease(engine, "job", 0.5)
    assert one.acquire() and not two.acquire()
    assert one.acquire() and not two.acquire()  # renewed by its holder only
    time.sleep(0.6)
    assert two.acquire() and not one.acquire()  # expired: taken over
    two.release()
    assert one.acquire()  # released: no wait
    assert Lease(engine, "another job", 0.5).acquire()  # leases are per name
    with pytest.raises(ValueError):
        Lease(engine, "job", 0)


# A process that takes or renews the lease every 0.1 s and prints "held" each time it has it.
HOLD = """
import sys, time
from claw402.payments.channels.lease import Lease
from claw402.registry.db import make_engine
lease = Lease(make_engine(sys.argv[1]), "channel-manager", float(sys.argv[2]))
while True:
    if lease.acquire():
        print("held", flush=True)
    time.sleep(0.1)
"""


def _holder(database_url: str, seconds: float) -> Any:
    return running(
        [sys.executable, "-c", HOLD, database_url, str(seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _held(proc: Any, timeout: float) -> bool:
    """Whether `proc` prints "held" within `timeout` seconds."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return bool(ready) and proc.stdout.readline().strip() == "held"


def test_two_processes_one_holds_the_other_takes_over_when_it_dies(engine, database_url) -> None:
    with _holder(database_url, 1.0) as first:
        assert _held(first, 30)
        with _holder(database_url, 1.0) as second:
            assert not _held(second, 3.0)  # renewed every 0.1 s: the first keeps it
            assert first.poll() is None and second.poll() is None
            stop(first)  # SIGTERM, no release: the second waits for the lease to expire
            assert _held(second, 15)


def test_two_managers_on_one_database_only_the_lease_holder_runs(stack: Stack) -> None:
    one = _manager(stack, channel_claim_seconds=0.1, channel_settle_seconds=0.1)
    two = _manager(stack, channel_claim_seconds=0.1, channel_settle_seconds=0.1)
    one.start()
    try:
        deadline = time.monotonic() + 10
        while not one.rounds:
            assert time.monotonic() < deadline, "the first manager never ran"
            time.sleep(0.05)
        two.start()
        time.sleep(1.0)
        assert one.rounds > 2 and two.rounds == 0
    finally:
        one.stop()  # releases the lease: the second takes over at its next tick
    try:
        deadline = time.monotonic() + 10
        while not two.rounds:
            assert time.monotonic() < deadline, "the second manager did not take over"
            time.sleep(0.05)
    finally:
        two.stop()


def test_a_withdrawal_is_claimed_at_once_despite_a_long_claim_interval(stack: Stack) -> None:
    from channelpay import config_of
    from x402.mechanisms.evm.batch_settlement.facilitator.utils import (
        to_contract_channel_config,
    )

    from claw402.chain.tx import transact
    from claw402.ledger.channels import _escrow as escrow

    _tenant, payer, last, channel_id = _opened(stack, calls=3)
    deposit, _ = _escrow(stack, channel_id)
    manager = _manager(stack, channel_claim_seconds=3600.0)
    manager.watch_seconds = 0.2
    manager.start()
    try:
        time.sleep(0.5)  # a few rounds: nothing to claim while no one withdraws
        assert _escrow(stack, channel_id) == (deposit, 0)
        w3 = stack.chain.web3()
        w3.provider.make_request("anvil_setBalance", [payer.wallet.address, hex(10**18)])
        onchain = to_contract_channel_config(config_of(last))
        contract = escrow(w3)
        transact(w3, payer.wallet.account, contract.functions.initiateWithdraw(onchain, deposit))
        deadline = time.monotonic() + 20
        while _escrow(stack, channel_id)[1] < 3 * PRICE:
            assert time.monotonic() < deadline, "the withdrawal was not met by a claim"
            time.sleep(0.1)
    finally:
        manager.stop()
    assert _escrow(stack, channel_id) == (deposit, 3 * PRICE)
    with pytest.raises(Exception):  # noqa: B017 - the delay has not passed
        contract.functions.finalizeWithdraw(onchain).call({"from": payer.wallet.address})
