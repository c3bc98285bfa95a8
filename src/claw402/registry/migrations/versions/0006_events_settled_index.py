"""Index only the `payment_settled` rows by type: the ledger's edge-settlement lookups.

Those lookups (`claw402.ledger.edge`) are the only reads the type index served:
`402claw events --type` also matches the events folded into a row (`steps`), which no index
on `type` can answer. A full index cost every request's row an extra B-tree insert (~0.4 µs
of the event writer's CPU, and its pages in the WAL); the partial one touches settlement rows
only, and both SQLite and PostgreSQL still plan the lookups with it.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_SETTLED = sa.text("type = 'payment_settled'")


def upgrade() -> None:
    op.drop_index("ix_events_type", table_name="events")
    op.create_index(
        "ix_events_settled",
        "events",
        ["type"],
        sqlite_where=_SETTLED,
        postgresql_where=_SETTLED,
    )


def downgrade() -> None:
    op.drop_index("ix_events_settled", table_name="events")
    op.create_index("ix_events_type", "events", ["type"])
