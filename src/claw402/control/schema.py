"""Control-plane tables (created by migration 0003); these objects only build queries.

- `users`, `api_keys`: a key is stored as its public id and the SHA-256 of the whole key.
- `audit_log`: append-only, hash-chained entries; `audit_head` anchors the newest one, so
  deleting the tail is detected as well as editing or deleting a middle entry.
- `wallet_challenges`, `tenant_wallets`: EIP-191 proof that a creator controls a payout address.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("user_name", String(128), ForeignKey("users.name"), nullable=False, index=True),
    Column("scopes", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("replaced_by", String(32), nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("tenant_id", String(40), nullable=True, index=True),
    Column("subject", String(200), nullable=True),
    Column("details", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

wallet_challenges = Table(
    "wallet_challenges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), nullable=False, index=True),
    Column("address", String(42), nullable=False),
    Column("nonce", String(64), nullable=False, unique=True),
    Column("message", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
)

tenant_wallets = Table(
    "tenant_wallets",
    metadata,
    Column("tenant_id", String(40), primary_key=True),
    Column("address", String(42), nullable=False),
    Column("verified_at", DateTime(timezone=True), nullable=False),
    Column("challenge_id", Integer, nullable=False),
)
