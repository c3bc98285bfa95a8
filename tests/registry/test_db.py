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
    with engine.begin() as conn:  # as if the last two migrations had not run yet
        conn.execute(sa.text("DROP INDEX ix_events_type"))
        conn.execute(sa.text("ALTER TABLE events DROP COLUMN steps"))
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0003'"))
    assert current_revisions(engine) == ["0003"]
    migrate(engine)
    assert current_revisions(engine) == [HEAD_REVISION]
    inspector = sa.inspect(engine)
    assert "ix_events_type" in {ix["name"] for ix in inspector.get_indexes("events")}
    assert "steps" in {column["name"] for column in inspector.get_columns("events")}
    engine.dispose()


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
