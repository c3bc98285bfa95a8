"""`402claw channels ...`: x402 `batch-settlement` channels. The payer's side here: `refund`
gets the unspent deposit of this wallet's channel with an API back (the SDK's refund flow)."""

from __future__ import annotations

from typing import Annotated

import typer

from claw402.cli.options import Home, Json
from claw402.cli.output import console, emit_json, fail
from claw402.cli.pay import KeyEnv, KeyFile, RpcUrl, channel_terms, payer_key
from claw402.money import atomic_to_usd

app = typer.Typer(help="Payment channels (x402 batch-settlement).", no_args_is_help=True)


@app.command("refund")
def refund_command(
    url: Annotated[str, typer.Option("--url", help="A paid URL of the API the channel pays.")],
    key_env: KeyEnv = "CLAW402_PAYER_KEY",
    key_file: KeyFile = None,
    rpc_url: RpcUrl = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Payer: get this wallet's unspent deposit back from the API at --url (the server claims
    what was charged and returns the rest in one transaction; the next call deposits anew)."""
    from claw402.payments.channel_payer import RefundFailed, refund  # the x402 SDK: slow import

    key = payer_key(key_env, key_file, json)
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
