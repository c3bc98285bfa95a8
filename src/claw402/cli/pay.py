"""`402claw call`: pay for an API call with the official x402 client, per call or through a
channel (one deposit, then a signed voucher per call; state in `<home>/channels/`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from claw402.cli import devfile
from claw402.cli.options import Home, Json
from claw402.cli.output import emit_json, err_console, fail
from claw402.config import resolve_home
from claw402.money import atomic_to_usd, usd_to_atomic

if TYPE_CHECKING:
    from claw402.payments.channel_payer import ChannelReceipt, ChannelTerms

KeyEnv = Annotated[str, typer.Option("--key-env", help="Env var holding the payer's private key.")]
KeyFile = Annotated[
    Path | None, typer.Option("--key-file", help="File holding the payer's private key.")
]
RpcUrl = Annotated[
    str | None,
    typer.Option(
        "--rpc-url",
        help="Chain RPC to read channels from (else CLAW402_RPC_URL, else a running "
        "`402claw dev`); lets a payer resume a channel whose local record is gone.",
        show_default=False,
    ),
]


def _private_key(key_env: str, key_file: Path | None) -> str | None:
    if key_file is not None:
        return key_file.read_text().strip()
    return os.environ.get(key_env, "").strip() or None


def payer_key(key_env: str, key_file: Path | None, as_json: bool) -> str:
    key = _private_key(key_env, key_file)
    if key is None:
        fail(f"no payer key: set {key_env} or pass --key-file", as_json=as_json, code="no_key")
    return key


def usd_option(value: str, flag: str, as_json: bool) -> int:
    try:
        return usd_to_atomic(value, field=flag)
    except ValueError as exc:
        fail(str(exc), as_json=as_json, code="invalid_argument")


def channel_terms(
    home: str | None,
    max_deposit: int,
    deposit: int | None,
    rpc_url: str | None,
    as_json: bool,
) -> ChannelTerms:
    """Where this home keeps channels, the deposit rules, and the RPC to read the escrow."""
    from claw402.payments.channel_payer import CHANNELS_DIR, ChannelTerms, DepositTooHigh

    if rpc_url is None:
        dev = devfile.running(home)
        rpc_url = os.environ.get("CLAW402_RPC_URL") or (dev.rpc_url if dev else None)
    try:
        return ChannelTerms(resolve_home(home) / CHANNELS_DIR, max_deposit, deposit, rpc_url)
    except DepositTooHigh as exc:
        fail(str(exc), as_json=as_json, code="deposit_too_high")


SchemeOption = Annotated[
    str,
    typer.Option(
        "--scheme",
        help="auto: through a channel when the API offers one, else per call; exact: "
        "per call; batch: through a channel only.",
    ),
]
DepositOption = Annotated[
    str | None,
    typer.Option(
        "--deposit",
        help="USD to deposit when a channel opens or runs dry (default: the API's "
        "minimum deposit, else 10 calls; never above --max-deposit).",
        show_default=False,
    ),
]
MaxDepositOption = Annotated[
    str | None,
    typer.Option(
        "--max-deposit",
        help="Most USD one channel deposit may take [default: 10 x --max-price]; a larger "
        "deposit is refused before anything is signed.",
        show_default=False,
    ),
]


def paying_terms(
    scheme: str,
    max_price_atomic: int,
    deposit: str | None,
    max_deposit: str | None,
    rpc_url: str | None,
    home: str | None,
    as_json: bool,
) -> ChannelTerms:
    """`--scheme`, `--deposit` and `--max-deposit` checked, as the channel terms they make."""
    if scheme not in ("auto", "exact", "batch"):
        fail(f"--scheme {scheme!r}: auto, exact or batch", as_json=as_json, code="invalid_argument")
    deposit_cap = (
        10 * max_price_atomic
        if max_deposit is None
        else usd_option(max_deposit, "--max-deposit", as_json)
    )
    wanted = None if deposit is None else usd_option(deposit, "--deposit", as_json)
    if wanted == 0:
        fail("--deposit must be more than 0", as_json=as_json, code="invalid_argument")
    return channel_terms(home, deposit_cap, wanted, rpc_url, as_json)


def _receipt_line(receipt: ChannelReceipt) -> str:
    if receipt.kind == "deposit":
        how = f"[green]deposit[/] ${atomic_to_usd(receipt.deposited)} into channel"
    else:
        how = "[green]voucher[/] on channel"
    return (
        f"{how} {receipt.channel_id[:10]}…: charged ${atomic_to_usd(receipt.charged)}, "
        f"${atomic_to_usd(receipt.remaining)} left of ${atomic_to_usd(receipt.balance)} deposited"
    )


def call_command(
    url: Annotated[str, typer.Argument(help="The paid API URL.")],
    max_price: Annotated[str, typer.Option("--max-price", help="Most USD to pay.")] = "0.01",
    scheme: SchemeOption = "auto",
    deposit: DepositOption = None,
    max_deposit: MaxDepositOption = None,
    key_env: KeyEnv = "CLAW402_PAYER_KEY",
    key_file: KeyFile = None,
    rpc_url: RpcUrl = None,
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
        DepositTooHigh,
        PriceTooHigh,
        pay_and_fetch,
    )

    cap = usd_option(max_price, "--max-price", json)
    terms = paying_terms(scheme, cap, deposit, max_deposit, rpc_url, home, json)
    key = payer_key(key_env, key_file, json)
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
        result = pay_and_fetch(
            url,
            key,
            cap,
            allowed_assets=assets,
            scheme=scheme,
            channels=terms,  # type: ignore[arg-type]
        )
    except PriceTooHigh as exc:
        fail(str(exc), as_json=json, code="price_too_high")
    except DepositTooHigh as exc:
        fail(str(exc), as_json=json, code="deposit_too_high")
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
                "channel": _receipt_json(result.channel),
            }
        )
    else:
        if result.channel is not None:  # on stderr: stdout carries the data alone
            err_console.print(_receipt_line(result.channel), highlight=False, soft_wrap=True)
        elif settlement is not None:
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


def _receipt_json(receipt: ChannelReceipt | None) -> dict[str, object] | None:
    if receipt is None:
        return None
    return {
        "kind": receipt.kind,
        "channelId": receipt.channel_id,
        "deposited": str(receipt.deposited),
        "charged": str(receipt.charged),
        "balance": str(receipt.balance),
        "chargedTotal": str(receipt.charged_total),
        "remaining": str(receipt.remaining),
    }
