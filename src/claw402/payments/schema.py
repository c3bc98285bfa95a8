"""Payment tables (created by migration 0002); these objects only build queries.

- `payment_claims`: one row per EIP-3009 authorization ever presented, unique on
  (network, payer, nonce). Inserted before verify, so two requests carrying one payment
  cannot both reach the facilitator. `released` when the payment was not used (query
  failed, verify refused, settle failed: `attempts` counts those, migration 0008), so it
  may be presented again until the attempts run out; `settled` once paid (`served_at` once
  its answer left); `pending` when a settle's outcome is unknown (see `payments.paywall`).
- `payments`: settled payments, unique on (network, tx_hash), for the ledger to post once.
- `payment_responses`: the first answer to a `payment-identifier` id, replayed on retries.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

CLAIMED, PENDING, SETTLED, RELEASED = "claimed", "pending", "settled", "released"

payment_claims = Table(
    "payment_claims",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("network", String(64), nullable=False),
    Column("payer", String(42), nullable=False),
    Column("nonce", String(66), nullable=False),
    Column("status", String(16), nullable=False),
    Column("tenant_id", String(40), nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("amount_atomic", BigInteger, nullable=False),
    Column("asset", String(42), nullable=False),
    Column("pay_to", String(42), nullable=False),
    Column("tx_hash", String(80), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("verified_sha256", String(64), nullable=True),
    Column("valid_before", BigInteger, nullable=True),
    Column("served_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("network", "payer", "nonce", name="uq_payment_claims_authorization"),
    Index("ix_payment_claims_status", "status"),
)

payments = Table(
    "payments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("network", String(64), nullable=False),
    Column("tx_hash", String(80), nullable=False),
    Column("payer", String(42), nullable=False),
    Column("amount_atomic", BigInteger, nullable=False),
    Column("asset", String(42), nullable=False),
    Column("pay_to", String(42), nullable=False),
    Column("tenant_id", String(40), nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("resource", Text, nullable=False),
    Column("settled_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("network", "tx_hash", name="uq_payments_transaction"),
    Index("ix_payments_tenant_id", "tenant_id"),
)

payment_responses = Table(
    "payment_responses",
    metadata,
    Column("payment_id", String(128), primary_key=True),
    Column("payload_sha256", String(64), nullable=False),
    Column("tenant_id", String(40), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("headers", JSON, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
