"""The public catalogue: whether a tenant is listed on the gateway's `GET /`.

Every existing tenant stays listed (the catalogue only shows what is already public at
`/t/<slug>`); `deploy --unlisted` keeps one out of it.

Revision ID: 0015
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (no batch copy): on SQLite a table copy of `tenants` would cascade
    # through the foreign keys that point at it.
    op.add_column(
        "tenants", sa.Column("listed", sa.Boolean, nullable=False, server_default=sa.true())
    )


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("listed")
