"""Payment claims remember what the gateway needs to finish or refuse a retry.

- `attempts`: failed attempts of the authorization (verify refused, query failed, settle
  failed). A released claim is kept (status `released`) instead of deleted, so the count
  holds across processes and an authorization cannot be replayed forever.
- `verified_sha256`: digest of the payment payload the facilitator verified for this claim:
  only that payload may recover a pending or unserved settlement.
- `valid_before`: the authorization's `validBefore` (clamped to a BIGINT), so `reconcile`
  can tell an expired, unused authorization from one that may still be mined.
- `served_at`: when the paid answer left. A claim `settled` without it (booked by
  `reconcile` from the chain) is still owed its data.

Rows written before this revision keep NULLs: they have no verified digest, so they can
only be refused, as before.

Revision ID: 0008
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_COLUMNS = ("served_at", "valid_before", "verified_sha256", "attempts")


def upgrade() -> None:
    op.add_column(
        "payment_claims",
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    op.add_column("payment_claims", sa.Column("verified_sha256", sa.String(64)))
    op.add_column("payment_claims", sa.Column("valid_before", sa.BigInteger))
    op.add_column("payment_claims", sa.Column("served_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM payment_claims WHERE status = 'released'"))
    with op.batch_alter_table("payment_claims") as batch:
        for name in _COLUMNS:
            batch.drop_column(name)
