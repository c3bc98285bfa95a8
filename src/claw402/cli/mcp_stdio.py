"""`402claw mcp`: the gateway's tools for a desktop agent, over stdio, paid with your key."""

from __future__ import annotations

from typing import Annotated

import typer

from claw402.cli import devfile
from claw402.cli.options import Home
from claw402.cli.output import err_console, fail
from claw402.cli.pay import (
    DepositOption,
    KeyEnv,
    KeyFile,
    MaxDepositOption,
    RpcUrl,
    SchemeOption,
    payer_key,
    paying_terms,
    usd_option,
)


def mcp_command(
    gateway: Annotated[
        str,
        typer.Option(
            "--gateway",
            help="The gateway's URL, or a tenant's (`.../t/<slug>`); `/mcp` is added.",
        ),
    ],
    max_price: Annotated[str, typer.Option("--max-price", help="Most USD one call may cost.")] = (
        "0.01"
    ),
    max_total: Annotated[
        str, typer.Option("--max-total", help="Most USD this session may spend.")
    ] = "1.00",
    scheme: SchemeOption = "auto",
    deposit: DepositOption = None,
    max_deposit: MaxDepositOption = None,
    key_env: KeyEnv = "CLAW402_PAYER_KEY",
    key_file: KeyFile = None,
    rpc_url: RpcUrl = None,
    asset: Annotated[
        list[str] | None,
        typer.Option("--asset", help="Extra NETWORK=ADDRESS asset to pay in (local tokens)."),
    ] = None,
    home: Home = None,
) -> None:
    """Serve the gateway's MCP tools on stdin/stdout, paying within --max-price a call and
    --max-total a session, through a channel when the gateway offers one (stdout is the MCP
    channel: messages go to stderr)."""
    import anyio

    from claw402.mcp.stdio import SpendCap, serve_stdio

    cap = usd_option(max_price, "--max-price", False)
    total = usd_option(max_total, "--max-total", False)
    terms = paying_terms(scheme, cap, deposit, max_deposit, rpc_url, home, False)
    key = payer_key(key_env, key_file, False)
    assets = []
    for item in asset or []:
        network, _, address = item.partition("=")
        if not address:
            fail(f"--asset {item!r}: expected NETWORK=ADDRESS", code="invalid_argument")
        assets.append((network, address))
    dev = devfile.running(home)
    if dev is not None and (dev.network, dev.token) not in assets:
        assets.append((dev.network, dev.token))
    err_console.print(f"402claw mcp: relaying {gateway} on stdio, at most ${max_total} spent")
    anyio.run(
        lambda: serve_stdio(
            gateway,
            key,
            max_price_atomic=cap,
            cap=SpendCap(total),
            allowed_assets=assets,
            scheme=scheme,  # type: ignore[arg-type]
            channels=terms,
        )
    )
