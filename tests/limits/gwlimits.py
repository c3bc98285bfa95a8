"""A real gateway (uvicorn in a thread) over a real registry, for the limits tests (a uniquely
named module, not conftest: test folders share the module name `conftest`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from claw402.config import Settings
from claw402.events.sink import EventSink
from claw402.gateway.app import Gateway
from claw402.registry.store import Registry
from claw402.serving import ServerThread


@contextmanager
def open_gateway(
    tmp_path: Path, database_url: str | None = None, **gateway: Any
) -> Iterator[tuple[Settings, Registry, Gateway, httpx.Client]]:
    db = database_url or f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    settings = Settings(home=tmp_path, database_url=db)
    registry = Registry.open(settings)
    app = Gateway(registry, sink=EventSink.in_process(registry.engine, interval=0.02), **gateway)
    try:
        with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=10) as client:
            yield settings, registry, app, client
    finally:
        registry.close()
