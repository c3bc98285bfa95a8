"""`402claw call`: pay for an API call with the official x402 client."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from claw402.cli import devfile
from claw402.cli.options import Home, Json
from claw402.cli.output import emit_json, err_console, fail
from claw402.money import usd_to_atomic


def _private_key(key_env: str, key_file: Path | None) -> str | None:
    if key_file is not None:
        return key_file.read_text().strip()
    return os.environ.get(key_env, "").strip() or None


def call_command(
    url: Annotated[str, typer.Argument(help="The paid API URL.")],
    max_price: Annotated[str, typer.Option("--max-price", help="Most USD to pay.")] = "0.01",
    key_env: Annotated[
        str, typer.Option("--key-env", help="Env var holding the payer's private key.")
    ] = "CLAW402_PAYER_KEY",
    key_file: Annotated[
        Path | None, typer.Option("--key-file", help="File holding the payer's private key.")
    ] = None,
    asset: Annotated[
        list[str] | None,
        typer.Option(
            "--asset",
            help="Extra NETWORK=ADDRESS asset to pay in (local tokens); a `402claw dev` running "
            "with this home adds its token.",
        ),
    ] = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """GET a URL; on 402, pay with the wallet (never above --max-price) and print the answer."""
    from claw402.payments.client import (  # the x402 SDK: slow import
        AssetNotAllowed,
        PriceTooHigh,
        pay_and_fetch,
    )

    try:
        cap = usd_to_atomic(max_price, field="--max-price")
    except ValueError as exc:
        fail(str(exc), as_json=json, code="invalid_argument")
    key = _private_key(key_env, key_file)
    if key is None:
        fail(f"no payer key: set {key_env} or pass --key-file", as_json=json, code="no_key")
    assets = []
    for item in asset or []:
        network, _, address = item.partition("=")
        if not address:
            fail(
                f"--asset {item!r}: expected NETWORK=ADDRESS", as_json=json, code="invalid_argument"
            )
        assets.append((network, address))
    dev = devfile.running(home)
    if dev is not None and (dev.network, dev.token) not in assets:
        assets.append((dev.network, dev.token))
    try:
        result = pay_and_fetch(url, key, cap, allowed_assets=assets)
    except PriceTooHigh as exc:
        fail(str(exc), as_json=json, code="price_too_high")
    except AssetNotAllowed as exc:
        fail(str(exc), as_json=json, code="asset_not_allowed")
    except Exception as exc:
        fail(f"{type(exc).__name__}: {exc}", as_json=json, code="payment_failed")
    response = result.response
    settlement = result.settlement
    if json:
        try:
            body = response.json()
        except ValueError:
            body = response.text
        emit_json(
            {
                "ok": response.is_success,
                "status": response.status_code,
                "body": body,
                "settlement": settlement.model_dump(by_alias=True) if settlement else None,
            }
        )
    else:
        if settlement is not None:  # on stderr: stdout carries the data alone
            err_console.print(
                f"[green]paid[/] tx {settlement.transaction} on {settlement.network} "
                f"by {settlement.payer}",
                highlight=False,
                soft_wrap=True,
            )
        # The data as the API sent it, byte for byte (it may be piped to jq or a file).
        sys.stdout.flush()
        sys.stdout.buffer.write(response.content)
        if sys.stdout.isatty() and not response.content.endswith(b"\n"):
            sys.stdout.buffer.write(b"\n")  # the prompt starts on a line of its own
        sys.stdout.buffer.flush()
    if not response.is_success:
        raise typer.Exit(1)
