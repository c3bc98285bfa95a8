"""A durable event sink that never sits on the request path.

`emit` appends one request's trail (its events in their compact form, in order:
`claw402.events.compact.compact`) to a plain list; a daemon thread takes that list every
`interval` seconds and writes it to the events table, one row per trail
(`EventStore.write_compact_trails`), in transactions of at most `batch` trails;
`EventSink.in_child` hands those writes to a child process (`claw402.events.writer`). `close`
flushes what is left.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from claw402.events.compact import Trail

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger("claw402.events")

Writer = Callable[[Sequence[Trail]], None]  # e.g. EventStore.write_compact_trails


class EventSink:
    def __init__(
        self,
        write: Writer,
        *,
        interval: float = 0.2,
        batch: int = 500,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        """`write` takes a batch of trails as queued (compact tuples)."""
        self._write = write
        self._on_close = on_close
        self._interval = interval
        self._batch = batch
        self._pending: list[Trail] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="claw402-events", daemon=True)
        self._thread.start()

    def emit(self, trail: Trail) -> None:
        """Queue one request's events (written as one row); never blocks.

        A list append (atomic under the GIL) instead of a queue's put: the request path takes
        no lock, and the writer takes everything queued in one swap instead of one `get` per
        request.
        """
        self._pending.append(trail)

    @property
    def backlog(self) -> int:
        """Trails queued and not yet handed to the writer."""
        return len(self._pending)

    @classmethod
    def in_process(cls, engine: Engine, **options: Any) -> EventSink:
        """A sink writing to `engine`'s events table from its own thread."""
        from claw402.events.store import EventStore

        return cls(EventStore(engine).write_compact_trails, **options)

    @classmethod
    def in_child(cls, engine: Engine, **options: Any) -> EventSink:
        """A sink whose database writes happen in a child process (`claw402.events.writer`):
        what `402claw serve` runs, where the writes would otherwise compete for the GIL."""
        from claw402.events.store import EventStore
        from claw402.events.writer import ChildWriter

        writer = ChildWriter(EventStore(engine))
        return cls(writer, on_close=writer.close, **options)

    def close(self, timeout: float = 10.0) -> None:
        self._closing.set()
        self._thread.join(timeout)
        if self._on_close is not None:
            self._on_close()

    def _run(self) -> None:
        """Every `interval`, write what has queued: one transaction per interval however many
        requests came. Writing as soon as anything arrived meant a transaction per request,
        and a writer thread that takes the GIL and a core from the requests it records."""
        while not self._closing.wait(self._interval):
            self._drain()
        self._drain()

    def _drain(self) -> None:
        # One swap: an `emit` racing it lands in the list taken here or in the new one.
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), self._batch):
            write_patiently(self._write, pending[start : start + self._batch])


def write_patiently(write: Writer, trails: Sequence[Trail], attempts: int = 3) -> None:
    """Write, trying again on any error: whoever writes events must outlive a busy database,
    and events it cannot write are logged and dropped, never raised into its loop."""
    for attempt in range(attempts):
        try:
            write(trails)
            return
        except Exception:
            log.exception("writing %d trails failed (attempt %d)", len(trails), attempt + 1)
    log.error("dropped %d trails of events after %d attempts", len(trails), attempts)
