"""Pricing by rows: `tenants.price_per_1k_rows_atomic`.

NULL for a tenant priced per call (every existing one). When set, `price_atomic` is 0 and a
call is advertised at the price of a full page on the tenant's plan; a channel caller is
charged for the rows returned (`claw402.dispatch.pricing`).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("price_per_1k_rows_atomic", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("price_per_1k_rows_atomic")
