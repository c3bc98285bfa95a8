"""Limits: per-tenant rate, quotas and spend cap; quarantine; usage and junk-traffic counters.

`tenants` gains the creator's controls (`deploy --rate/--quota-day/--quota-month/
--spend-cap-day`) and `plan_before_quarantine` (what `unquarantine` restores).
`usage_counters` holds one row per (tenant, counter, window): quotas and spend caps are taken
with one conditional UPDATE (never read-modify-write), so replicas sharing the database share
the books. `junk_traffic` counts requests no tenant answers, one row per (minute, reason) with
a few sampled paths, instead of one event row per request.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("rate", sa.String(16), nullable=True))
        batch.add_column(sa.Column("quota_day", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("quota_month", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("spend_cap_day", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("plan_before_quarantine", sa.String(32), nullable=True))
    op.create_table(
        "usage_counters",
        sa.Column("tenant_id", sa.String(40), primary_key=True),
        sa.Column("counter", sa.String(16), primary_key=True),
        sa.Column("window", sa.String(16), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "junk_traffic",
        sa.Column("minute", sa.String(16), primary_key=True),
        sa.Column("reason", sa.String(32), primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("samples", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("junk_traffic")
    op.drop_table("usage_counters")
    with op.batch_alter_table("tenants") as batch:
        for name in ("plan_before_quarantine", "spend_cap_day", "quota_month", "quota_day",
                     "rate"):  # fmt: skip
            batch.drop_column(name)
