"""Vouchers recorded on the request path, posted to the books just after.

A voucher's request commits its channel's compare-and-swap and one `channel_charges` row;
the ledger transaction follows a few milliseconds later (`ledger.channels.post_vouchers`).
`transaction_id` is that transaction, NULL until it is posted; the partial index finds the
rows still waiting without touching the posted ones. Every existing charge was posted in
its own request, so each gets its transaction from the voucher's ledger key.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

UNPOSTED = sa.text("transaction_id IS NULL")


def upgrade() -> None:
    op.add_column("channel_charges", sa.Column("transaction_id", sa.Integer, nullable=True))
    op.execute(
        "UPDATE channel_charges SET transaction_id = (SELECT t.id FROM ledger_transactions t"
        " WHERE t.key = 'voucher:' || channel_charges.network || ':'"
        " || channel_charges.channel_id || ':' || CAST(channel_charges.cumulative AS VARCHAR))"
    )
    op.create_index(
        "ix_channel_charges_unposted",
        "channel_charges",
        ["id"],
        sqlite_where=UNPOSTED,
        postgresql_where=UNPOSTED,
    )


def downgrade() -> None:
    op.drop_index("ix_channel_charges_unposted", table_name="channel_charges")
    with op.batch_alter_table("channel_charges") as batch:
        batch.drop_column("transaction_id")
