"""One contract, two runtimes: every test taking `runtime` runs against both.

- `gateway`: the ASGI gateway (`claw402.gateway.app.Gateway`) on uvicorn on a free port.
- `workerd`: the generated dispatch Worker and user Workers under real workerd, with the
  dispatch-namespace shim.
- `workerd-r2`: the same, every tenant's rows served from R2 (`cloudflare.storage`) in chunks
  small enough that each dataset spans several (a workerd disk service holds the bucket).

Both serve the same registry: the tenants in `CONTRACT_TENANTS`, deployed once per session
through `claw402.registry.deploy.deploy`. To extend the contract, add a tenant there (it is
built into a user Worker automatically) and write tests against `runtime.get(...)`,
`runtime.events(request_id)` and the tenants in `runtime.tenants`; assert only what both
runtimes must agree on.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from claw402.cloudflare.dispatcher import build_dispatcher
from claw402.cloudflare.storage import stored_tenant
from claw402.cloudflare.tenant import build_tenant
from claw402.cloudflare.workerd import LocalEdge
from claw402.config import Settings
from claw402.events.sink import EventSink
from claw402.events.store import EventStore
from claw402.gateway.app import Gateway
from claw402.limits.caller import Callers, parse_proxies
from claw402.limits.counters import MemoryCounters
from claw402.limits.limiter import Limiter
from claw402.limits.usage import UsageBooks
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.models import Tenant
from claw402.registry.store import Registry
from claw402.samples import CITIES
from claw402.serving import ServerThread

CONTRACT_TENANTS: list[dict[str, Any]] = [
    {
        "slug": "cities",
        "source": CITIES,
        "price": "0",
        "plan": "pro",
        "key": "id",
        "hosts": ["cities.contract.test"],
        "name": "World cities",
        "description": "Fifty large cities",
    },
    {"slug": "nokey", "source": CITIES, "price": "0", "plan": "quarantine", "cpu_ms": 40},
    {"slug": "paid", "source": CITIES, "price": "0.0025", "plan": "business", "key": "id"},
]


_CLIENTS = itertools.count(1)


@dataclass
class Runtime:
    name: str
    url: str
    registry: Registry
    tenants: dict[str, Tenant]
    client: httpx.Client
    read_events: Callable[[], list[dict[str, Any]]] = field(repr=False)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """A GET from a client address of its own (as many callers would send), so the rate
        limits, on in both runtimes, never refuse this suite's bursts: the gateway takes it
        from `X-Forwarded-For` (a trusted local proxy), the edge from `CF-Connecting-IP`."""
        headers = dict(kwargs.pop("headers", None) or {})
        n = next(_CLIENTS)
        address = f"198.18.{n // 256 % 256}.{n % 256}"  # the benchmarking range (RFC 2544)
        headers.setdefault("x-forwarded-for", address)
        headers.setdefault("cf-connecting-ip", address)
        return self.client.get(path, headers=headers, **kwargs)

    def events(self, request_id: str, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The lifecycle events of one request, once `count` of them reached the sink."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.read_events() if e.get("requestId") == request_id]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)


@dataclass
class ContractHome:
    settings: Settings
    registry: Registry
    tenants: dict[str, Tenant]


@pytest.fixture(scope="session")
def contract_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContractHome]:
    home: Path = tmp_path_factory.mktemp("contract")
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'registry.sqlite3'}")
    registry = Registry.open(settings)
    tenants = {
        spec["slug"]: deploy(registry, settings, DeployRequest(**spec)) for spec in CONTRACT_TENANTS
    }
    yield ContractHome(settings, registry, tenants)
    registry.close()


def _gateway(home: ContractHome) -> Iterator[Runtime]:
    sink = EventSink.in_process(home.registry.engine, interval=0.02)
    # Limits on, as in the dispatch Worker (their own contract: test_limits.py).
    callers = Callers(parse_proxies("127.0.0.1"))
    limiter = Limiter(MemoryCounters(), UsageBooks(home.registry.engine), callers)
    gateway = Gateway(home.registry, sink=sink, limiter=limiter)
    gateway.junk.events_per_minute = 10**9  # every miss's event, as the Worker sends them
    with ServerThread(gateway) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        yield Runtime(
            "gateway",
            server.url,
            home.registry,
            home.tenants,
            client,
            lambda: EventStore(home.registry.engine).read_events(limit=10_000),
        )


def _workerd(home: ContractHome) -> Iterator[Runtime]:
    tenants = list(home.tenants.values())
    with (
        LocalEdge(build_dispatcher(tenants), [build_tenant(t) for t in tenants]) as edge,
        httpx.Client(base_url=edge.url, timeout=10) as client,
    ):
        yield Runtime(
            "workerd", edge.url, home.registry, home.tenants, client, lambda: edge.records("events")
        )


R2_CHUNK_BYTES = 1024  # ~8 chunks of the 50 cities: pages, sorts and cursors cross chunks


def _workerd_r2(home: ContractHome) -> Iterator[Runtime]:
    tenants = list(home.tenants.values())
    bundles, objects = [], {}
    for tenant in tenants:
        bundle, stored = stored_tenant(tenant, "claw402-data", R2_CHUNK_BYTES)
        assert len(stored.objects) > 2
        bundles.append(bundle)
        objects.update(stored.objects)
    with (
        LocalEdge(build_dispatcher(tenants), bundles, r2={"claw402-data": objects}) as edge,
        httpx.Client(base_url=edge.url, timeout=10) as client,
    ):
        yield Runtime(
            "workerd-r2",
            edge.url,
            home.registry,
            home.tenants,
            client,
            lambda: edge.records("events"),
        )


RUNTIMES = {"gateway": _gateway, "workerd": _workerd, "workerd-r2": _workerd_r2}


@pytest.fixture(scope="module", params=list(RUNTIMES))
def runtime(request: pytest.FixtureRequest, contract_home: ContractHome) -> Iterator[Runtime]:
    yield from RUNTIMES[request.param](contract_home)
