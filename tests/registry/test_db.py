"""Migrations: the fast "already at head" check agrees with alembic and never skips work."""

import sqlalchemy as sa
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


def test_migrate_upgrades_an_older_schema(database_url):
    engine = make_engine(database_url)
    migrate(engine)
    with engine.begin() as conn:  # as if the migrations after 0003 had not run yet
        conn.execute(sa.text("DROP INDEX ix_events_settled"))
        conn.execute(sa.text("ALTER TABLE events DROP COLUMN steps"))
        for column in ("attempts", "verified_sha256", "valid_before", "served_at"):  # 0008
            conn.execute(sa.text(f"ALTER TABLE payment_claims DROP COLUMN {column}"))
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0003'"))
    assert current_revisions(engine) == ["0003"]
    migrate(engine)
    assert current_revisions(engine) == [HEAD_REVISION]
    inspector = sa.inspect(engine)
    indexes = {ix["name"] for ix in inspector.get_indexes("events")}
    assert "ix_events_settled" in indexes and "ix_events_type" not in indexes  # 0004, then 0006
    assert "steps" in {column["name"] for column in inspector.get_columns("events")}
    claims = {column["name"] for column in inspector.get_columns("payment_claims")}
    assert {"attempts", "verified_sha256", "valid_before", "served_at"} <= claims
    engine.dispose()


def test_settlement_lookups_use_the_partial_index_and_other_rows_stay_out_of_it(engine):
    """The ledger's edge lookups (`type = 'payment_settled'`, a bound parameter) are planned
    with the partial index, which holds settlement rows only."""
    from claw402.ledger.edge import SETTLED
    from claw402.registry.schema import events

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
