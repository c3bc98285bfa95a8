"""Payments: nonce claims, settled payments, payment-identifier answers.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_claims",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("network", sa.String(64), nullable=False),
        sa.Column("payer", sa.String(42), nullable=False),
        sa.Column("nonce", sa.String(66), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("amount_atomic", sa.BigInteger, nullable=False),
        sa.Column("asset", sa.String(42), nullable=False),
        sa.Column("pay_to", sa.String(42), nullable=False),
        sa.Column("tx_hash", sa.String(80)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("network", "payer", "nonce", name="uq_payment_claims_authorization"),
    )
    op.create_index("ix_payment_claims_status", "payment_claims", ["status"])
    op.create_table(
        "payments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("network", sa.String(64), nullable=False),
        sa.Column("tx_hash", sa.String(80), nullable=False),
        sa.Column("payer", sa.String(42), nullable=False),
        sa.Column("amount_atomic", sa.BigInteger, nullable=False),
        sa.Column("asset", sa.String(42), nullable=False),
        sa.Column("pay_to", sa.String(42), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("network", "tx_hash", name="uq_payments_transaction"),
    )
    op.create_index("ix_payments_tenant_id", "payments", ["tenant_id"])
    op.create_table(
        "payment_responses",
        sa.Column("payment_id", sa.String(128), primary_key=True),
        sa.Column("payload_sha256", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("payment_responses")
    op.drop_index("ix_payments_tenant_id", "payments")
    op.drop_table("payments")
    op.drop_index("ix_payment_claims_status", "payment_claims")
    op.drop_table("payment_claims")
