"""`402claw call` and `402claw channels refund` as processes, paying a server that offers a
`batch-settlement` channel first and `exact` second (built from the SDK's own server parts,
`channelserver`), through the real facilitator on anvil. Money is read back from the chain.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from channelserver import ChannelServer, channel_server
from paidstack import Stack

from claw402.chain.wallet import Wallet
from claw402.payments.channel_payer import CHANNELS_DIR, DB_NAME
from claw402.registry.deploy import DeployRequest, deploy
from claw402.samples import CITIES
from jsclient import pay_with_js_client
from procs import run as run_reaped

CLI = str(Path(sys.executable).with_name("402claw"))
PRICE = 1_000  # $0.001
DEPOSIT = 10 * PRICE  # the server's minDeposit hint


@pytest.fixture
def server(stack: Stack) -> Iterator[ChannelServer]:
    with channel_server(stack.chain, stack.facilitator_url, PRICE) as running:
        yield running


class Payer:
    """One wallet and its home folder, calling through the CLI."""

    def __init__(self, stack: Stack, wallet: Wallet, home: Path) -> None:
        self.stack, self.wallet, self.home = stack, wallet, home

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLAW402_")}
        return {**env, "CLAW402_HOME": str(self.home), "CLAW402_PAYER_KEY": self.wallet.private_key}

    def run(self, *args: str) -> Any:
        chain = self.stack.chain
        common = ["--asset", f"{chain.network}={chain.token}", "--rpc-url", chain.rpc_url]
        if args[0] == "channels":
            common = ["--rpc-url", chain.rpc_url]
        return run_reaped([CLI, *args, *common], env=self.env(), timeout=120)

    def call(self, url: str, *extra: str) -> dict[str, Any]:
        done = self.run("call", url, "--json", *extra)
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    def channels(self) -> list[dict[str, Any]]:
        """The channel records with money in them (reading the chain leaves empty ones)."""
        path = self.home / CHANNELS_DIR / DB_NAME
        if not path.exists():
            return []
        with closing(sqlite3.connect(path)) as db:
            found = [json.loads(c) for (c,) in db.execute("SELECT context FROM channels")]
        return [record for record in found if int(record.get("balance") or 0)]

    @property
    def balance(self) -> int:
        return self.stack.balance(self.wallet.address)


@pytest.fixture
def payer(stack: Stack, tmp_path: Path) -> Payer:
    return Payer(stack, stack.payer(), tmp_path / "home")


def blocks(stack: Stack) -> int:
    """anvil mines a block per transaction: the count of transactions sent so far."""
    return stack.chain.web3().eth.block_number


def test_first_call_deposits_then_vouchers_move_nothing_on_chain(
    stack: Stack, server: ChannelServer, payer: Payer
) -> None:
    start, height = payer.balance, blocks(stack)
    first = payer.call(server.url)
    assert first["status"] == 200 and first["body"] == {"rows": [1, 2, 3]}
    receipt = first["channel"]
    assert receipt["kind"] == "deposit" and receipt["deposited"] == str(DEPOSIT)
    assert (receipt["charged"], receipt["remaining"]) == (str(PRICE), str(DEPOSIT - PRICE))
    assert first["settlement"]["transaction"]  # the deposit's transaction
    assert blocks(stack) == height + 1
    assert payer.balance == start - DEPOSIT
    assert len(payer.channels()) == 1  # the state the next process reads

    for n in (2, 3):  # other processes, same home: vouchers, no transaction
        later = payer.call(server.url)
        assert later["status"] == 200
        assert later["channel"]["kind"] == "voucher" and later["channel"]["deposited"] == "0"
        assert later["channel"]["remaining"] == str(DEPOSIT - n * PRICE)
        assert later["settlement"]["transaction"] == ""
    assert blocks(stack) == height + 1
    assert payer.balance == start - DEPOSIT
    assert stack.balance(server.pay_to) == 0  # nothing claimed yet

    # The receiver's claim and settle move exactly the three calls.
    server.manager.claim()
    server.manager.settle()
    assert stack.balance(server.pay_to) == 3 * PRICE


def test_receipt_line_on_stderr_says_deposit_then_voucher(
    server: ChannelServer, payer: Payer
) -> None:
    first = payer.run("call", server.url)
    assert first.returncode == 0, first.stderr
    assert first.stdout == '{"rows": [1, 2, 3]}'  # stdout carries the data alone
    assert "deposit $0.01 into channel" in first.stderr
    assert "charged $0.001, $0.009 left of $0.01 deposited" in first.stderr
    second = payer.run("call", server.url)
    assert "voucher on channel" in second.stderr and "$0.008 left" in second.stderr


def test_scheme_exact_settles_every_call(stack: Stack, server: ChannelServer, payer: Payer) -> None:
    start, height = payer.balance, blocks(stack)
    for _ in range(2):
        paid = payer.call(server.url, "--scheme", "exact")
        assert paid["status"] == 200 and paid["channel"] is None
        assert paid["settlement"]["transaction"]
    assert blocks(stack) == height + 2
    assert payer.balance == start - 2 * PRICE
    assert stack.balance(server.pay_to) == 2 * PRICE
    assert payer.channels() == []


@pytest.mark.parametrize(
    "flags",
    [
        ("--deposit", "0.05", "--max-deposit", "0.01"),  # refused before any request
        ("--max-deposit", "0.0005"),  # this call alone needs more than the cap
        ("--scheme", "batch", "--max-price", "0.00005"),  # 10 x the price cap < one call
    ],
)
def test_a_deposit_above_the_cap_is_refused_before_signing(
    stack: Stack, server: ChannelServer, payer: Payer, flags: tuple[str, ...]
) -> None:
    start, height = payer.balance, blocks(stack)
    refused = payer.run("call", server.url, "--scheme", "batch", "--json", *flags)
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["error"] in ("deposit_too_high", "price_too_high")
    assert (payer.balance, blocks(stack)) == (start, height)
    assert payer.channels() == []


def test_scheme_batch_against_an_exact_only_offer_pays_nothing(stack: Stack, payer: Payer) -> None:
    request = DeployRequest(source=CITIES, slug="exact-only", price="0.001", schemes="exact")
    deploy(stack.registry, stack.settings, request)
    url = f"{stack.url}/t/exact-only/v1/records"
    start = payer.balance
    refused = payer.run("call", url, "--scheme", "batch", "--json")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["error"] == "payment_failed"
    assert payer.balance == start


def test_refund_returns_exactly_the_unspent_deposit_and_the_next_call_deposits_again(
    stack: Stack, server: ChannelServer, payer: Payer
) -> None:
    start = payer.balance
    payer.call(server.url)
    payer.call(server.url)
    assert payer.balance == start - DEPOSIT

    done = payer.run("channels", "refund", "--url", server.url, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    refund = json.loads(done.stdout)
    assert refund["refunded"] == str(DEPOSIT - 2 * PRICE) and refund["transaction"]
    assert payer.balance == start - 2 * PRICE  # exactly the two calls spent
    assert payer.channels() == []

    again = payer.call(server.url)
    assert again["channel"]["kind"] == "deposit"
    assert again["channel"]["deposited"] == str(DEPOSIT)
    assert again["channel"]["remaining"] == str(DEPOSIT - PRICE)
    assert payer.balance == start - 2 * PRICE - DEPOSIT
    # The server claimed the two refunded calls with the refund; this one is still owed.
    server.manager.claim()
    server.manager.settle()
    assert stack.balance(server.pay_to) == 3 * PRICE


def test_refund_without_a_channel_is_a_clear_error(server: ChannelServer, payer: Payer) -> None:
    done = payer.run("channels", "refund", "--url", server.url, "--json")
    assert done.returncode == 1
    answer = json.loads(done.stdout)
    assert answer["error"] == "refund_failed" and "balance" in answer["detail"]


def test_the_official_js_client_deposits_once_then_pays_with_vouchers(
    stack: Stack, server: ChannelServer, tmp_path: Path
) -> None:
    wallet, chain = stack.payer(), stack.chain
    start, height = stack.balance(wallet.address), blocks(stack)
    reports = [
        pay_with_js_client(
            server.url, wallet.private_key, chain.network, chain.token, 10 * PRICE,
            channels=tmp_path / "js-channels",
        )
        for _ in range(3)
    ]  # fmt: skip
    assert [r["status"] for r in reports] == [200, 200, 200]
    receipts = [r["paymentResponse"] for r in reports]
    assert receipts[0]["transaction"] and [r["transaction"] for r in receipts[1:]] == ["", ""]
    assert [r["extra"]["chargedAmount"] for r in receipts] == [str(PRICE)] * 3
    assert blocks(stack) == height + 1
    assert stack.balance(wallet.address) == start - DEPOSIT
    server.manager.claim()
    server.manager.settle()
    assert stack.balance(server.pay_to) == 3 * PRICE


def test_an_unknown_token_is_named_and_nothing_is_signed(
    stack: Stack, server: ChannelServer, payer: Payer
) -> None:
    start = payer.balance
    refused = run_reaped([CLI, "call", server.url, "--json"], env=payer.env(), timeout=120)
    assert refused.returncode == 1
    answer = json.loads(refused.stdout)
    assert answer["error"] == "asset_not_allowed"
    assert f"--asset {stack.chain.network}={stack.chain.token}" in answer["detail"]
    assert payer.balance == start and payer.channels() == []
