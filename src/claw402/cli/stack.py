"""`402claw dev` (the local stack, until interrupted) and `402claw demo` (the whole story)."""

from __future__ import annotations

import base64
import json as jsonlib
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from claw402.cli import devfile
from claw402.cli.options import Home, Json, inherit_home
from claw402.cli.output import console, emit_json, err_console, fail
from claw402.config import load_settings
from claw402.money import atomic_to_usd

if TYPE_CHECKING:
    from claw402.devstack import DevStack

# Where browser wallets and the paywall page (viem's built-in chain 31337) expect the chain.
WALLET_RPC_PORT = 8545


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def _need_anvil(as_json: bool = False) -> None:
    """Find anvil before anything starts: an installed 402claw fetches its Node tools on first
    use (and says so), or stops here with the command that installs npm."""
    from claw402.nodetools import NodeToolMissing, binary

    try:
        binary("anvil")
    except NodeToolMissing as exc:
        fail(str(exc), as_json=as_json, code="node_tools_missing")


def dev_command(
    port: Annotated[int, typer.Option(help="Gateway port (0 picks a free one).")] = 8402,
    facilitator_port: Annotated[int, typer.Option(help="Facilitator port (0 = free).")] = 0,
    chain_port: Annotated[
        int,
        typer.Option(
            help="Local chain's RPC port: 8545 is where browser wallets and the paywall page look "
            "for chain 31337; if it is taken, a free one (0 = always a free one)."
        ),
    ] = WALLET_RPC_PORT,
    payers: Annotated[int, typer.Option(min=1, max=20, help="Funded payer accounts.")] = 3,
    home: Home = None,
    json: Json = False,
) -> None:
    """Start anvil, the token, the facilitator and the gateway; stop them all on Ctrl-C.

    While it runs, commands sharing its home (reconcile, payouts run, call) find the chain,
    token, treasury and the treasury's key without flags.
    """
    from claw402.devstack import start_dev_stack
    from claw402.gc_tuning import tune_gc

    _need_anvil(json)
    settings = load_settings(home)
    if (other := devfile.running(settings.home)) is not None:  # before starting anything
        fail(
            f"402claw dev (pid {other.pid}) already runs with home {settings.home}: stop it, "
            "or give this one its own --home",
            as_json=json,
            code="dev_running",
        )
    with (
        start_dev_stack(
            settings,
            gateway_port=port,
            facilitator_port=facilitator_port,
            payers=payers,
            chain_port=chain_port,
        ) as stack,
        devfile.published(settings.home, _dev_settings(stack), stack.chain.treasury.private_key),
    ):
        tune_gc()  # this process now serves until interrupted
        if json:  # one line: a reader that takes the first line gets all of it
            emit_json(stack.describe(), one_line=True)
        else:
            info = stack.describe()
            console.print(
                f"[green]ready[/] gateway {info['gateway_url']}  facilitator "
                f"{info['facilitator_url']}  chain {info['rpc_url']} ({info['network']})  "
                f"token {info['asset']}  treasury {info['treasury_address']}  "
                f"payer {info['payers'][0]['address']} key {info['payers'][0]['private_key']}",
                highlight=False,
                soft_wrap=True,  # addresses and keys stay whole, to copy or grep
            )
            err_console.print(  # a hint: stdout keeps its one ready line
                "pay for a call: CLAW402_PAYER_KEY=<payer key> 402claw call "
                f"{info['gateway_url']}/t/<tenant>/v1/records  (from another home folder add "
                f"--asset {info['network']}={info['asset']}: the local token is not a known "
                "USDC)",
                highlight=False,
                soft_wrap=True,
            )
            if chain_port and stack.chain.rpc_url != f"http://127.0.0.1:{chain_port}":
                err_console.print(
                    f"port {chain_port} was taken: the chain is on {stack.chain.rpc_url}; a "
                    "browser wallet paying through the paywall page reads balances from "
                    f"127.0.0.1:{chain_port}, so it sees none until that port is free",
                    highlight=False,
                    soft_wrap=True,
                )
        _wait_for_signal()


def _dev_settings(stack: DevStack) -> devfile.DevSettings:
    return devfile.DevSettings(
        rpc_url=stack.chain.rpc_url,
        network=stack.chain.network,
        token=stack.chain.token,
        treasury=stack.chain.treasury.address,
        facilitator_url=stack.facilitator.url,
        gateway_url=stack.gateway.url,
        pid=os.getpid(),
    )


def _decode(header: str) -> Any:
    return jsonlib.loads(base64.b64decode(header))


def demo_command(
    home: Annotated[
        str | None,
        typer.Option(
            "--home", help="State folder (default: a temporary one).", callback=inherit_home
        ),
    ] = None,
    price: Annotated[str, typer.Option(help="Price per call in USD.")] = "0.001",
) -> None:
    """Deploy a sample dataset, call it unpaid, pay, get data, show settlement and earnings."""
    from claw402.devstack import start_dev_stack

    _need_anvil()
    with tempfile.TemporaryDirectory(prefix="402claw-demo-") as scratch:
        settings = load_settings(home or Path(scratch))
        with console.status("starting anvil, the token, the facilitator and the gateway"):
            stack = start_dev_stack(settings)
        with stack:
            _demo(stack, settings, price)


def _demo(stack: DevStack, settings: Any, price: str) -> None:
    import httpx
    from rich.panel import Panel
    from rich.table import Table

    from claw402.payments.client import pay_and_fetch
    from claw402.registry.deploy import DeployRequest, deploy
    from claw402.samples import CITIES

    chain, gateway = stack.chain, stack.gateway
    console.print(
        Panel.fit(
            f"chain       {chain.rpc_url} ({chain.network}), token {chain.token}\n"
            f"facilitator {stack.facilitator.url}\ngateway     {gateway.url}",
            title="1. local stack",
        )
    )
    tenant = deploy(
        stack.registry,
        settings,
        DeployRequest(source=CITIES, slug="cities", price=price, key="id", name="World cities"),
    )
    console.print(
        f"\n[bold]2. deploy[/] 402claw deploy cities.csv --tenant cities --price {price}\n"
        f"   {tenant.dataset.rows} rows, {len(tenant.dataset.columns)} columns, "
        f"paid to the platform treasury {chain.treasury.address}"
    )

    url = f"{gateway.url}/t/cities/v1/records?continent=Europe&_sort=-population&_limit=5"
    unpaid = httpx.get(url)
    required = _decode(unpaid.headers["payment-required"])
    offer = required["accepts"][0]
    console.print(
        f"\n[bold]3. unpaid call[/] GET {url}\n   -> {unpaid.status_code} "
        f"{unpaid.json()['error']}: pay {offer['amount']} atomic units "
        f"(${atomic_to_usd(int(offer['amount']))}) of {offer['asset']} on {offer['network']} "
        f"to {offer['payTo']}"
    )

    payer = chain.payers[0]
    before = {
        "payer": chain.balance(payer.address),
        "treasury": chain.balance(chain.treasury.address),
    }
    paid = pay_and_fetch(
        url, payer.private_key, int(offer["amount"]), allowed_assets=[(chain.network, chain.token)]
    )
    body = paid.response.json()
    console.print(
        f"\n[bold]4. paid call[/] signed by {payer.address} -> {paid.response.status_code}"
    )
    table = Table("city", "country", "population")
    for item in body["items"]:
        table.add_row(item["city"], item["country"], f"{item['population']:,}")
    console.print(table)

    settlement = paid.settlement
    assert settlement is not None and settlement.success
    receipt = chain.web3().eth.get_transaction_receipt(settlement.transaction)
    after = {
        "payer": chain.balance(payer.address),
        "treasury": chain.balance(chain.treasury.address),
    }
    console.print(
        f"[bold]5. settlement[/] tx {settlement.transaction} in block {receipt['blockNumber']} "
        f"on {settlement.network}\n"
        f"   payer    {atomic_to_usd(before['payer'])} -> {atomic_to_usd(after['payer'])} USDC\n"
        f"   treasury {atomic_to_usd(before['treasury'])} -> "
        f"{atomic_to_usd(after['treasury'])} USDC"
    )
    _show_earnings(stack, tenant.tenant_id)
    _demo_channel(stack, settings, url, int(offer["amount"]), tenant.tenant_id)


CHANNEL_CALLS = 100


def _demo_channel(stack: DevStack, settings: Any, url: str, price: int, tenant_id: str) -> None:
    """100 calls through one channel: one deposit, vouchers, one claim, one settle, a refund."""
    import asyncio

    from claw402.payments.channel_payer import CHANNELS_DIR, ChannelTerms, refund
    from claw402.payments.client import pay_many_async

    chain, payer = stack.chain, stack.chain.payers[-1]
    deposit = 2 * CHANNEL_CALLS * price  # room for 200 calls: half comes back at the end
    terms = ChannelTerms(settings.home / CHANNELS_DIR, deposit, deposit, chain.rpc_url)
    start, height = chain.balance(payer.address), chain.web3().eth.block_number
    paid = asyncio.run(
        pay_many_async(url, payer.private_key, price, CHANNEL_CALLS,
                       allowed_assets=[(chain.network, chain.token)], scheme="batch",
                       channels=terms)
    )  # fmt: skip
    receipts = [p.channel for p in paid if p.channel is not None]
    assert len(receipts) == CHANNEL_CALLS and all(p.response.status_code == 200 for p in paid)
    first, last = receipts[0], receipts[-1]
    deposit_tx = paid[0].settlement.transaction if paid[0].settlement else ""
    vouchers = sum(r.kind == "voucher" for r in receipts)
    console.print(
        f"\n[bold]7. a channel[/] (402claw call --scheme batch, {CHANNEL_CALLS} times) from "
        f"{payer.address}\n"
        f"   deposit ${atomic_to_usd(first.deposited)} in tx {deposit_tx}, then {vouchers} "
        f"vouchers: {chain.web3().eth.block_number - height} transaction(s) for "
        f"{CHANNEL_CALLS} calls\n"
        f"   {CHANNEL_CALLS} calls charged ${atomic_to_usd(last.charged_total)}, "
        f"${atomic_to_usd(last.remaining)} left in the channel"
    )
    claimed, settled = stack.channels.claim(), stack.channels.settle()
    for row in claimed.claims:
        console.print(
            f"[bold]8. claim[/] (402claw channels claim) {row['vouchers']} voucher(s) in tx "
            f"{row['transaction']}"
        )
    for row in settled.settles:
        console.print(f"   settle (402claw channels settle) tx {row['transaction']}")
    _show_earnings(stack, tenant_id, step=9)
    back = refund(url, payer.private_key, terms)
    console.print(
        f"[bold]10. refund[/] (402claw channels refund --url ...) ${atomic_to_usd(back.refunded)} "
        f"back in tx {back.transaction}\n"
        f"   payer {atomic_to_usd(start)} -> {atomic_to_usd(chain.balance(payer.address))} "
        f"USDC: {CHANNEL_CALLS} calls at ${atomic_to_usd(price)}"
    )


def _show_earnings(stack: DevStack, tenant_id: str, step: int = 6) -> None:
    """The creator's balance from the double-entry ledger (posted with the settlement)."""
    from claw402.ledger.balances import balance as ledger_balance

    b = ledger_balance(stack.registry.engine, tenant_id)
    console.print(
        f"[bold]{step}. creator balance[/] (402claw balance --tenant cities)\n"
        f"   earned ${atomic_to_usd(b.earned)}, platform fee ${atomic_to_usd(b.fees)} "
        f"({b.fee_bps / 100:g}%), pending withdrawals ${atomic_to_usd(b.pending)}, "
        f"available ${atomic_to_usd(b.available)}"
    )
