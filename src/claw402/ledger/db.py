"""Two portable SQL moves the ledger relies on, on SQLite and PostgreSQL alike.

- `insert_ignore`: INSERT ... ON CONFLICT DO NOTHING, so "post once" is a property of the
  schema (a unique key) and not of a read-then-write race.
- `lock`: serialise a read-check-write on one name (e.g. a tenant's money). The first
  statement is an UPDATE of a lock row: on PostgreSQL it takes that row's lock until commit
  (and READ COMMITTED then shows every later statement the winner's rows); on SQLite it takes
  the database write lock before anything is read, so no snapshot can be stale.
"""

from __future__ import annotations

from sqlalchemy import Connection, TableClause, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from claw402.ledger.schema import ledger_locks

_IGNORING: dict[tuple[str, str, bool], Insert] = {}


def insert_ignore(conn: Connection, table: TableClause, *, returning: bool = False) -> Insert:
    """An INSERT that skips rows violating any unique constraint; execute it with the rows.

    Built once per dialect and table (values are bound at execute time), so SQLAlchemy
    compiles it once: on the settlement hot path that is most of the cost.
    """
    dialect = conn.dialect.name
    key = (dialect, table.name, returning)
    found = _IGNORING.get(key)
    if found is None:
        if dialect == "postgresql":
            found = postgresql.insert(table).on_conflict_do_nothing()
        elif dialect == "sqlite":
            found = sqlite.insert(table).on_conflict_do_nothing()
        else:
            raise RuntimeError(f"the ledger supports SQLite and PostgreSQL, not {dialect}")
        if returning:
            found = found.returning(table.c.id)
        _IGNORING[key] = found
    return found


def lock(conn: Connection, name: str) -> None:
    """Hold `name` until this transaction ends; concurrent holders wait (busy timeout)."""
    conn.execute(insert_ignore(conn, ledger_locks), {"name": name, "seq": 0})
    conn.execute(
        update(ledger_locks).where(ledger_locks.c.name == name).values(seq=ledger_locks.c.seq + 1)
    )
