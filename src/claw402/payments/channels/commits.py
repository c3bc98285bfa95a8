"""`GroupCommit`: the writes of many concurrent requests in one database transaction.

A durable commit costs far more than the few statements of a voucher (an fsync on
PostgreSQL; a thread hop even on SQLite), so while one transaction is being committed the
next requests queue, and then all of them go in the next transaction together: the cost of
a commit is shared by every request waiting for it, and each request is answered only after
the transaction holding its write has committed. One drain runs at a time per instance (per
event loop), so the writes of one instance never contend with each other.

A write that raises would abort the transaction of the others: then each write of that
group is run again in a transaction of its own, so a failure is only its own request's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import anyio
from sqlalchemy import Connection, Engine

Work = Callable[[Connection], bool]

__all__ = ["GroupCommit", "Work"]


class GroupCommit:
    """`await commit(work)` runs `work(conn)` in a shared transaction, after it committed."""

    def __init__(self, engine: Engine, *, most: int = 256) -> None:
        self.engine = engine
        self.most = most
        self._queue: list[tuple[Work, asyncio.Future[bool]]] = []
        self._drain: asyncio.Task[None] | None = None
        self.transactions = 0  # committed so far (a gauge: writes per transaction)

    async def commit(self, work: Work) -> bool:
        """`work`'s result once its transaction committed; its exception if it raised."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((work, future))
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self._run())
        return await future

    async def _run(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.most], self._queue[self.most :]
                try:
                    outcomes = await anyio.to_thread.run_sync(
                        self._transaction, [work for work, _ in batch]
                    )
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

    def _transaction(self, works: list[Work]) -> list[Any]:
        try:
            with self.engine.begin() as conn:
                outcomes = [work(conn) for work in works]
            self.transactions += 1
            return outcomes
        except Exception as exc:
            if len(works) == 1:
                return [exc]
        return [self._transaction([work])[0] for work in works]
