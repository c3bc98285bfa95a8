"""The limits layer's tables (migration 0013 creates them): quota books and junk counts."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, MetaData, String, Table

metadata = MetaData()

usage_counters = Table(
    "usage_counters",
    metadata,
    Column("tenant_id", String(40), primary_key=True),
    Column("counter", String(16), primary_key=True),  # calls_day, calls_month, spend_day
    Column("window", String(16), primary_key=True),  # d20261207, m202612
    Column("value", BigInteger, nullable=False),
)

junk_traffic = Table(
    "junk_traffic",
    metadata,
    Column("minute", String(16), primary_key=True),  # 202612070042 (UTC)
    Column("reason", String(32), primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("samples", JSON, nullable=False),  # a few paths and hosts, for a person to read
)
