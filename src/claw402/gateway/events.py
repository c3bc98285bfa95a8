"""A durable event sink that never sits on the request path.

`emit` appends to an in-memory queue; a daemon thread writes batches to the registry's events
table every `interval` seconds (or sooner when a batch fills). `close` flushes what is left.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger("claw402.events")

Writer = Callable[[Sequence[dict[str, Any]]], None]


class EventSink:
    def __init__(self, write: Writer, *, interval: float = 0.2, batch: int = 500) -> None:
        self._write = write
        self._interval = interval
        self._batch = batch
        self._queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="claw402-events", daemon=True)
        self._thread.start()

    def emit(self, record: dict[str, Any]) -> None:
        self._queue.put(record)

    def close(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            pending: list[dict[str, Any]] = []
            try:
                item = self._queue.get(timeout=self._interval)
            except queue.Empty:
                continue
            while item is not None:
                pending.append(item)
                if len(pending) >= self._batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            stopping = item is None
            self._flush(pending)

    def _flush(self, pending: list[dict[str, Any]]) -> None:
        if not pending:
            return
        for attempt in range(3):
            try:
                self._write(pending)
                return
            except Exception:  # the sink must outlive a busy database
                log.exception("writing %d events failed (attempt %d)", len(pending), attempt + 1)
        log.error("dropped %d events after 3 attempts", len(pending))
