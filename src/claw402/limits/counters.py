"""Rate counters: one fixed-window count per (tenant, caller). In memory for one process;
in Redis (`CLAW402_REDIS_URL`) for replicas, where a Lua script takes a slot atomically
(never read-modify-write) and the key names the window, so every replica counts alike."""

from __future__ import annotations

import threading
import time
from typing import NamedTuple, Protocol

from claw402.limits.windows import fixed


class CountersDown(RuntimeError):
    """The shared counters cannot be reached: paid routes fail closed, free ones go on."""


class Hit(NamedTuple):
    """One call's take from its window (a tuple: made on every limited request)."""

    allowed: bool
    remaining: int
    reset: int  # seconds until the window ends


class RateCounters(Protocol):
    def hit(self, key: str, limit: int, window: int) -> Hit: ...

    def close(self) -> None: ...


class MemoryCounters:
    """One process's counters; stale windows are dropped when the table grows."""

    MAX_KEYS = 100_000

    def __init__(self, clock: object = time.time) -> None:
        self._clock = clock
        self._counts: dict[str, list[int]] = {}  # key -> [window index, count]
        self._lock = threading.Lock()

    def hit(self, key: str, limit: int, window: int) -> Hit:
        now: float = self._clock()  # type: ignore[operator]
        index = int(now // window)  # `windows.fixed`, inline: this runs on every request
        reset = (index + 1) * window - now
        reset = int(reset) + 1 if reset > int(reset) or reset < 1 else int(reset)
        with self._lock:
            slot = self._counts.get(key)
            if slot is None or slot[0] != index:
                if len(self._counts) >= self.MAX_KEYS:
                    self._prune()
                slot = self._counts[key] = [index, 0]
            if slot[1] >= limit:
                return Hit(False, 0, reset)
            slot[1] += 1
            # `Hit(...)` without its Python `__new__`: this runs on every limited request.
            return tuple.__new__(Hit, (True, limit - slot[1], reset))

    def _prune(self) -> None:
        now = self._clock()  # type: ignore[operator]
        self._counts = {k: v for k, v in self._counts.items() if v[0] >= int(now // 3600) - 1}
        if len(self._counts) >= self.MAX_KEYS:
            self._counts.clear()

    def close(self) -> None:
        self._counts.clear()


# KEYS[1] the window's key; ARGV[1] the limit, ARGV[2] the window in ms.
# Returns {allowed, count}: a full window is left as is, so refusals cost no write.
_TAKE = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= tonumber(ARGV[1]) then return {0, count} end
count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return {1, count}
"""


class RedisCounters:
    """Counters shared by every replica. A failed call marks Redis down for `retry_after`
    seconds (no connect attempt per request meanwhile); it recovers by itself."""

    def __init__(self, url: str, *, prefix: str = "claw402:", retry_after: float = 0.5) -> None:
        import redis  # only a gateway configured with Redis pays the import

        self.prefix = prefix
        self.client = redis.Redis.from_url(
            url, socket_timeout=0.25, socket_connect_timeout=0.25, health_check_interval=5
        )
        self._take = self.client.register_script(_TAKE)
        self._errors = (redis.RedisError, OSError)
        self._retry_after = retry_after
        self._down_until = 0.0

    def hit(self, key: str, limit: int, window: int) -> Hit:
        index, reset = fixed(time.time(), window)
        if time.monotonic() < self._down_until:
            raise CountersDown("redis unavailable")
        try:
            allowed, count = self._take(
                keys=[f"{self.prefix}r:{key}:{window}:{index}"], args=[limit, window * 1000 + 1000]
            )
        except self._errors as exc:
            self._down_until = time.monotonic() + self._retry_after
            raise CountersDown(f"redis unavailable: {exc}") from None
        return Hit(bool(allowed), max(0, limit - int(count)), reset)

    def close(self) -> None:
        self.client.close()
