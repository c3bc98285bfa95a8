"""`SqlChannelStorage`: the x402 SDK's batch-settlement `ChannelStorage` on the registry DB.

The SDK's in-memory and file storages serialize `update_channel` with locks that only one
process sees. Here every update is an optimistic compare-and-swap on the row's `version`:
read the row, run the callback outside any transaction (it may be slow, and holds no lock),
then write only `WHERE version = <read version>` (or insert, which loses to a concurrent
insert on the primary key). A lost race re-reads and re-runs the callback, so two gateway
processes on one PostgreSQL or one SQLite file never lose an update, and the SDK's
`pending_request` reservation admits exactly one request per channel.

A new row's version starts at a random number, so a channel deleted and created again
between our read and our write cannot be mistaken for the row we read (no ABA).

A voucher's commit and its booking in the ledger are one transaction: `booking(hook)` makes
the `update_channel` calls of this thread (the SDK's commit, inside `settle_payment`) run
`hook(conn, before, after)` in the compare-and-swap's own transaction, and `swap` is the
same compare-and-swap inside a caller's transaction (the voucher lane's group commit). So a
crash or a failed booking never leaves a voucher accepted but unbooked, nor the reverse.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Executable,
    Select,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from x402.mechanisms.evm.batch_settlement.server.storage import (
    Channel,
    ChannelUpdate,
    ChannelUpdateResult,
    PendingRequest,
)
from x402.mechanisms.evm.batch_settlement.types import ChannelConfig
from x402.mechanisms.evm.batch_settlement.utils import normalize_channel_id

from claw402.clock import now as _now
from claw402.payments.channels.schema import (
    SQLITE_INT_MAX,
    UINT,
    UINT256_MAX,
    payment_channels,
)

__all__ = ["BookingHook", "ChannelUpdateConflict", "SqlChannelStorage", "channels_query"]

# Called in the transaction of a write that changed the channel: (conn, before, after).
BookingHook = Callable[[Connection, Channel | None, Channel], None]
_BOOKING: ContextVar[BookingHook | None] = ContextVar("claw402_channel_booking", default=None)

_C = payment_channels.c
_INT64_MAX = 2**63 - 1
_FIRST_VERSION_MAX = 2**62  # room to count up from any random start


class ChannelUpdateConflict(RuntimeError):
    """`update_channel` lost the compare-and-swap `max_attempts` times in a row."""


def _int_field(channel_id: str, name: str, value: object, *, nullable: bool = False) -> int | None:
    if value is None and nullable:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _INT64_MAX:
        raise ValueError(
            f"channel {channel_id}: {name} must be an integer in [0, 2**63), got {value!r}"
        )
    return value


def _amount(channel_id: str, name: str, value: object, most: int) -> str:
    if not isinstance(value, str) or not UINT.match(value):
        raise ValueError(
            f"channel {channel_id}: {name} must be a decimal uint string, got {value!r}"
        )
    if int(value) > most:
        hint = "; SQLite holds 64-bit integers, use PostgreSQL" if most < UINT256_MAX else ""
        raise ValueError(f"channel {channel_id}: {name} {value} is too large{hint}")
    return value


def _row_values(key: str, channel: Channel, most: int) -> dict[str, Any]:
    """The columns for `channel`; a ValueError names the first bad field (nothing is written).

    `most` is the largest amount the backend stores exactly.
    """
    if not isinstance(channel, Channel):
        raise ValueError(
            f"channel {key}: the update returned {type(channel).__name__}, not a Channel"
        )
    try:
        same = normalize_channel_id(channel.channel_id) == key
    except (ValueError, TypeError):
        same = False
    if not same:
        raise ValueError(f"channel {key}: the update returned channel {channel.channel_id!r}")
    config = channel.channel_config
    if not isinstance(config, ChannelConfig):
        raise ValueError(f"channel {key}: channel_config must be a ChannelConfig")
    if not isinstance(channel.signature, str):
        raise ValueError(f"channel {key}: signature must be a string")
    pending = channel.pending_request
    if pending is not None and not isinstance(pending.pending_id, str):
        raise ValueError(f"channel {key}: pending_request.pending_id must be a string")

    def amount(name: str, value: object) -> str:
        return _amount(key, name, value, most)

    return {
        "channel_id": key,
        "payer": str(config.payer).lower(),
        "receiver": str(config.receiver).lower(),
        "token": str(config.token).lower(),
        "config": config.to_dict(),
        "charged_cumulative_amount": amount(
            "charged_cumulative_amount", channel.charged_cumulative_amount
        ),
        "signed_max_claimable": amount("signed_max_claimable", channel.signed_max_claimable),
        "signature": channel.signature,
        "balance": amount("balance", channel.balance),
        "total_claimed": amount("total_claimed", channel.total_claimed),
        "withdraw_requested_at": _int_field(
            key, "withdraw_requested_at", channel.withdraw_requested_at
        ),
        "refund_nonce": _int_field(key, "refund_nonce", channel.refund_nonce),
        "onchain_synced_at": _int_field(
            key, "onchain_synced_at", channel.onchain_synced_at, nullable=True
        ),
        "last_request_timestamp": _int_field(
            key, "last_request_timestamp", channel.last_request_timestamp
        ),
        "pending_id": pending.pending_id if pending else None,
        "pending_signed_max_claimable": amount(
            "pending_request.signed_max_claimable", pending.signed_max_claimable
        )
        if pending
        else None,
        "pending_expires_at": _int_field(key, "pending_expires_at", pending.expires_at)
        if pending
        else None,
    }


def _channel(row: Mapping[str, Any]) -> Channel:
    pending = None
    if row["pending_id"] is not None:
        pending = PendingRequest(
            pending_id=row["pending_id"],
            signed_max_claimable=row["pending_signed_max_claimable"],
            expires_at=row["pending_expires_at"],
        )
    return Channel(
        channel_id=row["channel_id"],
        channel_config=ChannelConfig.from_dict(row["config"]),
        charged_cumulative_amount=row["charged_cumulative_amount"],
        signed_max_claimable=row["signed_max_claimable"],
        signature=row["signature"],
        balance=row["balance"],
        total_claimed=row["total_claimed"],
        withdraw_requested_at=row["withdraw_requested_at"],
        refund_nonce=row["refund_nonce"],
        onchain_synced_at=row["onchain_synced_at"],
        last_request_timestamp=row["last_request_timestamp"],
        pending_request=pending,
    )


def channels_query(
    *, receiver: str | None = None, payer: str | None = None, token: str | None = None
) -> Select[Any]:
    """The SELECT behind `list()` and `channels_of()`: served by the receiver or payer index."""
    query = select(payment_channels).order_by(_C.channel_id)
    if receiver:
        query = query.where(_C.receiver == receiver.lower())
    if payer:
        query = query.where(_C.payer == payer.lower())
    if token:
        query = query.where(_C.token == token.lower())
    return query


class SqlChannelStorage:
    """Channels in `payment_channels`, shared by every process on the same database.

    `receiver` (and `token`) scope `list()`, which the SDK's channel manager calls to find the
    channels to claim, refund or watch: give the scheme's receiver, so a manager never sees
    another receiver's channels in a multi-tenant database. `get` and `update_channel` address
    one channel by id (unique, bound to its config) and are not scoped.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        receiver: str | None = None,
        token: str | None = None,
        max_attempts: int = 100,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.engine = engine
        self.receiver = receiver.lower() if receiver else None
        self.token = token.lower() if token else None
        self.max_attempts = max_attempts
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.lost_races = 0  # compare-and-swaps lost since creation (a contention gauge)
        self._lost_lock = threading.Lock()
        self._amount_max = SQLITE_INT_MAX if engine.dialect.name == "sqlite" else UINT256_MAX

    # -- reads -------------------------------------------------------------------------------

    def get(self, channel_id: str) -> Channel | None:
        found = self.read(channel_id)
        return found[0] if found is not None else None

    def read(self, channel_id: str) -> tuple[Channel, int] | None:
        """The channel and its row version (what `swap` compares), or None."""
        key = normalize_channel_id(channel_id)
        with self._autocommit.connect() as conn:
            row = conn.execute(_SELECT_ONE, {"_key": key}).mappings().first()
        return (_channel(row), row["version"]) if row is not None else None

    def list(self) -> list[Channel]:
        """This storage's channels (its receiver's, if scoped) in channel-id order."""
        return self.channels_of(receiver=self.receiver, token=self.token)

    def channels_of(
        self, *, receiver: str | None = None, payer: str | None = None, token: str | None = None
    ) -> list[Channel]:
        """Channels matching every filter given (addresses in any case), in channel-id order."""
        query = channels_query(receiver=receiver, payer=payer, token=token)
        with self._autocommit.connect() as conn:  # one statement: no transaction to end
            return [_channel(row) for row in conn.execute(query).mappings()]

    # -- the compare-and-swap ----------------------------------------------------------------

    @contextmanager
    def booking(self, hook: BookingHook) -> Iterator[None]:
        """Within this block (this thread or task), a write that stores a channel also runs
        `hook` in its transaction; if the hook raises, the write is rolled back."""
        token = _BOOKING.set(hook)
        try:
            yield
        finally:
            _BOOKING.reset(token)

    def swap(self, conn: Connection, channel: Channel, version: int) -> bool:
        """Store `channel` over the row at `version`, in the caller's transaction: False (and
        nothing written) if the row is no longer at that version."""
        key = normalize_channel_id(channel.channel_id)
        values = _row_values(key, channel, self._amount_max)
        values["updated_at"] = _now()
        values["version"] = version + 1
        return _write(conn, _UPDATE, {**values, "_key": key, "_version": version})

    def store_vouchers(self, conn: Connection, accepted: Sequence[tuple[Channel, int]]) -> bool:
        """Store accepted vouchers, each `(channel, version)` over its row at `version`, in the
        caller's transaction and one statement: True if every row was still at its version,
        else False, and the caller must roll back (some rows may have been written).

        Only a voucher's columns are written (charged and signed amounts, signature, last
        request, the reservation cleared): the row's version proves the rest is as read."""
        moment, rows = _now(), []
        for channel, version in accepted:
            key = normalize_channel_id(channel.channel_id)
            if not isinstance(channel.signature, str):
                raise ValueError(f"channel {key}: signature must be a string")
            most = self._amount_max
            rows.append({
                "_key": key,
                "_version": version,
                "version": version + 1,
                "charged_cumulative_amount": _amount(
                    key, "charged_cumulative_amount", channel.charged_cumulative_amount, most
                ),
                "signed_max_claimable": _amount(
                    key, "signed_max_claimable", channel.signed_max_claimable, most
                ),
                "signature": channel.signature,
                "last_request_timestamp": _int_field(
                    key, "last_request_timestamp", channel.last_request_timestamp
                ),
                "updated_at": moment,
            })  # fmt: skip
        if not rows:
            return True
        done = conn.execute(_STORE_VOUCHER, rows if len(rows) > 1 else rows[0])
        return done.rowcount == len(rows)

    def update_channel(self, channel_id: str, update: ChannelUpdate) -> ChannelUpdateResult:
        """Apply `update` atomically: `updated`, `unchanged` or `deleted`, as the SDK's storages.

        Raises ValueError for a bad id or a channel that cannot be stored (nothing written),
        and ChannelUpdateConflict after `max_attempts` lost races.
        """
        key = normalize_channel_id(channel_id)
        # one connection for every attempt, in autocommit: each write is one statement, atomic
        # on its own, and between statements the connection holds no transaction or lock
        with self._autocommit.connect() as conn:
            for attempt in range(self.max_attempts):
                if attempt:
                    with self._lost_lock:
                        self.lost_races += 1
                    _back_off(attempt)
                row = conn.execute(_SELECT_ONE, {"_key": key}).mappings().first()
                current = _channel(row) if row is not None else None
                next_ch = update(current)
                if next_ch is current:
                    return ChannelUpdateResult(channel=current, status="unchanged")
                if next_ch is None:
                    if row is None:
                        return ChannelUpdateResult(channel=None, status="unchanged")
                    if _write(conn, _DELETE, {"_key": key, "_version": row["version"]}):
                        return ChannelUpdateResult(channel=None, status="deleted")
                    continue
                values = _row_values(key, next_ch, self._amount_max)
                values["updated_at"] = _now()
                if row is None:
                    values["created_at"] = values["updated_at"]
                    values["version"] = random.randint(1, _FIRST_VERSION_MAX)
                    statement, params = _INSERT, values
                else:
                    values["version"] = row["version"] + 1
                    params = {**values, "_key": key, "_version": row["version"]}
                    statement = _UPDATE
                hook = _BOOKING.get()
                if hook is None:
                    written = _write(conn, statement, params)
                else:
                    written = self._write_and_book(statement, params, hook, current, next_ch)
                if written:
                    return ChannelUpdateResult(channel=next_ch.copy(), status="updated")
        raise ChannelUpdateConflict(
            f"channel {key}: lost {self.max_attempts} concurrent updates in a row; try again"
        )

    def _write_and_book(
        self,
        statement: Executable,
        params: dict[str, Any],
        hook: BookingHook,
        before: Channel | None,
        after: Channel,
    ) -> bool:
        """The compare-and-swap write and the booking hook, committed together or not at all."""
        with self.engine.connect() as conn, conn.begin() as transaction:
            if not _write(conn, statement, params):
                transaction.rollback()  # a lost insert may have aborted it (PostgreSQL)
                return False
            hook(conn, before, after)
        return True


# Built once: statements whose values are all bound parameters compile once per engine.
_SELECT_ONE = select(payment_channels).where(_C.channel_id == bindparam("_key"))
_WHERE_VERSION = (_C.channel_id == bindparam("_key"), _C.version == bindparam("_version"))
_INSERT = insert(payment_channels)
_UPDATE = update(payment_channels).where(*_WHERE_VERSION)  # SET: the parameters' columns
_DELETE = delete(payment_channels).where(*_WHERE_VERSION)
_STORE_VOUCHER = _UPDATE.values(
    pending_id=None, pending_signed_max_claimable=None, pending_expires_at=None
)


def _write(conn: Connection, statement: Executable, params: dict[str, Any]) -> bool:
    """Run one compare-and-swap write (autocommitted, or in the caller's transaction): False
    if the row was not as read."""
    try:
        done = conn.execute(statement, params)
    except IntegrityError:  # an insert beaten by a concurrent insert of the same channel
        return False
    return statement is _INSERT or done.rowcount == 1


def _back_off(attempt: int) -> None:
    """Jittered exponential pause after a lost race, so contenders stop colliding in step."""
    time.sleep(random.uniform(0, min(0.02, 0.0002 * 2**attempt)))
