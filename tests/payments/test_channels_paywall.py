"""Paying the gateway through batch-settlement channels: anvil, the real facilitator, the
real gateway, the SDK's client scheme as payer, the SQL channel storage and the ledger.

Each test deploys its own tenants and pays from fresh wallets, so its channels, balances and
books are its own (the treasury receiver is shared: assertions on it are deltas).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import replace
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from channelpay import SCHEME, ChannelPayer, config_of, encode, required_of, voucher
from paidstack import Stack
from test_payments_serve import serve_env
from x402.http.utils import decode_payment_response_header
from x402.mechanisms.evm.batch_settlement.utils import compute_channel_id

from claw402.chain.token import usdc
from claw402.events.store import EventStore
from claw402.ledger import accounts
from claw402.ledger.balances import account_balance, balance, check_books
from claw402.ledger.schema import channel_charges
from claw402.payments.channels.manager import ChannelManager
from claw402.payments.channels.terms import ChannelSchemes
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.models import Tenant
from claw402.samples import CITIES

PRICE = usdc("0.001")
FEE = PRICE * 500 // 10_000


def _tenant(stack: Stack, price: str = "0.001", **extra: Any) -> Tenant:
    slug = "ch-" + secrets.token_hex(4)
    request = DeployRequest(source=CITIES, slug=slug, price=price, **extra)
    return deploy(stack.registry, stack.settings, request)


def _url(stack: Stack, tenant: Tenant, query: str = "country=Japan") -> str:
    return f"{stack.url}/t/{tenant.slug}/v1/records?{query}"


def _payer(stack: Stack) -> ChannelPayer:
    return ChannelPayer(stack.payer(usdc(1)), stack.chain.network, stack.chain.token)


def _manager(stack: Stack, **config: Any) -> ChannelManager:
    """The channel manager `402claw serve` runs, on this stack (booking claims needs RPC)."""
    settings = replace(stack.config, rpc_url=stack.chain.rpc_url, **config)
    return ChannelManager(ChannelSchemes(settings, stack.registry.engine))


def _escrow(stack: Stack, channel_id: str) -> tuple[int, int]:
    from claw402.ledger.channels import _escrow as escrow

    balance_, claimed = (
        escrow(stack.chain.web3()).functions.channels(bytes.fromhex(channel_id[2:])).call()
    )
    return int(balance_), int(claimed)


def _charges(stack: Stack, channel_id: str) -> list[dict[str, Any]]:
    c = channel_charges.c
    with stack.registry.engine.connect() as conn:
        rows = conn.execute(
            sa.select(channel_charges).where(c.channel_id == channel_id).order_by(c.cumulative)
        ).mappings()
        return [dict(r) for r in rows]


def _unclaimed(stack: Stack) -> int:
    with stack.registry.engine.connect() as conn:
        return account_balance(conn, accounts.channel_unclaimed(stack.chain.treasury.address))


def test_the_402_offers_a_channel_first_then_exact_at_the_same_price(stack: Stack) -> None:
    tenant = _tenant(stack)
    answer = httpx.get(_url(stack, tenant), timeout=10)
    assert answer.status_code == 402
    batch, exact = required_of(answer).accepts
    assert (batch.scheme, exact.scheme) == (SCHEME, "exact")
    assert batch.amount == exact.amount == str(PRICE)
    assert batch.pay_to == exact.pay_to == stack.chain.treasury.address
    assert batch.extra["receiverAuthorizer"] == stack.chain.facilitator.address
    assert batch.extra["withdrawDelay"] == stack.config.channel_withdraw_delay
    assert batch.extra["minDeposit"] == str(10 * PRICE)
    assert batch.extra["tenant"] == tenant.tenant_id
    assert [a["scheme"] for a in answer.json()["accepts"]] == ["exact"]  # v1 knows exact only


def test_deploy_schemes_restricts_what_the_402_offers(stack: Stack) -> None:
    exact_only = _tenant(stack, schemes="exact")
    batch_only = _tenant(stack, schemes="batch")
    offered = {
        t.schemes: [a.scheme for a in required_of(httpx.get(_url(stack, t))).accepts]
        for t in (exact_only, batch_only)
    }
    assert offered == {"exact": ["exact"], "batch": [SCHEME]}
    payer = stack.payer(usdc(1))
    refused = stack.get(
        f"/t/{batch_only.slug}/v1/records",
        {**stack.sign(payer, exact_only.slug), "accepted": {}},
    )
    assert refused.status_code in (400, 402)


def test_first_call_deposits_then_vouchers_move_nothing_on_chain(stack: Stack) -> None:
    tenant = _tenant(stack)
    payer = _payer(stack)
    treasury = stack.chain.treasury.address
    start = stack.balance(payer.wallet.address)
    block = stack.chain.web3().eth.block_number

    first, payload = payer.call(_url(stack, tenant))
    assert first.status_code == 200, first.text
    assert payload.payload["type"] == "deposit"
    receipt = decode_payment_response_header(first.headers["payment-response"])
    assert receipt.success and receipt.transaction  # the deposit's transaction
    deposit = int(payload.payload["deposit"]["amount"])
    assert stack.balance(payer.wallet.address) == start - deposit
    channel_id = compute_channel_id(config_of(payload), stack.chain.network)
    after_deposit = stack.chain.web3().eth.block_number
    assert after_deposit == block + 1  # one transaction

    for n in range(2, 6):
        answer, payload = payer.call(_url(stack, tenant, f"continent=Asia&_limit={n}"))
        assert answer.status_code == 200, answer.text
        assert payload.payload["type"] == "voucher"
        assert len(answer.json()["items"]) == n
        receipt = decode_payment_response_header(answer.headers["payment-response"])
        assert receipt.transaction == ""
        assert receipt.extra["channelState"]["chargedCumulativeAmount"] == str(n * PRICE)
    assert stack.chain.web3().eth.block_number == after_deposit  # vouchers: no chain tx
    assert _escrow(stack, channel_id) == (deposit, 0)

    charges = _charges(stack, channel_id)
    assert [(c["cumulative"], c["amount"], c["fee"]) for c in charges] == [
        (n * PRICE, PRICE, FEE) for n in range(1, 6)
    ]
    earned = balance(stack.registry.engine, tenant.tenant_id)
    assert (earned.earned, earned.fees, earned.unclaimed, earned.available) == (
        5 * PRICE,
        5 * FEE,
        5 * (PRICE - FEE),
        0,
    )
    # The channel manager claims and settles; the books follow the escrow.
    treasury_before = stack.balance(treasury)
    manager = _manager(stack)
    claimed = manager.claim()
    assert not claimed.errors and claimed.booked >= 1
    assert _escrow(stack, channel_id) == (deposit, 5 * PRICE)
    earned = balance(stack.registry.engine, tenant.tenant_id)
    assert (earned.unclaimed, earned.claimed, earned.available) == (
        0,
        5 * (PRICE - FEE),
        5 * (PRICE - FEE),
    )
    assert all(c["claim_key"] for c in _charges(stack, channel_id))
    settled = manager.settle()
    assert not settled.errors
    assert stack.balance(treasury) - treasury_before >= 5 * PRICE
    assert check_books(stack.registry.engine) == []


def _stored(stack: Stack, channel_id: str) -> tuple[str, bool]:
    """The storage's charged total and whether a request holds the channel."""
    found = stack.paywall.channels.receiver(stack.chain.treasury.address).storage.get(channel_id)
    assert found is not None
    return found.charged_cumulative_amount, found.pending_request is not None


def _opened(stack: Stack, calls: int = 2) -> tuple[Tenant, ChannelPayer, Any, str]:
    tenant = _tenant(stack)
    payer = _payer(stack)
    for _ in range(calls):
        answer, payload = payer.call(_url(stack, tenant))
        assert answer.status_code == 200, answer.text
    return tenant, payer, payload, compute_channel_id(config_of(payload), stack.chain.network)


def test_each_forged_or_stale_voucher_is_refused_and_charges_nothing(stack: Stack) -> None:
    tenant, payer, last, channel_id = _opened(stack)
    key = payer.wallet.private_key
    expected = 3 * PRICE
    other = stack.payer(0)
    creator_tenant = _tenant(stack, pay_to=stack.creator.address)
    theirs = _payer(stack)
    answer, theirs_last = theirs.call(_url(stack, creator_tenant))
    assert answer.status_code == 200, answer.text
    elsewhere = config_of(theirs_last)  # a funded channel whose receiver is the creator
    cases = {
        "replayed": last.model_dump(by_alias=True),
        "below": voucher(last, key, 2 * PRICE),
        "above": voucher(last, key, expected + PRICE),
        "wrong key": voucher(last, other.private_key, expected),
        "another receiver": voucher(theirs_last, theirs.wallet.private_key, 2 * PRICE, elsewhere),
    }
    reasons = {}
    for name, payment in cases.items():
        if name == "another receiver":
            payment["accepted"] = last.accepted.model_dump(by_alias=True)
        answer = stack.get(f"/t/{tenant.slug}/v1/records?country=Japan", encode(payment))
        assert answer.status_code == 402, (name, answer.text)
        reasons[name] = answer.json()["reason"]
    assert reasons["replayed"].endswith("cumulative_amount_mismatch")
    assert reasons["below"].endswith("cumulative_amount_mismatch")
    assert reasons["above"].endswith("cumulative_amount_mismatch")
    assert "signature" in reasons["wrong key"]
    assert "receiver" in reasons["another receiver"]
    # The corrective 402 tells the payer where the channel stands.
    stale = stack.get(f"/t/{tenant.slug}/v1/records", encode(cases["below"]))
    state = required_of(stale).accepts[0].extra["channelState"]
    assert state["chargedCumulativeAmount"] == str(2 * PRICE)
    assert _stored(stack, channel_id) == (str(2 * PRICE), False)
    assert len(_charges(stack, channel_id)) == 2
    # Nothing was charged and nothing is held: the honest next voucher goes through.
    answer, _ = payer.call(_url(stack, tenant))
    assert answer.status_code == 200, answer.text
    assert _stored(stack, channel_id) == (str(expected), False)


def test_a_voucher_past_the_deposit_is_refused(stack: Stack) -> None:
    _cheap, payer, last, channel_id = _opened(stack, calls=1)
    deposit, _ = _escrow(stack, channel_id)
    dear = _tenant(stack, price="0.05")  # one call costs more than the deposit holds
    payment = voucher(last, payer.wallet.private_key, PRICE + usdc("0.05"))
    dear_terms = next(a for a in required_of(httpx.get(_url(stack, dear))).accepts)
    payment["accepted"] = dear_terms.model_dump(by_alias=True)
    answer = stack.get(f"/t/{dear.slug}/v1/records", encode(payment))
    assert answer.status_code == 402, answer.text
    assert answer.json()["reason"].endswith("cumulative_exceeds_balance")
    assert usdc("0.05") + PRICE > deposit
    assert _stored(stack, channel_id) == (str(PRICE), False)


def test_a_failed_query_charges_nothing_and_releases_the_channel(stack: Stack) -> None:
    tenant = _tenant(stack, key="id")
    payer = _payer(stack)
    start = stack.balance(payer.wallet.address)
    missing = f"{stack.url}/t/{tenant.slug}/v1/records/999999"
    answer, payload = payer.call(missing)  # a deposit for a record that does not exist
    assert answer.status_code == 404, answer.text
    assert payload.payload["type"] == "deposit"
    assert stack.balance(payer.wallet.address) == start  # the deposit was never sent
    channel_id = compute_channel_id(config_of(payload), stack.chain.network)
    assert _stored(stack, channel_id) == ("0", False)  # charged nothing, held by no one
    found = f"{stack.url}/t/{tenant.slug}/v1/records/1"
    assert payer.call(found)[0].status_code == 200
    answer, payload = payer.call(missing)  # a voucher, this time
    assert answer.status_code == 404 and payload.payload["type"] == "voucher"
    assert _stored(stack, channel_id) == (str(PRICE), False)
    bad = payer.call(f"{stack.url}/t/{tenant.slug}/v1/records?nosuchcolumn=1")[0]
    assert bad.status_code == 400
    assert payer.call(found)[0].status_code == 200  # the same voucher amount, accepted now
    assert _stored(stack, channel_id) == (str(2 * PRICE), False)
    assert [c["cumulative"] for c in _charges(stack, channel_id)] == [PRICE, 2 * PRICE]


def test_facilitator_down_refuses_deposits_and_keeps_fresh_channels_working(
    stack: Stack,
) -> None:
    """Chosen: an EOA voucher on a channel whose on-chain state the gateway mirrored within
    the scheme's TTL is verified locally, so it is served; a deposit needs the facilitator
    (verify and the deposit's settle), so it is refused with 503 and no data."""
    from faultproxy import FaultProxy

    tenant = _tenant(stack)
    proxy = FaultProxy(stack.facilitator_url).start()
    try:
        base = stack.serve(stack.paywall_with(facilitator_url=proxy.url))
        url = f"{base}/t/{tenant.slug}/v1/records?country=Japan"
        known = _payer(stack)
        assert known.call(url)[0].status_code == 200  # the deposit, through the facilitator
    finally:
        proxy.stop()  # the facilitator is unreachable from here on
    answer, payload = known.call(url)
    assert answer.status_code == 200, answer.text
    assert payload.payload["type"] == "voucher"
    newcomer = _payer(stack)
    start = stack.balance(newcomer.wallet.address)
    answer, payload = newcomer.call(url)
    assert payload.payload["type"] == "deposit"
    assert answer.status_code == 503 and answer.json()["error"] == "facilitator_unavailable"
    assert "items" not in answer.json()
    assert stack.balance(newcomer.wallet.address) == start
    channel_id = compute_channel_id(config_of(payload), stack.chain.network)
    assert _charges(stack, channel_id) == []


def test_a_timed_withdrawal_is_met_by_a_claim_before_its_delay_ends(stack: Stack) -> None:
    from x402.mechanisms.evm.batch_settlement.facilitator.utils import (
        to_contract_channel_config,
    )

    from claw402.chain.tx import transact
    from claw402.ledger.channels import _escrow as escrow

    tenant, payer, last, channel_id = _opened(stack, calls=3)
    deposit, _ = _escrow(stack, channel_id)
    w3 = stack.chain.web3()
    w3.provider.make_request("anvil_setBalance", [payer.wallet.address, hex(10**18)])
    onchain = to_contract_channel_config(config_of(last))
    contract = escrow(w3)
    transact(w3, payer.wallet.account, contract.functions.initiateWithdraw(onchain, deposit))
    with pytest.raises(Exception):  # noqa: B017 - the delay has not passed
        contract.functions.finalizeWithdraw(onchain).call({"from": payer.wallet.address})
    manager = _manager(stack, channel_claim_seconds=0.2).start()
    try:
        deadline = time.monotonic() + 20
        while _escrow(stack, channel_id)[1] < 3 * PRICE:
            assert time.monotonic() < deadline, "the channel manager did not claim"
            time.sleep(0.1)
    finally:
        manager.stop()
    # Claimed before the delay ends: the withdrawal can take only the unspent deposit.
    assert _escrow(stack, channel_id) == (deposit, 3 * PRICE)
    manager.book()
    earned = balance(stack.registry.engine, tenant.tenant_id)
    assert (earned.unclaimed, earned.claimed) == (0, 3 * (PRICE - FEE))


def test_channel_payments_leave_their_events(stack: Stack) -> None:
    tenant = _tenant(stack)
    payer = _payer(stack)
    deposit, _ = payer.call(_url(stack, tenant))
    voucher_call, _ = payer.call(_url(stack, tenant))
    assert _events(stack, deposit, "payment_settled") >= {"payment_verified", "payment_settled"}
    assert _events(stack, voucher_call, "payment_voucher") >= {
        "payment_verified",
        "payment_voucher",
    }


def _events(stack: Stack, answer: httpx.Response, last: str) -> set[str]:
    request_id = answer.headers["x-request-id"]
    deadline, store = time.monotonic() + 5, EventStore(stack.registry.engine)
    while True:
        found = {e["type"] for e in store.read_events(request_id=request_id)}
        if last in found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_channels_commands_list_claim_and_refund(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from claw402.cli.main import app

    for name, value in serve_env(stack).items():  # what `402claw serve` would be given
        if name.startswith("CLAW402_"):
            monkeypatch.setenv(name, value)
    runner = CliRunner()

    def run(*args: str) -> dict[str, Any]:
        result = runner.invoke(app, ["channels", *args, "--home", str(stack.settings.home),
                                     "--json"])  # fmt: skip
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    tenant, payer, _last, channel_id = _opened(stack, calls=2)
    deposit, _ = _escrow(stack, channel_id)
    start = stack.balance(payer.wallet.address)

    def listed() -> dict[str, Any]:
        return next(c for c in run("list")["channels"] if c["channel"] == channel_id)

    row = listed()
    assert row["payer"] == payer.wallet.address.lower()
    assert (row["balance"], row["charged"], row["claimed"], row["state"]) == (
        str(deposit),
        str(2 * PRICE),
        "0",
        "unclaimed",
    )
    claimed = run("claim")
    assert claimed["ok"] and claimed["claims"]
    assert _escrow(stack, channel_id) == (deposit, 2 * PRICE)
    assert listed()["state"] == "open" and listed()["claimed"] == str(2 * PRICE)
    refunded = run("refund", "--channel", channel_id)
    assert [r["channel"] for r in refunded["refunds"]] == [channel_id]
    assert stack.balance(payer.wallet.address) == start + deposit - 2 * PRICE
    assert channel_id not in {c["channel"] for c in run("list")["channels"]}
    earned = balance(stack.registry.engine, tenant.tenant_id)
    assert (earned.earned, earned.unclaimed) == (2 * PRICE, 0)


def test_a_payer_refund_through_the_gateway_returns_the_unspent_deposit(stack: Stack) -> None:
    """The SDK client's cooperative refund: a zero-charge request the gateway settles."""
    tenant, payer, _last, channel_id = _opened(stack, calls=3)
    deposit, _ = _escrow(stack, channel_id)
    start = stack.balance(payer.wallet.address)
    settled = payer.scheme.refund(_url(stack, tenant))
    assert settled.success, settled
    assert stack.balance(payer.wallet.address) == start + deposit - 3 * PRICE
    assert _escrow(stack, channel_id)[1] == 3 * PRICE  # what was spent was claimed first
    _manager(stack).book()
    earned = balance(stack.registry.engine, tenant.tenant_id)
    assert (earned.earned, earned.unclaimed, earned.claimed) == (
        3 * PRICE,
        0,
        3 * (PRICE - FEE),
    )


def test_without_the_facilitators_terms_the_402_offers_exact_alone(stack: Stack) -> None:
    from paidstack import free_port

    tenant = _tenant(stack)
    dead = stack.paywall_with(facilitator_url=f"http://127.0.0.1:{free_port()}")
    base = stack.serve(dead)
    answer = httpx.get(f"{base}/t/{tenant.slug}/v1/records", timeout=10)
    assert answer.status_code == 402
    assert [a.scheme for a in required_of(answer).accepts] == ["exact"]
