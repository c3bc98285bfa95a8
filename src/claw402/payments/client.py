"""Pay for a call with the official x402 client, never above a price the caller chose.

`pay_and_fetch` is what `402claw call URL [--max-price USD]` runs: `x402Client` +
`ExactEvmClientScheme` + `x402HttpxClient`. The SDK only pays in assets it knows (USDC on
public networks) unless told otherwise, so a local chain's token is allowed explicitly
through `set_spend_controls`. The price cap is a payment policy: when every offer costs more
than `max_price_atomic`, `PriceTooHigh` says what the call costs, and nothing is signed. When
every offer is in an asset the caller did not allow (a local chain's token), `AssetNotAllowed`
names each one and the `--asset` that would allow it, and nothing is signed.

With `ChannelTerms` the client also holds the SDK's `batch-settlement` scheme (see
`channel_payer`): `scheme="auto"` pays through a channel when the server offers one and per
call (`exact`) otherwise; `"exact"` and `"batch"` pay only that way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, TypedDict, Unpack

import httpx
from eth_account import Account
from x402 import NoMatchingRequirementsError, x402Client
from x402.client_base import PaymentPolicy, RequirementsView
from x402.http.clients import x402HttpxClient
from x402.http.clients.httpx import PaymentError
from x402.http.utils import decode_payment_required_header, decode_payment_response_header
from x402.mechanisms.evm.exact import ExactEvmClientScheme
from x402.schemas import PaymentCreatedContext, PaymentPayload, SettleResponse

from claw402.money import atomic_to_usd
from claw402.payments.channel_payer import (
    ChannelReceipt,
    ChannelTerms,
    DepositTooHigh,
    channel_receipt,
    channel_scheme,
)

__all__ = [
    "AssetNotAllowed",
    "DepositTooHigh",
    "PaidCall",
    "PriceTooHigh",
    "pay_and_fetch",
    "pay_many_async",
]

Scheme = Literal["auto", "exact", "batch"]
SCHEMES: dict[str, str] = {"exact": "exact", "batch": "batch-settlement"}


class PriceTooHigh(PaymentError):
    """Every payment option costs more than the caller's maximum; nothing was signed."""

    def __init__(self, price_atomic: int, max_price_atomic: int) -> None:
        super().__init__(
            f"this call costs ${atomic_to_usd(price_atomic)} ({price_atomic} atomic units), "
            f"above the maximum of ${atomic_to_usd(max_price_atomic)}: nothing was paid"
        )
        self.price_atomic = price_atomic
        self.max_price_atomic = max_price_atomic


class AssetNotAllowed(PaymentError):
    """Every payment option is in an asset the caller did not allow; nothing was signed."""

    def __init__(self, offers: list[tuple[str, str, str]]) -> None:
        asked = "; ".join(f"{amount} atomic units of {asset} on {net}" for net, asset, amount
                          in offers)  # fmt: skip
        allow = " ".join(f"--asset {net}={asset}" for net, asset, _ in offers)
        super().__init__(
            f"this API asks to be paid in a token this wallet does not allow ({asked}): "
            f"nothing was paid. If you trust that token, allow it with {allow}"
        )
        self.offers = offers  # (network, asset, amount in atomic units)


@dataclass(frozen=True)
class PaidCall:
    response: httpx.Response
    settlement: SettleResponse | None  # the decoded PAYMENT-RESPONSE, when the call was paid
    channel: ChannelReceipt | None = None  # what a channel payment did

    @property
    def paid(self) -> bool:
        return self.settlement is not None and self.settlement.success


def _price_cap(max_price_atomic: int) -> PaymentPolicy:
    """A payment policy keeping offers at or under the cap, or raising `PriceTooHigh`."""

    def policy(version: int, requirements: list[RequirementsView]) -> list[RequirementsView]:
        kept = [r for r in requirements if int(r.get_amount()) <= max_price_atomic]
        if not kept and requirements:
            cheapest = min(int(r.get_amount()) for r in requirements)
            raise PriceTooHigh(cheapest, max_price_atomic)
        return kept

    return policy


def _scheme_choice(scheme: Scheme) -> PaymentPolicy:
    """Keep the offers of the chosen scheme; `auto` puts channels first (the SDK takes the
    first offer left)."""

    def policy(version: int, requirements: list[RequirementsView]) -> list[RequirementsView]:
        if scheme != "auto":
            return [r for r in requirements if r.scheme == SCHEMES[scheme]]
        return sorted(requirements, key=lambda r: r.scheme != SCHEMES["batch"])

    return policy


def payment_client(
    private_key: str,
    max_price_atomic: int,
    allowed_assets: Iterable[tuple[str, str]] = (),
    *,
    scheme: Scheme = "auto",
    channels: ChannelTerms | None = None,
) -> x402Client:
    """An `x402Client` that signs EVM payments up to `max_price_atomic` per call.

    `allowed_assets` lists `(network, asset_address)` pairs to pay in besides the SDK's
    default USDC (e.g. the local chain's token). Channels need `channels` (where their state
    lives, the deposit cap); without it only `exact` is signed.
    """
    if max_price_atomic < 0:
        raise ValueError("max_price_atomic must not be negative")
    if scheme not in ("auto", *SCHEMES):
        raise ValueError(f"unknown scheme {scheme!r}: auto, exact or batch")
    if scheme == "batch" and channels is None:
        raise ValueError("paying through channels needs ChannelTerms")
    client = x402Client()
    if scheme != "batch":
        client.register("eip155:*", ExactEvmClientScheme(Account.from_key(private_key)))
    if scheme != "exact" and channels is not None:
        client.register("eip155:*", channel_scheme(private_key, channels))
    client.set_spend_controls(
        {
            "allowed_assets": [
                {"network": network, "asset": asset} for network, asset in allowed_assets
            ],
            "max_amount_per_payment": False,  # the policy below caps every asset
        }
    )
    client.register_policy(_price_cap(max_price_atomic))
    client.register_policy(_scheme_choice(scheme))
    return client


class PayOptions(TypedDict, total=False):
    """`pay_many_async`'s keyword options, shared by the one-call forms (defaults there)."""

    allowed_assets: Iterable[tuple[str, str]]
    method: str
    headers: Mapping[str, str] | None
    timeout: float
    scheme: Scheme
    channels: ChannelTerms | None


async def pay_and_fetch_async(
    url: str, private_key: str, max_price_atomic: int, **options: Unpack[PayOptions]
) -> PaidCall:
    """Request `url`; on a 402, pay (at most `max_price_atomic`) and return the paid answer.

    Raises `PriceTooHigh` when the call costs more, `DepositTooHigh` when a channel would
    need a larger deposit than allowed, and the SDK's `PaymentError` when it cannot pay (no
    matching network or asset, a signing failure).
    """
    (paid,) = await pay_many_async(url, private_key, max_price_atomic, 1, **options)
    return paid


async def pay_many_async(
    url: str,
    private_key: str,
    max_price_atomic: int,
    calls: int,
    *,
    allowed_assets: Iterable[tuple[str, str]] = (),
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    scheme: Scheme = "auto",
    channels: ChannelTerms | None = None,
) -> list[PaidCall]:
    """`calls` paid requests to `url` one after another on one connection and one client (a
    channel's first call deposits, the rest sign vouchers); stops at the first failed answer.
    Raises as `pay_and_fetch_async`."""
    client = payment_client(
        private_key, max_price_atomic, allowed_assets, scheme=scheme, channels=channels
    )
    signed: list[PaymentPayload] = []

    def remember(ctx: PaymentCreatedContext) -> None:
        if isinstance(ctx.payment_payload, PaymentPayload):
            signed.append(ctx.payment_payload)

    client.on_after_payment_creation(remember)
    done: list[PaidCall] = []
    try:
        async with x402HttpxClient(client, timeout=timeout) as http:
            for _ in range(calls):
                signed.clear()
                response = await http.request(method, url, headers=dict(headers or {}))
                done.append(_paid_call(response, signed, channels))
                if not response.is_success:
                    break
    except PaymentError as exc:
        # The SDK applies its asset allow-list before any policy or hook sees the offer, and
        # says only that everything was refused: read the (free) 402 again to say what it was.
        # (With no per-asset cap set, spend controls refuse an offer only for its asset.)
        cause = exc.__cause__
        if (
            isinstance(cause, NoMatchingRequirementsError)
            and "spend_controls" in str(cause)
            and method in ("GET", "HEAD")  # safe to ask again
        ):
            offers = await _offers(url, method, headers, min(timeout, 10.0))
            if offers:
                raise AssetNotAllowed(offers) from exc
        raise
    return done


def _paid_call(
    response: httpx.Response, signed: list[PaymentPayload], channels: ChannelTerms | None
) -> PaidCall:
    receipt = response.headers.get("payment-response") or response.headers.get("x-payment-response")
    settlement = decode_payment_response_header(receipt) if receipt else None
    channel = None
    if settlement is not None and signed and channels is not None:
        channel = channel_receipt(signed[-1], settlement, channels)
    return PaidCall(response, settlement, channel)


async def _offers(
    url: str, method: str, headers: Mapping[str, str] | None, timeout: float
) -> list[tuple[str, str, str]]:
    """(network, asset, amount) of each offer of the 402 at `url` this client can pay (EVM
    `exact` or a channel), v2 else v1; none when it cannot be read, so that the SDK's own
    error stands."""
    try:
        async with httpx.AsyncClient(timeout=timeout) as http:
            response = await http.request(method, url, headers=dict(headers or {}))
        if response.status_code != 402:
            return []
        header = response.headers.get("payment-required")
        if header:
            accepts = decode_payment_required_header(header).accepts
            found = [(a.scheme, a.network, a.asset, a.amount) for a in accepts]
        else:
            found = [(a["scheme"], a["network"], a["asset"], str(a["maxAmountRequired"]))
                     for a in response.json().get("accepts") or []]  # fmt: skip
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
        return []
    offers = [(net, asset, amount) for scheme, net, asset, amount in found
              if scheme in SCHEMES.values() and net.startswith("eip155:")]  # fmt: skip
    return list(dict.fromkeys(offers))


def pay_and_fetch(
    url: str, private_key: str, max_price_atomic: int, **options: Unpack[PayOptions]
) -> PaidCall:
    """Synchronous `pay_and_fetch_async`, for the CLI and scripts."""
    return asyncio.run(pay_and_fetch_async(url, private_key, max_price_atomic, **options))
