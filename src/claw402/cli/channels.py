"""`402claw channels ...`: the batch-settlement channels callers opened with this platform.

`list` reads the shared channel storage; `claim`, `settle` and `refund` do by hand what the
channel manager inside `402claw serve` does on its own (see `payments.channels.manager`).
`refund --url` is the payer's side: this wallet's unspent deposit back from that API.
The payment settings come from the `CLAW402_*` variables, else from a running `402claw dev`
in the same home.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from claw402.cli.auth import ApiKey
from claw402.cli.options import Home, Json, session
from claw402.cli.output import console, emit_json, err_console, fail
from claw402.cli.pay import KeyEnv, KeyFile, RpcUrl, channel_terms, payer_key
from claw402.money import atomic_to_usd

if TYPE_CHECKING:
    from claw402.payments.channels.manager import Round
    from claw402.payments.config import PaymentConfig

app = typer.Typer(
    help="Batch-settlement channels: list, claim, settle, refund.", no_args_is_help=True
)


def _config(home: str | None, json: bool) -> PaymentConfig:
    from claw402.cli import devfile
    from claw402.payments.config import PaymentConfig, PaymentConfigError, payment_config_from_env

    try:
        config = payment_config_from_env(os.environ)
    except PaymentConfigError as exc:
        fail(str(exc), as_json=json, code="payments_not_configured")
    if config is not None:
        return config
    dev = devfile.running(home)
    if dev is None:
        fail(
            "no payment network: set CLAW402_ENV and its variables, or run `402claw dev` "
            "with this home",
            as_json=json,
            code="payments_not_configured",
        )
    from claw402.chain.token import DEFAULT_NAME, DEFAULT_VERSION

    return PaymentConfig(
        network=dev.network,
        asset=dev.token,
        asset_name=DEFAULT_NAME,
        asset_version=DEFAULT_VERSION,
        facilitator_url=dev.facilitator_url,
        treasury=dev.treasury,
        rpc_url=dev.rpc_url,
    )


def _report(done: Round, json: bool, what: str) -> None:
    if json:
        emit_json(
            {
                "ok": not done.errors,
                "claims": done.claims,
                "settles": done.settles,
                "refunds": done.refunds,
                "booked": done.booked,
                "errors": done.errors,
            }
        )
    else:
        rows = done.claims + done.settles + done.refunds
        for row in rows:
            console.print(", ".join(f"{k} {v}" for k, v in row.items()), highlight=False)
        if not rows:
            console.print(f"nothing to {what}")
        if done.booked:
            console.print(f"{done.booked} claim(s) booked")
        for error in done.errors:
            err_console.print(f"[bold red]error:[/] {error}", highlight=False)
    if done.errors:
        raise typer.Exit(1)


@app.command("list")
def list_command(
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Every channel: payer, receiver, deposit, charged, claimed, state."""
    from rich.table import Table

    from claw402.control import channels as ops

    with session(home, json) as (_, registry):
        channels = ops.listing(registry.engine, api_key)
    if json:
        emit_json({"ok": True, "channels": channels})
        return
    if not channels:
        console.print("no channels yet: a caller opens one with its first batch-settlement call")
        return
    table = Table(title="channels (atomic units)")
    for name in ("channel", "payer", "receiver", "balance", "charged", "claimed", "state"):
        table.add_column(name)
    for ch in channels:
        table.add_row(
            ch["channel"][:18] + "…",
            ch["payer"],
            ch["receiver"],
            ch["balance"],
            ch["charged"],
            ch["claimed"],
            ch["state"],
        )
    console.print(table)


@app.command("claim")
def claim_command(api_key: ApiKey = None, home: Home = None, json: Json = False) -> None:
    """Claim every channel's unclaimed vouchers now and book the claims."""
    from claw402.control import channels as ops

    with session(home, json) as (_, registry):
        done = ops.claim(registry.engine, api_key, _config(home, json))
    _report(done, json, "claim")


@app.command("settle")
def settle_command(api_key: ApiKey = None, home: Home = None, json: Json = False) -> None:
    """Move what was claimed from the escrow to each receiver (then `402claw reconcile`)."""
    from claw402.control import channels as ops

    with session(home, json) as (_, registry):
        done = ops.settle(registry.engine, api_key, _config(home, json))
    _report(done, json, "settle")


@app.command("refund")
def refund_command(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Payer: a paid URL of the API; this wallet's unspent deposit comes back.",
            show_default=False,
        ),
    ] = None,
    channel: Annotated[
        list[str] | None, typer.Option("--channel", help="Only this channel id (repeat).")
    ] = None,
    key_env: KeyEnv = "CLAW402_PAYER_KEY",
    key_file: KeyFile = None,
    rpc_url: RpcUrl = None,
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Return the unspent deposit of channels to their payers (what was spent is claimed).

    With --url, the payer's side: ask that API to refund this wallet's channel (the SDK's
    refund flow); the next call deposits anew.
    """
    if url is not None:
        if channel:
            fail("--url (payer) and --channel (operator) do not go together", as_json=json,
                 code="invalid_argument")  # fmt: skip
        _payer_refund(url, payer_key(key_env, key_file, json), rpc_url, home, json)
        return
    from claw402.control import channels as ops

    with session(home, json) as (_, registry):
        done = ops.refund(registry.engine, api_key, _config(home, json), channel)
    _report(done, json, "refund")


def _payer_refund(url: str, key: str, rpc_url: str | None, home: str | None, json: bool) -> None:
    from claw402.payments.channel_payer import RefundFailed, refund  # the x402 SDK: slow import

    terms = channel_terms(home, 0, None, rpc_url, json)
    try:
        done = refund(url, key, terms)
    except RefundFailed as exc:
        fail(str(exc), as_json=json, code="refund_failed")
    if json:
        emit_json(
            {
                "ok": True,
                "channelId": done.channel_id,
                "refunded": str(done.refunded),
                "transaction": done.transaction,
                "network": done.network,
            }
        )
        return
    console.print(
        f"[green]refunded[/] ${atomic_to_usd(done.refunded)} from channel {done.channel_id} "
        f"in tx {done.transaction} on {done.network}",
        highlight=False,
        soft_wrap=True,
    )
