"""`GroupCommit`: the writes of many concurrent requests in one database transaction.

A durable commit costs far more than the few statements of a voucher (an fsync on
PostgreSQL; a thread hop even on SQLite), so while one transaction is being committed the
next requests queue, and then all of them go in the next transaction together: the cost of
a commit is shared by every request waiting for it, and each request is answered only after
the transaction holding its write has committed. One drain runs at a time per instance (per
event loop), so the writes of one instance never contend with each other.

The group is written by one call, `apply(conn, items)`, so a group's rows go in a few
multi-row statements instead of a few statements per request (the statements' Python
overhead, not the database, is most of a voucher's cost). If `apply` raises, the whole
transaction is rolled back and each item of the group is applied again in a transaction of
its own, so a failure (or a lost compare-and-swap that `apply` reports by raising
`Regroup`) is only its own request's.

Groups are written one at a time, so each instance has one thread of its own for them:
handing a group to it is a plain executor call, without the capacity limiter and context
lookups of a shared worker pool on every group.

On a SQLite file a group is first tried on the event loop itself, in a transaction that
takes the write lock at `BEGIN IMMEDIATE` without waiting for it
(`registry.db.immediate_sqlite_engine`). A thread's transaction gives the GIL back around
every SQLite call and must win it back from a busy event loop each time, so under load a
group of a few hundred microseconds of work took milliseconds; on the loop it takes its
work's time. If the lock is held (another process writing), or the group fails in any way,
it is rolled back and goes to the thread as before, which waits for the lock and regroups.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine

from claw402.registry.db import immediate_sqlite_engine

T = TypeVar("T")
Apply = Callable[[Connection, Sequence[T]], list[bool]]

__all__ = ["Apply", "GroupCommit", "Regroup"]


class Regroup(Exception):
    """Raised by `apply` when the group cannot be written together (a lost compare-and-swap
    among several): roll back, then write each item alone."""


class GroupCommit(Generic[T]):
    """`await commit(item)`: `apply(conn, [item, ...])`'s outcome for `item`, once the
    transaction holding it committed."""

    def __init__(self, engine: Engine, apply: Apply[T], *, most: int = 256) -> None:
        self.engine = engine
        self.apply = apply
        self.most = most
        self._queue: list[tuple[T, asyncio.Future[bool]]] = []
        self._drain: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="claw402-commit")
        self._immediate = immediate_sqlite_engine(engine)
        self._loop_conn: Connection | None = None  # the immediate engine's one connection, kept
        self.transactions = 0  # committed so far (a gauge: writes per transaction)
        self.on_loop = 0  # of which on the event loop

    async def commit(self, item: T) -> bool:
        """`item`'s outcome once its transaction committed; the exception if it failed."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self._run())
        return await future

    def close(self) -> None:
        """Let the commit thread end once the group it may be writing is done."""
        self._thread.shutdown(wait=False)
        if self._loop_conn is not None:
            self._loop_conn.close()
            self._loop_conn = None
        if self._immediate is not None:
            self._immediate.dispose()

    async def _run(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.most], self._queue[self.most :]
                items = [item for item, _ in batch]
                outcomes = self._on_loop(items)
                if outcomes is None:
                    try:
                        written = asyncio.get_running_loop().run_in_executor(
                            self._thread, self._transaction, items
                        )
                        outcomes = await asyncio.shield(written)
                    except BaseException as exc:  # the thread could not run: fail this group
                        outcomes = [exc] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._drain = None
            for _, future in self._queue:  # only if the loop is going away
                if not future.done():
                    future.cancel()
            self._queue = []

    def _on_loop(self, items: list[T]) -> list[Any] | None:
        """The group written on this thread if SQLite's write lock is free and every write
        succeeds; else None, with nothing written (the thread path takes the group)."""
        if self._immediate is None:
            return None
        try:
            conn = self._loop_conn
            if conn is None or conn.invalidated or conn.closed:
                conn = self._loop_conn = self._immediate.connect()
            with conn.begin():
                outcomes = self.apply(conn, items)
        except Exception:  # the lock is another's, a booking refused: the thread sorts it
            return None
        self.transactions += 1
        self.on_loop += 1
        return outcomes

    def _transaction(self, items: list[T]) -> list[Any]:
        try:
            with self.engine.begin() as conn:
                outcomes = self.apply(conn, items)
            self.transactions += 1
            return outcomes
        except Regroup as exc:
            if len(items) == 1:
                return [RuntimeError(f"apply cannot regroup a single item: {exc}")]
        except Exception as exc:
            if len(items) == 1:
                return [exc]
        return [self._transaction([item])[0] for item in items]
