"""The `payment_channels` table (created by migration 0010); these objects only build queries.

One row per batch-settlement channel, keyed by its lowercase channel id. The SDK's `Channel`
fields are columns so the gateway and the ledger can query them; `config` keeps the channel
config exactly as signed (checksummed addresses), `payer`/`receiver`/`token` repeat it in
lowercase for lookups. `version` is the compare-and-swap counter every write checks and bumps.

Indexes, from what reads the table:
- `(receiver, token, channel_id)`: the channel manager's `list()` of one receiver's channels
  (optionally one token's), in id order, without a sort; also "channels of this receiver".
- `(payer, receiver)`: "channels of this payer" (and of this payer with this receiver).
The manager's own filters (claimable, idle, withdrawal requested, funded) run in the SDK on
the listed channels; the table answers that list with one index range scan.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

metadata = MetaData()

UINT = re.compile(r"^(0|[1-9][0-9]*)$")
UINT256_MAX = 2**256 - 1
SQLITE_INT_MAX = 2**63 - 1


class Uint256(TypeDecorator[str]):
    """A token amount: the SDK's canonical decimal string in Python, a number in SQL.

    PostgreSQL stores NUMERIC(78, 0), which holds every uint256 exactly. SQLite's integers
    are 64-bit (a larger number would silently become a float), so there an amount above
    2**63 - 1 is refused: 9.2 trillion USDC, but use PostgreSQL for 18-decimal tokens.
    """

    impl = Numeric(78, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(78, 0, asdecimal=True))

    def process_bind_param(self, value: str | None, dialect: Dialect) -> int | Decimal | None:
        if value is None:
            return None
        if not isinstance(value, str) or not UINT.match(value):
            raise ValueError(f"an amount must be a decimal string of a uint256, got {value!r}")
        number = int(value)
        if number > UINT256_MAX:
            raise ValueError(f"amount {value} does not fit in a uint256")
        if dialect.name == "sqlite":
            if number > SQLITE_INT_MAX:
                raise ValueError(f"amount {value} exceeds SQLite's 64-bit integers; use PostgreSQL")
            return number
        return Decimal(number)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else str(int(value))


payment_channels = Table(
    "payment_channels",
    metadata,
    Column("channel_id", String(66), primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("payer", String(42), nullable=False),
    Column("receiver", String(42), nullable=False),
    Column("token", String(42), nullable=False),
    Column("config", JSON, nullable=False),
    Column("charged_cumulative_amount", Uint256, nullable=False),
    Column("signed_max_claimable", Uint256, nullable=False),
    Column("signature", Text, nullable=False),
    Column("balance", Uint256, nullable=False),
    Column("total_claimed", Uint256, nullable=False),
    Column("withdraw_requested_at", BigInteger, nullable=False),
    Column("refund_nonce", BigInteger, nullable=False),
    Column("onchain_synced_at", BigInteger, nullable=True),  # ms since epoch, as the SDK
    Column("last_request_timestamp", BigInteger, nullable=False),  # ms since epoch
    Column("pending_id", String(128), nullable=True),
    Column("pending_signed_max_claimable", Uint256, nullable=True),
    Column("pending_expires_at", BigInteger, nullable=True),  # ms since epoch
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_payment_channels_receiver", "receiver", "token", "channel_id"),
    Index("ix_payment_channels_payer", "payer", "receiver"),
)
