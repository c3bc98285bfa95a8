"""One events row per request: `steps` names the events a row holds before its own.

A request's lifecycle (dispatch_start, payment steps, dispatch_success) is written as one row,
the way Workers Trace Events record an invocation: three rows per 402 challenge cost a 2-core
machine more than the challenge itself. `steps` (" dispatch_start payment_challenge ") lets
`402claw events --type` find the events folded into a row; NULL for a row of one event.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("steps", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("events", "steps")
