"""Migrations: the fast "already at head" check agrees with alembic and never skips work."""

import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from claw402.registry.db import (
    HEAD_REVISION,
    _alembic_config,
    current_revisions,
    make_engine,
    migrate,
)
from pyrun import python_output


def test_head_revision_is_alembics_head():
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head == HEAD_REVISION, (
        f"a migration was added: set claw402.registry.db.HEAD_REVISION = {head!r}"
    )


def test_migrate_stamps_head_and_then_skips_alembic(database_url):
    engine = make_engine(database_url)
    assert current_revisions(engine) == []  # no alembic_version table yet
    migrate(engine)
    assert current_revisions(engine) == [HEAD_REVISION]
    migrate(engine)  # the fast path: one query
    assert current_revisions(engine) == [HEAD_REVISION]
    engine.dispose()


def downgrade(engine: sa.Engine, revision: str) -> None:
    """Run the migrations' own downgrades to `revision`, as an older 402claw left the schema."""
    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def test_migrate_upgrades_an_older_schema(database_url):
    engine = make_engine(database_url)
    migrate(engine)
    downgrade(engine, "0003")
    assert current_revisions(engine) == ["0003"]
    assert "payment_channels" not in sa.inspect(engine).get_table_names()
    migrate(engine)
    assert current_revisions(engine) == [HEAD_REVISION]
    inspector = sa.inspect(engine)
    indexes = {ix["name"] for ix in inspector.get_indexes("events")}
    assert "ix_events_settled" in indexes and "ix_events_type" not in indexes  # 0004, then 0006
    assert {"ix_events_request_id", "ix_events_correlation_id"} <= indexes  # 0009
    assert "payment_channels" in inspector.get_table_names()
    claims = {c["name"] for c in inspector.get_columns("payment_claims")}
    assert {"attempts", "verified_sha256", "valid_before", "served_at"} <= claims  # 0008
    assert {"steps", "correlation_id"} <= {c["name"] for c in inspector.get_columns("events")}
    engine.dispose()


def test_0007_leaves_the_operators_hosts_routable_and_a_creators_unverified(database_url):
    """Hosts of owner-less tenants (the operator's, before keys) stay `open`; hosts a creator
    deployed with a key were never checked, so they wait for verification."""
    engine = make_engine(database_url)
    migrate(engine)
    downgrade(engine, "0006")
    with engine.begin() as conn:
        for tenant_id, slug, owner in (("tnt_a", "ops", None), ("tnt_b", "eve", "eve")):
            conn.execute(
                sa.text(
                    "INSERT INTO tenants (tenant_id, slug, worker_name, owner, plan, "
                    "price_atomic, created_at, updated_at) VALUES (:id, :slug, 'w', :owner, "
                    "'free', 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"id": tenant_id, "slug": slug, "owner": owner},
            )
            conn.execute(
                sa.text("INSERT INTO tenant_hosts (host, tenant_id) VALUES (:h, :id)"),
                {"h": f"{slug}.example.com", "id": tenant_id},
            )
    migrate(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT host, status, token FROM tenant_hosts ORDER BY host")
        ).all()
    assert [(r.host, r.status) for r in rows] == [
        ("eve.example.com", "unverified"),
        ("ops.example.com", "open"),
    ]
    assert all(r.token.startswith("402claw-") and len(r.token) == 40 for r in rows)
    assert rows[0].token != rows[1].token
    engine.dispose()


def test_0016_marks_the_vouchers_an_older_gateway_booked_as_posted(database_url):
    """Before 0016 a voucher's request posted its ledger transaction itself: each existing
    charge is linked to that transaction, so the first reader of the books posts none twice."""
    from claw402.ledger.balances import balance
    from claw402.ledger.vouchers import post_pending

    engine = make_engine(database_url)
    migrate(engine)
    downgrade(engine, "0015")
    with engine.begin() as conn:
        for cumulative in (1000, 2000):
            key = f"voucher:eip155:84532:0xabc:{cumulative}"
            tid = conn.execute(
                sa.text(
                    "INSERT INTO ledger_transactions (key, kind, tenant_id, network, gross, "
                    "created_at) VALUES (:key, 'channel_voucher', 't1', 'eip155:84532', 1000, "
                    "CURRENT_TIMESTAMP) RETURNING id"
                ),
                {"key": key},
            ).scalar_one()
            conn.execute(
                sa.text(
                    "INSERT INTO channel_charges (network, channel_id, cumulative, amount, fee, "
                    "tenant_id, receiver, payer, direct, created_at) VALUES ('eip155:84532', "
                    "'0xabc', :c, 1000, 50, 't1', '0xr', '0xp', 0, CURRENT_TIMESTAMP)"
                ),
                {"c": cumulative},
            )
            assert tid
    migrate(engine)
    with engine.connect() as conn:
        linked = conn.execute(
            sa.text(
                "SELECT count(*) FROM channel_charges c JOIN ledger_transactions t "
                "ON t.id = c.transaction_id AND t.key = 'voucher:' || c.network || ':' "
                "|| c.channel_id || ':' || CAST(c.cumulative AS VARCHAR)"
            )
        ).scalar_one()
    assert linked == 2
    assert post_pending(engine) == 0
    assert balance(engine, "t1").earned == 2000
    engine.dispose()


def test_settlement_lookups_use_the_partial_index_and_other_rows_stay_out_of_it(engine):
    """The ledger's edge lookups (`type = 'payment_settled'`, a bound parameter) are planned
    with the partial index, which holds settlement rows only."""
    from claw402.events.kinds import PAYMENT_SETTLED as SETTLED
    from claw402.events.schema import events

    rows = [{"ts": 1.0, "type": kind, "data": {}} for kind in ("dispatch_success", SETTLED)]
    query = sa.select(events.c.id).where(events.c.type == SETTLED).limit(1)
    with engine.begin() as conn:
        conn.execute(events.insert(), rows)
        if engine.dialect.name == "sqlite":
            compiled = query.compile(engine)
            plan = conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {compiled}", tuple(compiled.params.values())
            ).all()
            assert "ix_events_settled" in str(plan), plan
            held = conn.exec_driver_sql(
                "SELECT count(*) FROM events INDEXED BY ix_events_settled "
                "WHERE type = 'payment_settled'"
            ).scalar_one()
            assert held == 1
        else:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a tiny table scans otherwise
            compiled = query.compile(engine)
            plan = conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params).all()
            assert "ix_events_settled" in str(plan), plan
        assert conn.execute(query).scalar_one() == 2


def test_migrate_at_head_does_not_import_alembic(tmp_path):
    url = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    code = (
        "import sys\n"
        "from claw402.registry.db import make_engine, migrate\n"
        f"migrate(make_engine({url!r}))\n"
        "print('alembic' in sys.modules)\n"
    )
    assert python_output(code) == "False"
