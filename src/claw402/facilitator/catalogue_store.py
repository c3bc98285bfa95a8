"""Where the facilitator keeps its Bazaar catalogue: its own database, not the registry's.

The facilitator is a separate service (it may run for gateways that share no registry), so
its table is not in the registry's Alembic chain. Its schema is versioned here instead: the
`facilitator_meta` row `schema_version` names the layout; `open_catalogue_db` creates a new
database at `SCHEMA_VERSION`, accepts one already there, and refuses any other version with a
clear error (a newer layout needs the newer 402claw; a future change adds its upgrade step to
`_UPGRADES`, keyed by the version it upgrades from, run in one transaction).

SQLite (a file in the facilitator's home by default) or PostgreSQL by URL, SQLAlchemy Core.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from claw402.registry.db import make_engine

SCHEMA_VERSION = 1
DATABASE_FILE = "facilitator.sqlite3"
DATABASE_URL_ENV = "CLAW402_FACILITATOR_DATABASE_URL"

metadata = sa.MetaData()

facilitator_meta = sa.Table(
    "facilitator_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

# One row per catalogued resource: an HTTP route (`tool` is its method) or an MCP tool.
bazaar_resources = sa.Table(
    "bazaar_resources",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("resource", sa.String(2048), nullable=False),
    sa.Column("tool", sa.String(256), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("touched", sa.BigInteger, nullable=False),  # ns since the epoch: newest first
    sa.Column("body", sa.Text, nullable=False),  # the DiscoveryResource as JSON
    sa.Column("words", sa.Text, nullable=False),  # lower-cased URL, description, name, tags
    sa.UniqueConstraint("resource", "tool", name="uq_bazaar_resources_key"),
    sa.Index("ix_bazaar_resources_touched", "touched"),
)


class CatalogueSchemaError(RuntimeError):
    """The catalogue database has a layout this 402claw does not know."""


_UPGRADES: dict[int, Callable[[Connection], None]] = {}


def default_database_url(home: Path) -> str:
    return f"sqlite:///{home / DATABASE_FILE}"


def open_catalogue_db(url: str | None) -> Engine:
    """The catalogue's engine, its schema created or checked. `None`: a throwaway database
    (a SQLite file in a temporary folder removed at exit), for embedded facilitators that
    need no memory of their own; a file rather than `:memory:`, whose one connection shared
    by threads would let one thread's pool reset roll back another's write."""
    if url is None:
        folder = tempfile.mkdtemp(prefix="claw402-facilitator-")
        atexit.register(shutil.rmtree, folder, True)
        url = default_database_url(Path(folder))
    engine = make_engine(url)  # the registry's: WAL and a busy timeout for SQLite, psycopg
    try:
        with engine.begin() as conn:
            metadata.create_all(conn, tables=[facilitator_meta])
            version = conn.execute(
                sa.select(facilitator_meta.c.value).where(
                    facilitator_meta.c.key == "schema_version"
                )
            ).scalar()
            if version is None:
                metadata.create_all(conn)
                conn.execute(
                    sa.insert(facilitator_meta).values(
                        key="schema_version", value=str(SCHEMA_VERSION)
                    )
                )
                return engine
            found = int(version)
            while found != SCHEMA_VERSION:
                upgrade = _UPGRADES.get(found)
                if upgrade is None:
                    raise CatalogueSchemaError(
                        f"the facilitator database {engine.url!r} has catalogue schema version "
                        f"{found}; this 402claw reads version {SCHEMA_VERSION}"
                    )
                upgrade(conn)
                found += 1
                conn.execute(
                    sa.update(facilitator_meta)
                    .where(facilitator_meta.c.key == "schema_version")
                    .values(value=str(found))
                )
    except BaseException:
        engine.dispose()
        raise
    return engine
