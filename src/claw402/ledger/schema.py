"""Ledger tables (created by migration 0003); these objects only build queries.

- `ledger_accounts`: one row per account code (see `accounts`), created on first use.
- `ledger_transactions`: one row per business event, unique on `key` (the idempotency key:
  the same settlement, chain log or withdrawal step is posted at most once) and on
  (network, tx_hash, log_index) for anything read from a chain log. Append-only.
- `ledger_postings`: signed amounts (debit > 0, credit < 0) in USDC atomic units; the postings
  of a transaction sum to zero. Append-only (the database refuses UPDATE and DELETE).
- `ledger_locks`: rows a transaction updates to serialise work on one tenant's money.
- `ledger_sync`: how far `reconcile` has read a treasury's token logs.
- `withdrawals`: the payout state machine (pending -> sending -> completed | failed).
- `ledger_leases`: one payout runner at a time.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

ledger_accounts = Table(
    "ledger_accounts",
    metadata,
    Column("code", String(120), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("tenant_id", String(40), nullable=True, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

ledger_transactions = Table(
    "ledger_transactions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("tenant_id", String(40), nullable=True, index=True),
    Column("network", String(64), nullable=True),
    Column("tx_hash", String(80), nullable=True, index=True),
    Column("log_index", Integer, nullable=True),
    Column("payer", String(42), nullable=True),
    Column("gross", BigInteger, nullable=True),
    Column("memo", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("network", "tx_hash", "log_index", name="uq_ledger_transactions_chain_log"),
)

ledger_postings = Table(
    "ledger_postings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "transaction_id", Integer, ForeignKey("ledger_transactions.id"), nullable=False, index=True
    ),
    Column("account", String(120), ForeignKey("ledger_accounts.code"), nullable=False, index=True),
    Column("amount", BigInteger, nullable=False),
)

ledger_locks = Table(
    "ledger_locks",
    metadata,
    Column("name", String(120), primary_key=True),
    Column("seq", BigInteger, nullable=False),
)

ledger_sync = Table(
    "ledger_sync",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("network", String(64), nullable=False),
    Column("token", String(42), nullable=False),
    Column("treasury", String(42), nullable=False),
    Column("start_block", BigInteger, nullable=False),
    Column("next_block", BigInteger, nullable=False),
    Column("last_block_hash", String(66), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("network", "token", "treasury", name="uq_ledger_sync_treasury"),
)

withdrawals = Table(
    "withdrawals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), nullable=False, index=True),
    Column("amount", BigInteger, nullable=False),
    Column("address", String(42), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("network", String(64), nullable=True),
    Column("chain_nonce", BigInteger, nullable=True),
    Column("tx_hash", String(80), nullable=True, unique=True),
    Column("raw_tx", Text, nullable=True),
    Column("requested_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_withdrawals_status_id", "status", "id"),
)

ledger_leases = Table(
    "ledger_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(64), nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True),
)

# One row per accepted batch-settlement voucher (migration 0011): the increment it charged,
# whom it credited, its ledger transaction (`transaction_id`, NULL until posted: migration
# 0016) and the claim that collected it (`claim_key`, once claimed on chain).
channel_charges = Table(
    "channel_charges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("network", String(64), nullable=False),
    Column("channel_id", String(66), nullable=False),
    Column("cumulative", BigInteger, nullable=False),  # the voucher's cumulative amount
    Column("amount", BigInteger, nullable=False),  # what this voucher added (gross)
    Column("fee", BigInteger, nullable=False),
    Column("tenant_id", String(40), nullable=False, index=True),
    Column("receiver", String(42), nullable=False),
    Column("payer", String(42), nullable=False),
    Column("direct", Integer, nullable=False),  # 1: paid to the creator's own wallet
    Column("claim_key", String(200), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("transaction_id", Integer, nullable=True),
    UniqueConstraint("network", "channel_id", "cumulative", name="uq_channel_charges_voucher"),
    Index("ix_channel_charges_open", "channel_id", "claim_key"),
    Index(
        "ix_channel_charges_unposted",
        "id",
        sqlite_where=text("transaction_id IS NULL"),
        postgresql_where=text("transaction_id IS NULL"),
    ),
)
