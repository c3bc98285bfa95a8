"""Table definitions. Alembic migrations create them; these objects only build queries."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

tenants = Table(
    "tenants",
    metadata,
    Column("tenant_id", String(40), primary_key=True),
    Column("slug", String(63), nullable=False, unique=True),
    Column("worker_name", String(128), nullable=False),
    Column("owner", String(128), nullable=True),
    Column("plan", String(32), nullable=False),
    Column("price_atomic", BigInteger, nullable=False),  # per call; 0 when priced by rows
    # pricing by rows: atomic units per 1,000 rows returned, NULL if priced per call (0012)
    Column("price_per_1k_rows_atomic", BigInteger, nullable=True),
    Column("pay_to", String(42), nullable=True),
    # which x402 schemes the 402 offers: "both" (batch-settlement first, then exact),
    # "exact" or "batch" (migration 0011)
    Column("schemes", String(8), nullable=False, server_default="both"),
    Column("cpu_ms", Integer, nullable=True),
    Column("sub_requests", Integer, nullable=True),
    # the creator's controls (migration 0013): "N/s" rate, calls a day/month, atomic USD a day
    Column("rate", String(16), nullable=True),
    Column("quota_day", BigInteger, nullable=True),
    Column("quota_month", BigInteger, nullable=True),
    Column("spend_cap_day", BigInteger, nullable=True),
    Column("plan_before_quarantine", String(32), nullable=True),  # what unquarantine restores
    Column("name", String(200), nullable=True),
    Column("description", Text, nullable=True),
    Column("current_version", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

tenant_hosts = Table(
    "tenant_hosts",
    metadata,
    Column("host", String(253), primary_key=True),
    Column(
        "tenant_id",
        String(40),
        ForeignKey("tenants.tenant_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    # open: added while no API key existed (one operator); unverified: claimed by a creator,
    # not routed until `hosts verify` proves it or an admin approves it (migration 0007).
    Column("status", String(16), nullable=False, server_default="open"),
    Column("token", String(64), nullable=False),  # what `_402claw.<host>` TXT must hold
    Column("verified_at", DateTime(timezone=True), nullable=True),
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "tenant_id",
        String(40),
        ForeignKey("tenants.tenant_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("version", Integer, nullable=False),
    Column("source_path", Text, nullable=False),
    Column("format", String(16), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("columns", JSON, nullable=False),
    Column("key_column", String(200), nullable=True),
    Column("data_path", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("tenant_id", "version", name="uq_dataset_versions_tenant_version"),
)

# One row whose counter moves on every change, so a running gateway can tell cheaply
# that its cached tenant directory is stale.
registry_state = Table(
    "registry_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("generation", BigInteger, nullable=False),
)
