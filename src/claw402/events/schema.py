"""The events table (created by the registry's migrations: 0001, 0004-0006, 0009); these
objects only build queries. How a request's events fill a row: `claw402.events.rows`."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, Index, Integer, MetaData, String, Table, Text, text

from claw402.events.kinds import PAYMENT_SETTLED

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("type", String(64), nullable=False),
    Column("request_id", String(64), nullable=True),  # the gateway's own, one per request
    Column("tenant_id", String(40), nullable=True, index=True),
    Column("data", JSON, nullable=False),
    # One row holds one request's events: `type`, `ts` and `data` are its last event's, and
    # `data["before"]` the earlier ones, whose types `steps` lists (" a b "); NULL: one event.
    Column("steps", Text, nullable=True),
    # The caller's x-request-id, which many requests may share (migration 0009).
    Column("correlation_id", String(64), nullable=True),
)
# Only settlement rows are indexed by type: the ledger looks them up (migration 0006).
_SETTLED = text(f"type = '{PAYMENT_SETTLED}'")
Index("ix_events_settled", events.c.type, sqlite_where=_SETTLED, postgresql_where=_SETTLED)
# `402claw events --request` and `--limit` find a request's rows by either id (migration 0009).
Index("ix_events_request_id", events.c.request_id)
_CORRELATED = text("correlation_id IS NOT NULL")
Index(
    "ix_events_correlation_id",
    events.c.correlation_id,
    sqlite_where=_CORRELATED,
    postgresql_where=_CORRELATED,
)
