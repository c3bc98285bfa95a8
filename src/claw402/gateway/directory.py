"""The gateway's view of the registry: a Directory snapshot, rebuilt when the generation moves.

Every deploy or remove bumps the registry's generation counter in the same transaction, so
reading that counter keeps a running gateway current without restarts. The read goes through
a dedicated autocommit DBAPI connection, far cheaper than a pooled SQLAlchemy connection (the
numbers are in docs/architecture.md), and happens at most once per `min_interval`: a database
call releases the GIL, and getting it back from a busy thread (the event writer) can cost far
more than the read. A caller that misses a tenant asks again with `force=True`, so a new tenant is
routable at once; an update or a removal shows within the interval. A registry that cannot be
read (its database down) leaves the last snapshot serving, tried again every `RETRY_DOWN`:
what needs no database goes on (free data, 402s); paid calls fail closed in their own steps
(the usage books, the paywall's claims).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from claw402.dispatch.naming import InvalidName, normalize_host
from claw402.dispatch.routing import Directory
from claw402.registry.models import Tenant
from claw402.registry.store import Registry

_GENERATION_SQL = "SELECT generation FROM registry_state WHERE id = 1"
log = logging.getLogger("claw402.gateway")


class LiveDirectory:
    MIN_INTERVAL = 0.01
    RETRY_DOWN = 1.0  # seconds between attempts while the registry cannot be read

    def __init__(
        self,
        registry: Registry,
        *,
        min_interval: float = MIN_INTERVAL,
        reserved_hosts: Iterable[str] = (),
    ) -> None:
        self._registry = registry
        self._reserved = frozenset(reserved_hosts)
        self._min_interval = min_interval
        self._checked = float("-inf")
        self._down_until = float("-inf")
        self._lock = threading.Lock()
        self._generation = -1
        self._directory: Directory[Tenant] = Directory()
        self._raw: Any = None

    def current(self, *, force: bool = False) -> Directory[Tenant]:
        now = time.monotonic()
        if now < self._down_until:  # the registry is unreachable: the last snapshot
            return self._directory
        if force or now - self._checked >= self._min_interval:
            self._checked = now
            if self._read_generation() != self._generation:
                try:
                    self._reload()
                except Exception:
                    if self._generation < 0:  # nothing loaded yet: nothing to serve
                        raise
                    self._down_until = now + self.RETRY_DOWN
                    log.warning(
                        "the registry is unreachable: serving its tenants as of generation "
                        "%s, trying again in %s s", self._generation, self.RETRY_DOWN,
                        exc_info=True,
                    )  # fmt: skip
        return self._directory

    def expire(self) -> None:
        """Check the generation on the next request (a replica heard of a change)."""
        self._checked = float("-inf")

    def set_interval(self, seconds: float) -> None:
        """How often the generation is checked (longer while pub/sub announces changes)."""
        self._min_interval = seconds

    def close(self) -> None:
        with self._lock:
            if self._raw is not None:
                self._raw.close()
                self._raw = None

    def _read_generation(self) -> int:
        with self._lock:
            try:
                if self._raw is None:
                    self._raw = self._connect()
                cursor = self._raw.cursor()
                try:
                    cursor.execute(_GENERATION_SQL)
                    return int(cursor.fetchone()[0])
                finally:
                    cursor.close()
            except Exception:
                # A dropped connection (database restart): reconnect on the next request and
                # force a reload now, which raises if the registry really is unreachable.
                if self._raw is not None:
                    self._raw.invalidate()
                self._raw = None
                return -2

    def _connect(self) -> Any:
        raw = self._registry.engine.raw_connection()
        driver = raw.driver_connection
        if hasattr(driver, "autocommit"):
            driver.autocommit = True  # psycopg: no transaction left open between reads
        else:
            driver.isolation_level = None  # sqlite3: every statement sees the latest commit
        return raw

    def _reload(self) -> None:
        generation, tenants = self._registry.snapshot()
        with self._lock:
            if generation != self._generation:
                self._directory = Directory((t.entry() for t in tenants), skip_host=self._refused)
                self._generation = generation

    def _refused(self, host: str) -> bool:
        """A host no tenant may route by, whatever the registry holds (an IP literal, a
        loopback name, a reserved or the gateway's own name, claimed before those rules)."""
        try:
            normalize_host(host, self._reserved)
        except InvalidName:
            return True
        return False
