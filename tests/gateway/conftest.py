"""A real gateway on uvicorn over a real registry and real DuckDB files."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from claw402.config import Settings
from claw402.events.sink import EventSink
from claw402.gateway.app import Gateway
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.models import Tenant
from claw402.registry.store import Registry
from claw402.samples import CITIES
from claw402.serving import ServerThread


@dataclass
class Served:
    settings: Settings
    registry: Registry
    gateway: Gateway
    client: httpx.Client

    def deploy(self, source: Path = CITIES, **kw: object) -> Tenant:
        return deploy(self.registry, self.settings, DeployRequest(source=source, **kw))  # type: ignore[arg-type]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    registry = Registry.open(settings)
    gateway = Gateway(registry, sink=EventSink.in_process(registry.engine, interval=0.02))
    with ServerThread(gateway) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        yield Served(settings, registry, gateway, client)
    registry.close()


@pytest.fixture(scope="module")
def served_cities(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One free, keyed cities tenant shared by a module's read-only tests."""
    tmp_path = tmp_path_factory.mktemp("gw")
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    registry = Registry.open(settings)
    gateway = Gateway(registry)
    with ServerThread(gateway) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        served = Served(settings, registry, gateway, client)
        served.deploy(slug="cities", price="0", key="id")
        yield served
    registry.close()
