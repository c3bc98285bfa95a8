"""One thread that interrupts DuckDB cursors whose deadline passed (a Timer per query costs
more than a heap shared by all of them)."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from dataclasses import dataclass, field

import duckdb

_REINTERRUPT_S = 0.005


@dataclass(order=True)
class _Deadline:
    at: float
    token: int
    cursor: duckdb.DuckDBPyConnection = field(compare=False)


class Watchdog:
    """One thread interrupting cursors whose deadline passed (a Timer per query costs more)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[_Deadline] = []
        self._armed: set[int] = set()
        self._tokens = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._stopped = False

    def arm(self, seconds: float, cursor: duckdb.DuckDBPyConnection) -> int:
        with self._cond:
            token = next(self._tokens)
            self._armed.add(token)
            heapq.heappush(self._heap, _Deadline(time.monotonic() + seconds, token, cursor))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="duckdb-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify()
            return token

    def disarm(self, token: int) -> None:
        with self._cond:
            self._armed.discard(token)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _loop(self) -> None:
        with self._cond:
            while not self._stopped:
                while self._heap and self._heap[0].token not in self._armed:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0].at - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                # Interrupt, and again every few ms until the call disarms: an interrupt that
                # lands before DuckDB starts executing is otherwise lost.
                deadline = heapq.heapreplace(
                    self._heap,
                    _Deadline(
                        time.monotonic() + _REINTERRUPT_S, self._heap[0].token, self._heap[0].cursor
                    ),
                )
                with contextlib.suppress(duckdb.Error):
                    deadline.cursor.interrupt()
