"""Events keep the caller's request id apart from the gateway's own.

The gateway used to adopt a well-formed `x-request-id` from the caller as the request's id,
so two calls sent with the same header read back as one request. Now every request gets the
gateway's own id (`request_id`) and the caller's is kept as `correlation_id`. Both are indexed
so `402claw events --request ID` finds a request by either one, and `--limit N` fetches the
whole trail of each of the newest N requests; only rows with a correlation id pay for its
index.

Revision ID: 0009
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_CORRELATED = sa.text("correlation_id IS NOT NULL")


def upgrade() -> None:
    op.add_column("events", sa.Column("correlation_id", sa.String(64), nullable=True))
    op.create_index("ix_events_request_id", "events", ["request_id"])
    op.create_index(
        "ix_events_correlation_id",
        "events",
        ["correlation_id"],
        sqlite_where=_CORRELATED,
        postgresql_where=_CORRELATED,
    )


def downgrade() -> None:
    op.drop_index("ix_events_correlation_id", table_name="events")
    op.drop_index("ix_events_request_id", table_name="events")
    op.drop_column("events", "correlation_id")
