"""Ledger (accounts, transactions, postings, withdrawals) and control plane (users, API keys,
hash-chained audit log, wallet proofs). Ledger rows and audit entries are append-only: the
database itself refuses UPDATE and DELETE on them.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

APPEND_ONLY = ("ledger_transactions", "ledger_postings", "audit_log")
_TS = sa.DateTime(timezone=True)


def _ledger() -> None:
    op.create_table(
        "ledger_accounts",
        sa.Column("code", sa.String(120), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("tenant_id", sa.String(40), index=True),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "ledger_transactions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(40), index=True),
        sa.Column("network", sa.String(64)),
        sa.Column("tx_hash", sa.String(80), index=True),
        sa.Column("log_index", sa.Integer),
        sa.Column("payer", sa.String(42)),
        sa.Column("gross", sa.BigInteger),
        sa.Column("memo", sa.Text),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint(
            "network", "tx_hash", "log_index", name="uq_ledger_transactions_chain_log"
        ),
    )
    op.create_table(
        "ledger_postings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "transaction_id",
            sa.Integer,
            sa.ForeignKey("ledger_transactions.id"),
            nullable=False,
            index=True,
        ),
        sa.Column(
            "account",
            sa.String(120),
            sa.ForeignKey("ledger_accounts.code"),
            nullable=False,
            index=True,
        ),
        sa.Column("amount", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "ledger_locks",
        sa.Column("name", sa.String(120), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "ledger_sync",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("network", sa.String(64), nullable=False),
        sa.Column("token", sa.String(42), nullable=False),
        sa.Column("treasury", sa.String(42), nullable=False),
        sa.Column("start_block", sa.BigInteger, nullable=False),
        sa.Column("next_block", sa.BigInteger, nullable=False),
        sa.Column("last_block_hash", sa.String(66)),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint("network", "token", "treasury", name="uq_ledger_sync_treasury"),
    )
    op.create_table(
        "withdrawals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(40), nullable=False, index=True),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("address", sa.String(42), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("network", sa.String(64)),
        sa.Column("chain_nonce", sa.BigInteger),
        sa.Column("tx_hash", sa.String(80), unique=True),
        sa.Column("raw_tx", sa.Text),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_withdrawals_status_id", "withdrawals", ["status", "id"])
    op.create_table(
        "ledger_leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(64)),
        sa.Column("expires_at", _TS),
    )


def _control() -> None:
    op.create_table(
        "users",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column(
            "user_name", sa.String(128), sa.ForeignKey("users.name"), nullable=False, index=True
        ),
        sa.Column("scopes", sa.String(200), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("revoked_at", _TS),
        sa.Column("replaced_by", sa.String(32)),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("ts", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(40), index=True),
        sa.Column("subject", sa.String(200)),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(
        sa.table(
            "audit_head",
            sa.column("id", sa.Integer),
            sa.column("seq", sa.BigInteger),
            sa.column("hash", sa.String),
        ),
        [{"id": 1, "seq": 0, "hash": "0" * 64}],
    )
    op.create_table(
        "wallet_challenges",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(40), nullable=False, index=True),
        sa.Column("address", sa.String(42), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False, unique=True),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("used_at", _TS),
    )
    op.create_table(
        "tenant_wallets",
        sa.Column("tenant_id", sa.String(40), primary_key=True),
        sa.Column("address", sa.String(42), nullable=False),
        sa.Column("verified_at", _TS, nullable=False),
        sa.Column("challenge_id", sa.Integer, nullable=False),
    )


def _append_only(create: bool) -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        if create:
            op.execute(
                "CREATE FUNCTION claw402_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$"
            )
        for table in APPEND_ONLY:
            if create:
                op.execute(
                    f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION claw402_append_only()"
                )
            else:
                op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        if not create:
            op.execute("DROP FUNCTION IF EXISTS claw402_append_only()")
    elif dialect == "sqlite":
        for table in APPEND_ONLY:
            for verb in ("UPDATE", "DELETE"):
                name = f"{table}_no_{verb.lower()}"
                if create:
                    op.execute(
                        f"CREATE TRIGGER {name} BEFORE {verb} ON {table} "
                        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                    )
                else:
                    op.execute(f"DROP TRIGGER IF EXISTS {name}")


def upgrade() -> None:
    _ledger()
    _control()
    _append_only(create=True)


def downgrade() -> None:
    _append_only(create=False)
    for name in (
        "tenant_wallets",
        "wallet_challenges",
        "audit_head",
        "audit_log",
        "api_keys",
        "users",
        "ledger_leases",
        "withdrawals",
        "ledger_sync",
        "ledger_locks",
        "ledger_postings",
        "ledger_transactions",
        "ledger_accounts",
    ):
        op.drop_table(name)
