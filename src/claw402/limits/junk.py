"""Traffic no tenant answers (unknown tenants, scanners): counted per UTC minute and reason,
with a few sampled paths, instead of one durable event row per request. A gateway keeps the
counts in memory and adds them to `junk_traffic` every few seconds (an upsert that adds, so
replicas sharing the database add up); the first few requests a minute still get their
lifecycle event, so `402claw events` shows what the misses look like."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine, select

from claw402.clock import now as utc_now
from claw402.limits.schema import junk_traffic
from claw402.limits.windows import minute

SAMPLES = 5  # paths kept per (minute, reason)
EVENTS_PER_MINUTE = 5  # misses a minute that still get their own event row


class JunkCounter:
    def __init__(
        self,
        engine: Engine,
        *,
        interval: float = 2.0,
        events_per_minute: int = EVENTS_PER_MINUTE,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.engine = engine
        self.events_per_minute = events_per_minute
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], list[object]] = {}  # -> [count, samples]
        self._evented: dict[str, int] = {}  # minute -> events let through
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def count(self, reason: str, host: str | None, path: str) -> bool:
        """Count one miss; True when it should also get its own event (a sample)."""
        label = minute(self._clock())
        with self._lock:
            slot = self._counts.get((label, reason))
            if slot is None:
                slot = self._counts[(label, reason)] = [0, []]
            slot[0] = int(slot[0]) + 1  # type: ignore[call-overload]
            samples: list[str] = slot[1]  # type: ignore[assignment]
            if len(samples) < SAMPLES:
                samples.append(f"{host or ''}{path[:200]}")
            if label not in self._evented:
                self._evented = {label: 0}
            sampled = self._evented[label] < self.events_per_minute
            if sampled:
                self._evented[label] += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="claw402-junk",
                                                daemon=True)  # fmt: skip
                self._thread.start()
        return sampled

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, {}
        if not counts:
            return
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        with self.engine.begin() as conn:
            for (label, reason), (count, samples) in sorted(counts.items()):
                stmt = insert(junk_traffic).values(minute=label, reason=reason, count=count,
                                                   samples=samples)  # fmt: skip
                conn.execute(stmt.on_conflict_do_update(
                    index_elements=["minute", "reason"],
                    set_={"count": junk_traffic.c.count + stmt.excluded.count},
                ))  # fmt: skip

    def totals(self) -> dict[str, int]:
        """Misses by reason, as stored (what `flush` has written)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(junk_traffic.c.reason, junk_traffic.c.count)).all()
        found: dict[str, int] = {}
        for reason, count in rows:
            found[reason] = found.get(reason, 0) + int(count)
        return found

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except Exception:  # a database hiccup: the counts are lost, never the gateway
                continue
