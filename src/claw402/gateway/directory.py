"""The gateway's view of the registry: a Directory snapshot, rebuilt when the generation moves.

Every deploy or remove bumps the registry's generation counter in the same transaction, so
one cheap indexed read per request keeps a running gateway exactly current without restarts.
"""

from __future__ import annotations

import threading

from claw402.dispatch.routing import Directory
from claw402.registry.store import Registry


class LiveDirectory:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._lock = threading.Lock()
        self._generation = -1
        self._directory = Directory()

    def current(self) -> Directory:
        if self._registry.generation() != self._generation:
            self._reload()
        return self._directory

    def _reload(self) -> None:
        with self._lock:
            generation, tenants = self._registry.snapshot()
            if generation != self._generation:
                self._directory = Directory(t.route() for t in tenants)
                self._generation = generation
