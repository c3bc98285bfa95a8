"""Custom hosts get a status and a verification token: a creator's host routes once proven.

Existing hosts of tenants with an owner (deployed with a creator's API key) become
`unverified`: nothing checked that the creator controls them, and a host outranks
`/t/<slug>` routing. Hosts of owner-less tenants (the single operator's, before any key
existed) stay routable as `open`.

Revision ID: 0007
Revises: 0006
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenant_hosts") as batch:
        batch.add_column(sa.Column("status", sa.String(16), nullable=False, server_default="open"))
        batch.add_column(sa.Column("token", sa.String(64), nullable=True))
        batch.add_column(sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True))
    conn = op.get_bind()
    hosts = sa.table(
        "tenant_hosts",
        sa.column("host", sa.String),
        sa.column("tenant_id", sa.String),
        sa.column("status", sa.String),
        sa.column("token", sa.String),
    )
    tenants = sa.table("tenants", sa.column("tenant_id", sa.String), sa.column("owner", sa.String))
    rows = conn.execute(
        sa.select(hosts.c.host, tenants.c.owner).join(
            tenants, tenants.c.tenant_id == hosts.c.tenant_id
        )
    ).all()
    for host, owner in rows:
        conn.execute(
            hosts.update()
            .where(hosts.c.host == host)
            .values(
                token="402claw-" + secrets.token_hex(16),
                status="open" if owner is None else "unverified",
            )
        )
    with op.batch_alter_table("tenant_hosts") as batch:
        batch.alter_column("token", existing_type=sa.String(64), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("tenant_hosts") as batch:
        batch.drop_column("verified_at")
        batch.drop_column("token")
        batch.drop_column("status")
