"""Reads and writes of the events table: requests' trails in, requests' events out.

`EventStore` is what the gateway's sink, the event writer's child, edge ingestion and
`402claw events` use; `EdgeSettlements` and `any_edge_settlement` are the ledger's reads, in
its own transaction. Writes go as driver SQL (SQLAlchemy's per-row processing would be most of
a row's cost) and, on SQLite, as multi-row INSERTs of `_INSERT_ROWS`: `executemany` takes the
GIL back after every row, and behind a busy event loop each take waits its turn.
bench/bench_event_writer.py measures it; docs/architecture.md has the numbers.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, func, or_, select

from claw402.events.compact import Trail
from claw402.events.kinds import PAYMENT_SETTLED
from claw402.events.rows import (
    Row,
    compact_correlation,
    compact_row,
    event_record,
    pieces,
    record_correlation,
    record_row,
    row_events,
)
from claw402.events.schema import events

EDGE = "edge"  # the `source` of the events the dispatch Worker reported
_INSERT_ROWS = 100  # rows per INSERT on SQLite: 700 parameters, under every build's limit
_INSERT = (
    "INSERT INTO events (ts, type, request_id, tenant_id, data, steps, correlation_id) VALUES "
)


class EventStore:
    """The events table of one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def write_events(self, batch: Sequence[dict[str, Any]]) -> None:
        """Append events, one row each (the edge's reports: the ledger reads them by type)."""
        self.write_trails([(e,) for e in batch])

    def write_trails(self, trails: Sequence[Sequence[dict[str, Any]]]) -> None:
        """Append requests' events as records, one row per request."""
        self._insert([record_row(t, cid) for t, cid in pieces(trails, record_correlation)])

    def write_compact_trails(self, trails: Sequence[Trail]) -> None:
        """Append requests' events as queued (compact tuples), one row per request: what the
        sink writes for every batch, off the request path (`read_events` reads them back)."""
        self._insert([compact_row(t, cid) for t, cid in pieces(trails, compact_correlation)])

    def _insert(self, rows: list[Row]) -> None:
        if not rows:
            return
        with self.engine.begin() as conn:
            if conn.dialect.paramstyle != "qmark":  # PostgreSQL: psycopg pipelines the batch
                conn.exec_driver_sql(_INSERT + "(%s, %s, %s, %s, %s, %s, %s)", rows)
                return
            for start in range(0, len(rows), _INSERT_ROWS):
                chunk = rows[start : start + _INSERT_ROWS]
                conn.exec_driver_sql(
                    _INSERT + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(chunk)),
                    tuple(itertools.chain.from_iterable(chunk)),
                )

    def read_events(
        self,
        *,
        tenant_id: str | Sequence[str] | None = None,
        kind: str | None = None,
        request_id: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """The events of the newest `limit` requests, each request's events whole and in
        order, the oldest request first. `tenant_id` may name several tenants. `request_id` is
        the gateway's id of a request or the caller's correlation id (which many may share).
        Each event carries its row's `id`; a row holds one request's events, or one of them
        (the edge reports each apart).
        """
        c = events.c
        columns = (c.id, c.type, c.ts, c.request_id, c.tenant_id, c.data, c.correlation_id)
        where = []
        if isinstance(tenant_id, str):
            where.append(c.tenant_id == tenant_id)
        elif tenant_id is not None:
            where.append(c.tenant_id.in_(list(tenant_id)))
        if request_id is not None:
            where.append(or_(c.request_id == request_id, c.correlation_id == request_id))
        if kind is not None:
            where.append(or_(c.type == kind, c.steps.contains(f" {kind} ", autoescape=True)))
        with self.engine.connect() as conn:
            found = _newest_requests(conn, select(*columns).where(*where), limit)
            # The chosen requests' older rows (an edge request's events are rows of their own).
            ids = [key for key in found if isinstance(key, str)]
            for start in range(0, len(ids), 500):
                query = select(*columns).where(*where, c.request_id.in_(ids[start : start + 500]))
                for row in conn.execute(query):
                    found[row.request_id][row.id] = row
        requests = sorted(found.values(), key=max)  # the oldest request (its last row) first
        return [
            {"id": row.id, **e}
            for rows in requests
            for row in (rows[i] for i in sorted(rows))
            for e in row_events(*row[1:])
            if kind is None or e["type"] == kind
        ]


def _newest_requests(conn: Connection, query: Any, limit: int) -> dict[Any, dict[int, Any]]:
    """The rows `query` matches, newest first, until `limit` requests were seen: by request id
    (a row without one is a request of its own, keyed by its row id)."""
    page = min(max(limit * 2, 100), 5000)
    found: dict[Any, dict[int, Any]] = {}
    below = None
    while True:
        paged = query.order_by(events.c.id.desc()).limit(page)
        if below is not None:
            paged = paged.where(events.c.id < below)
        rows = conn.execute(paged).all()
        for row in rows:
            key = row.id if row.request_id is None else row.request_id
            if key not in found:
                if len(found) == limit:
                    return found
                found[key] = {}
            found[key][row.id] = row
        if len(rows) < page:
            return found
        below = rows[-1].id


# -- the edge's settlements, read in the ledger's transaction ---------------------------------


def edge_settlements(conn: Connection, tx_hash: str) -> list[dict[str, Any]]:
    """The edge's `payment_settled` events that name `tx_hash`."""
    return EdgeSettlements().of(conn, tx_hash)


class EdgeSettlements:
    """The edge's `payment_settled` events by the transaction they name, for one reconcile
    run. The hashes are read once (one scan of the settled rows, which the partial index
    `ix_events_settled` holds), then only rows newer than the last read when a hash is
    missing; a hash's events by their ids. Scanning every settled row once per transfer made
    a run's cost the number of transfers times the number of events."""

    def __init__(self) -> None:
        self._ids: dict[str, list[int]] = {}
        self._after = 0  # the highest events row id read

    def of(self, conn: Connection, tx_hash: str) -> list[dict[str, Any]]:
        key = tx_hash.lower()
        if key not in self._ids:
            self._read(conn)
        ids = self._ids.get(key)
        if not ids:
            return []
        c = events.c
        rows = conn.execute(
            select(c.type, c.ts, c.request_id, c.tenant_id, c.data)
            .where(c.id.in_(ids))
            .order_by(c.id)
        ).all()
        return [event_record(*row) for row in rows if isinstance(row.data, dict)]

    def _read(self, conn: Connection) -> None:
        c = events.c
        named = func.lower(c.data[("details", "transaction")].as_string())
        rows = conn.execute(
            select(c.id, named, c.data["source"].as_string()).where(
                c.type == PAYMENT_SETTLED, c.id > self._after
            )
        ).all()
        for id_, tx_hash, source in rows:
            self._after = max(self._after, int(id_))
            if source == EDGE and tx_hash:
                self._ids.setdefault(str(tx_hash), []).append(int(id_))


def any_edge_settlement(conn: Connection) -> bool:
    """Has the edge reported any settlement here (is this platform settling at the edge)?"""
    source = events.c.data["source"].as_string()
    query = select(events.c.id).where(events.c.type == PAYMENT_SETTLED, source == EDGE).limit(1)
    return conn.execute(query).first() is not None
