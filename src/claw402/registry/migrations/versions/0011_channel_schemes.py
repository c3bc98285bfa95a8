"""Channels on the gateway: which schemes a tenant offers, and the vouchers it was paid.

`tenants.schemes` is what a tenant's 402 offers: `both` (batch-settlement first, then
exact; every existing tenant), `exact` or `batch`. `channel_charges` holds one row per
accepted voucher, unique on (network, channel id, cumulative amount), so a voucher is booked
once and a claim knows which tenants' increments it collects. See `claw402.ledger.channels`.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("schemes", sa.String(8), nullable=False, server_default="both"))
    op.create_table(
        "channel_charges",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("network", sa.String(64), nullable=False),
        sa.Column("channel_id", sa.String(66), nullable=False),
        sa.Column("cumulative", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("fee", sa.BigInteger, nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("receiver", sa.String(42), nullable=False),
        sa.Column("payer", sa.String(42), nullable=False),
        sa.Column("direct", sa.Integer, nullable=False),
        sa.Column("claim_key", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "network", "channel_id", "cumulative", name="uq_channel_charges_voucher"
        ),
    )
    op.create_index("ix_channel_charges_tenant_id", "channel_charges", ["tenant_id"])
    op.create_index("ix_channel_charges_open", "channel_charges", ["channel_id", "claim_key"])


def downgrade() -> None:
    op.drop_index("ix_channel_charges_open", table_name="channel_charges")
    op.drop_index("ix_channel_charges_tenant_id", table_name="channel_charges")
    op.drop_table("channel_charges")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("schemes")
