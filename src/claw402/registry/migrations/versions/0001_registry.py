"""Registry: tenants, hosts, dataset versions, generation counter, events.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("tenant_id", sa.String(40), primary_key=True),
        sa.Column("slug", sa.String(63), nullable=False, unique=True),
        sa.Column("worker_name", sa.String(128), nullable=False),
        sa.Column("owner", sa.String(128)),
        sa.Column("plan", sa.String(32), nullable=False),
        sa.Column("price_atomic", sa.BigInteger, nullable=False),
        sa.Column("pay_to", sa.String(42)),
        sa.Column("cpu_ms", sa.Integer),
        sa.Column("sub_requests", sa.Integer),
        sa.Column("name", sa.String(200)),
        sa.Column("description", sa.Text),
        sa.Column("current_version", sa.Integer),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "tenant_hosts",
        sa.Column("host", sa.String(253), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.String(40),
            sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "tenant_id",
            sa.String(40),
            sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("source_path", sa.Text, nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("columns", sa.JSON, nullable=False),
        sa.Column("key_column", sa.String(200)),
        sa.Column("data_path", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant_id", "version", name="uq_dataset_versions_tenant_version"),
    )
    op.create_table(
        "registry_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("generation", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(
        sa.table(
            "registry_state", sa.column("id", sa.Integer), sa.column("generation", sa.BigInteger)
        ),
        [{"id": 1, "generation": 0}],
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(64)),
        sa.Column("tenant_id", sa.String(40), index=True),
        sa.Column("data", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    for name in ("events", "registry_state", "dataset_versions", "tenant_hosts", "tenants"):
        op.drop_table(name)
