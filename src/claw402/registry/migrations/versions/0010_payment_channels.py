"""Batch-settlement channels: one row per channel, compare-and-swap on `version`.

Amounts are NUMERIC(78, 0) on PostgreSQL (every uint256 exactly) and INTEGER on SQLite.
The receiver index answers the channel manager's `list()`; the payer index answers
"channels of this payer". See `claw402.payments.channels.schema`.

Revision ID: 0010
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _amount() -> sa.types.TypeEngine:
    return sa.Numeric(78, 0).with_variant(sa.BigInteger(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "payment_channels",
        sa.Column("channel_id", sa.String(66), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("payer", sa.String(42), nullable=False),
        sa.Column("receiver", sa.String(42), nullable=False),
        sa.Column("token", sa.String(42), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("charged_cumulative_amount", _amount(), nullable=False),
        sa.Column("signed_max_claimable", _amount(), nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("balance", _amount(), nullable=False),
        sa.Column("total_claimed", _amount(), nullable=False),
        sa.Column("withdraw_requested_at", sa.BigInteger, nullable=False),
        sa.Column("refund_nonce", sa.BigInteger, nullable=False),
        sa.Column("onchain_synced_at", sa.BigInteger),
        sa.Column("last_request_timestamp", sa.BigInteger, nullable=False),
        sa.Column("pending_id", sa.String(128)),
        sa.Column("pending_signed_max_claimable", _amount()),
        sa.Column("pending_expires_at", sa.BigInteger),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_payment_channels_receiver", "payment_channels", ["receiver", "token", "channel_id"]
    )
    op.create_index("ix_payment_channels_payer", "payment_channels", ["payer", "receiver"])


def downgrade() -> None:
    op.drop_index("ix_payment_channels_payer", "payment_channels")
    op.drop_index("ix_payment_channels_receiver", "payment_channels")
    op.drop_table("payment_channels")
