"""Two portable SQL moves the ledger relies on, on SQLite and PostgreSQL alike.

- `insert_ignore`: INSERT ... ON CONFLICT DO NOTHING, so "post once" is a property of the
  schema (a unique key) and not of a read-then-write race.
- `lock`: serialise a read-check-write on one name (e.g. a tenant's money). The first
  statement is an UPDATE of a lock row: on PostgreSQL it takes that row's lock until commit
  (and READ COMMITTED then shows every later statement the winner's rows); on SQLite it takes
  the database write lock before anything is read, so no snapshot can be stale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from claw402.ledger.schema import ledger_locks


def now() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes; every time here is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def insert_ignore(
    conn: Connection, table: Table, rows: Mapping[str, Any] | Sequence[Mapping[str, Any]]
) -> Insert:
    """An INSERT that skips rows violating any unique constraint (build it, then execute)."""
    values = [dict(rows)] if isinstance(rows, Mapping) else [dict(r) for r in rows]
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table).values(values).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).values(values).on_conflict_do_nothing()
    raise RuntimeError(f"the ledger supports SQLite and PostgreSQL, not {dialect}")


def lock(conn: Connection, name: str) -> None:
    """Hold `name` until this transaction ends; concurrent holders wait (busy timeout)."""
    conn.execute(insert_ignore(conn, ledger_locks, {"name": name, "seq": 0}))
    conn.execute(
        update(ledger_locks).where(ledger_locks.c.name == name).values(seq=ledger_locks.c.seq + 1)
    )
