"""The payer's side of x402 `batch-settlement` channels: deposit once, sign a voucher per call.

The SDK's client scheme does the protocol; this module decides what it may spend and where it
remembers. A channel's state (the SDK's `BatchSettlementClientContext`, as its JSON) lives in
`<home>/channels/channels.sqlite3`, so the next `402claw call` in another process signs a
voucher instead of depositing again. SQLite rather than the SDK's file-per-channel storage:
the state is written on every call, and a WAL commit costs a small fraction of a temp-file
write and rename, with the same safety when a process dies.

A deposit never exceeds the caller's cap: the scheme asks the deposit strategy before
signing, and the strategy raises `DepositTooHigh` instead. With an RPC URL the signer can read
the escrow, so a payer whose local record is gone (refunded, another machine) resumes from the
chain's claimed total instead of signing a voucher the server refuses.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
from eth_account import Account
from x402.http.clients.httpx import PaymentError
from x402.http.utils import decode_payment_required_header
from x402.mechanisms.evm.batch_settlement.client import (
    BatchSettlementClientContext,
    BatchSettlementDepositStrategyContext,
    BatchSettlementEvmScheme,
    BatchSettlementEvmSchemeOptions,
)
from x402.mechanisms.evm.batch_settlement.constants import SCHEME_BATCH_SETTLEMENT
from x402.mechanisms.evm.batch_settlement.utils import compute_channel_id, normalize_channel_id
from x402.schemas import PaymentPayload, SettleResponse

from claw402.money import atomic_to_usd
from claw402.payments.voucher_signer import VoucherSigner, VoucherSignerWithRPC

CHANNELS_DIR = "channels"
DB_NAME = "channels.sqlite3"
DEFAULT_DEPOSIT_CALLS = 10  # a first deposit covers this many calls unless told otherwise


class DepositTooHigh(PaymentError):
    """The channel deposit this call needs is above the caller's cap; nothing was signed."""

    def __init__(self, deposit_atomic: int, max_deposit_atomic: int) -> None:
        super().__init__(
            f"opening this channel deposits ${atomic_to_usd(deposit_atomic)} "
            f"({deposit_atomic} atomic units), above the maximum deposit of "
            f"${atomic_to_usd(max_deposit_atomic)}: nothing was paid. Raise --max-deposit, "
            "lower --deposit, or pay per call with --scheme exact"
        )
        self.deposit_atomic = deposit_atomic
        self.max_deposit_atomic = max_deposit_atomic


@dataclass(frozen=True)
class ChannelTerms:
    """How a payer uses channels: where state lives, what a deposit may be, how to read chain."""

    directory: Path  # <home>/channels
    max_deposit_atomic: int
    deposit_atomic: int | None = None  # None: the server's minDeposit hint, else 10 calls
    rpc_url: str | None = None

    def __post_init__(self) -> None:
        if self.max_deposit_atomic < 0:
            raise ValueError("the maximum deposit must not be negative")
        if self.deposit_atomic is not None and self.deposit_atomic <= 0:
            raise ValueError("the deposit must be positive")
        if self.deposit_atomic is not None and self.deposit_atomic > self.max_deposit_atomic:
            raise DepositTooHigh(self.deposit_atomic, self.max_deposit_atomic)


@dataclass(frozen=True)
class ChannelReceipt:
    """What one channel payment did, in atomic units, as the payer's records now stand."""

    kind: Literal["deposit", "voucher"]
    channel_id: str
    deposited: int  # this call's deposit (0 for a voucher)
    charged: int  # this call's charge
    balance: int  # everything deposited into the channel
    charged_total: int  # everything charged through it

    @property
    def remaining(self) -> int:
        return self.balance - self.charged_total


class SqliteClientChannelStorage:
    """The SDK's `ClientChannelStorage` protocol on one SQLite file: channel id -> context."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout = 10000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS channels (id TEXT PRIMARY KEY, context TEXT NOT NULL)"
        )

    def get(self, key: str) -> BatchSettlementClientContext | None:
        with self._lock:
            row = self._db.execute(
                "SELECT context FROM channels WHERE id = ?", (normalize_channel_id(key),)
            ).fetchone()
        return None if row is None else BatchSettlementClientContext.from_dict(json.loads(row[0]))

    def set(self, key: str, context: BatchSettlementClientContext) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO channels (id, context) VALUES (?, ?) "
                "ON CONFLICT (id) DO UPDATE SET context = excluded.context",
                (normalize_channel_id(key), json.dumps(context.to_dict())),
            )

    def delete(self, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM channels WHERE id = ?", (normalize_channel_id(key),))

    def all(self) -> dict[str, BatchSettlementClientContext]:
        with self._lock:
            rows = self._db.execute("SELECT id, context FROM channels ORDER BY id").fetchall()
        return {id_: BatchSettlementClientContext.from_dict(json.loads(c)) for id_, c in rows}

    def close(self) -> None:
        self._db.close()


_stores: dict[Path, SqliteClientChannelStorage] = {}


def channel_storage(directory: Path) -> SqliteClientChannelStorage:
    """The storage of `directory` (one connection per folder and process)."""
    path = (directory / DB_NAME).resolve()
    if path not in _stores:
        _stores[path] = SqliteClientChannelStorage(path)
    return _stores[path]


def _deposit_strategy(terms: ChannelTerms) -> Any:
    def strategy(ctx: BatchSettlementDepositStrategyContext) -> str:
        wanted = terms.deposit_atomic
        if wanted is None:  # the SDK's pick: the server's minDeposit hint, else a multiple
            wanted = max(int(ctx.deposit_amount), DEFAULT_DEPOSIT_CALLS * int(ctx.request_amount))
            if wanted > terms.max_deposit_atomic:  # shrink to the cap, never below this call
                wanted = max(terms.max_deposit_atomic, int(ctx.minimum_deposit_amount))
        wanted = max(wanted, int(ctx.minimum_deposit_amount))
        if wanted > terms.max_deposit_atomic:
            raise DepositTooHigh(wanted, terms.max_deposit_atomic)
        return str(wanted)

    return strategy


def channel_scheme(private_key: str, terms: ChannelTerms) -> BatchSettlementEvmScheme:
    """The SDK's client scheme with our storage, deposit cap and (optional) chain reads."""
    account = Account.from_key(private_key)
    signer = VoucherSignerWithRPC(account, terms.rpc_url) if terms.rpc_url else None
    options = BatchSettlementEvmSchemeOptions(
        storage=channel_storage(terms.directory),
        deposit_strategy=_deposit_strategy(terms),
        rpc_url=terms.rpc_url,
    )
    return BatchSettlementEvmScheme(signer or VoucherSigner(account), options)


def channel_receipt(
    payload: PaymentPayload, settlement: SettleResponse, terms: ChannelTerms
) -> ChannelReceipt | None:
    """The receipt of a settled channel payment (None for any other payment)."""
    if payload.accepted.scheme != SCHEME_BATCH_SETTLEMENT or not settlement.success:
        return None
    raw = payload.payload
    channel_id = compute_channel_id(_config_of(raw), str(payload.accepted.network)).lower()
    state = channel_storage(terms.directory).get(channel_id)
    extra = settlement.extra or {}
    server_state = extra.get("channelState") if isinstance(extra.get("channelState"), dict) else {}
    balance = int((state.balance if state else None) or server_state.get("balance") or 0)
    charged_total = int(
        (state.charged_cumulative_amount if state else None)
        or server_state.get("chargedCumulativeAmount")
        or 0
    )
    is_deposit = raw.get("type") == "deposit"
    return ChannelReceipt(
        kind="deposit" if is_deposit else "voucher",
        channel_id=channel_id,
        deposited=int(raw["deposit"]["amount"]) if is_deposit else 0,
        charged=int(extra.get("chargedAmount") or payload.accepted.amount),
        balance=balance,
        charged_total=charged_total,
    )


def _config_of(raw: dict[str, Any]) -> Any:
    from x402.mechanisms.evm.batch_settlement.types import ChannelConfig

    return ChannelConfig.from_dict(raw["channelConfig"])


@dataclass(frozen=True)
class Refund:
    channel_id: str
    refunded: int  # atomic units back to the payer
    transaction: str
    network: str


class RefundFailed(RuntimeError):
    """The server did not refund the channel; the payer's records are unchanged."""


def refund(url: str, private_key: str, terms: ChannelTerms, timeout: float = 30.0) -> Refund:
    """Ask the server at `url` to return this payer's unspent deposit (the SDK's refund flow).

    The server claims what was charged and returns the rest in one transaction; the local
    record goes, so the next call opens the channel again with a new deposit.
    """
    scheme = channel_scheme(private_key, terms)
    requirements = _batch_offer(url, timeout)
    config = scheme.build_channel_config(requirements)
    channel_id = compute_channel_id(config, str(requirements.network)).lower()
    before = channel_storage(terms.directory).get(channel_id)
    try:
        settled = scheme.refund(url)
    except (RuntimeError, ValueError) as exc:
        raise RefundFailed(str(exc)) from exc
    if not settled.success:
        raise RefundFailed(f"refund failed: {settled.error_reason}")
    if settled.amount:
        refunded = int(settled.amount)
    elif before is not None and before.balance is not None:
        refunded = int(before.balance) - int(before.charged_cumulative_amount or 0)
    else:
        refunded = 0
    return Refund(channel_id, refunded, settled.transaction, str(settled.network))


def _batch_offer(url: str, timeout: float) -> Any:
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        raise RefundFailed(f"cannot reach {url}: {exc}") from exc
    header = response.headers.get("payment-required")
    if response.status_code != 402 or not header:
        raise RefundFailed(f"{url} answered {response.status_code}, not a 402 offer to pay")
    for accepted in decode_payment_required_header(header).accepts:
        if accepted.scheme == SCHEME_BATCH_SETTLEMENT:
            return accepted
    raise RefundFailed(f"{url} offers no {SCHEME_BATCH_SETTLEMENT} channel")
