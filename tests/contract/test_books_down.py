"""Usage books that fail, the same answer on both runtimes: a call that needs them (a records
call with a payment header, to a tenant with a quota) is refused 503 `limits_unavailable`
with Retry-After and the rate's headers, before the paywall; the tenant's free routes answer.

Each runtime's books fail for real: the gateway's SQLite file is held by another writer past
the books' busy timeout (their own engine on the file, 0.2 s); the edge's `TenantBooks`
storage folder is removed once workerd runs (`LocalEdge(objects_dir=...)`). The payment
header is never looked at past the limits step, so no chain is needed.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from claw402.cloudflare.dispatcher import build_dispatcher
from claw402.cloudflare.tenant import build_tenant
from claw402.cloudflare.workerd import LocalEdge
from claw402.config import Settings
from claw402.events.sink import EventSink
from claw402.events.store import EventStore
from claw402.gateway.app import Gateway
from claw402.limits.counters import MemoryCounters
from claw402.limits.limiter import Limiter
from claw402.limits.usage import UsageBooks
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.models import Tenant
from claw402.registry.store import Registry
from claw402.samples import CITIES
from claw402.serving import ServerThread

PAID = "/t/quota/v1/records?_limit=1"


@dataclass
class Broken:
    """One runtime whose books fail inside `down()`."""

    url: str
    tenant: Tenant
    down: Callable[[], Any]  # a context manager
    events: Callable[[str], list[dict[str, Any]]]


@pytest.fixture(params=["gateway", "workerd"])
def broken(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broken]:
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    registry = Registry.open(settings)
    spec = {"source": CITIES, "slug": "quota", "price": "0.01", "quota_day": 5}
    tenant = deploy(registry, settings, DeployRequest(**spec))  # type: ignore[arg-type]
    try:
        if request.param == "gateway":
            yield from _gateway(registry, tenant, tmp_path / "registry.sqlite3")
        else:
            yield from _workerd(tenant, tmp_path / "objects")
    finally:
        registry.close()


def _gateway(registry: Registry, tenant: Tenant, path: Path) -> Iterator[Broken]:
    quick = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.2})
    limiter = Limiter(MemoryCounters(), UsageBooks(quick))
    sink = EventSink.in_process(registry.engine, interval=0.02)
    store = EventStore(registry.engine)

    @contextmanager
    def down() -> Iterator[None]:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()

    with ServerThread(Gateway(registry, sink=sink, limiter=limiter)) as server:
        yield Broken(server.url, tenant, down, lambda rid: store.read_events(request_id=rid))
    sink.close()
    quick.dispose()


def _workerd(tenant: Tenant, objects: Path) -> Iterator[Broken]:
    with LocalEdge(build_dispatcher([tenant]), [build_tenant(tenant)], objects_dir=objects) as edge:

        @contextmanager
        def down() -> Iterator[None]:
            shutil.rmtree(edge.object_folder("TenantBooks"))
            yield

        def events(request_id: str) -> list[dict[str, Any]]:
            return [e for e in edge.records("events") if e["requestId"] == request_id]

        yield Broken(edge.url, tenant, down, events)


def _events(broken: Broken, request_id: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while not (found := broken.events(request_id)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def test_books_down_refuse_paid_calls_alike(broken: Broken) -> None:
    with broken.down():
        r = httpx.get(broken.url + PAID, headers={"PAYMENT-SIGNATURE": "eyJ4NDAy"}, timeout=30)
        schema = httpx.get(broken.url + "/t/quota/v1/schema", timeout=30)
    assert r.status_code == 503, r.text
    body = r.json()
    assert set(body) == {"ok", "error", "requestId", "detail"} and body["ok"] is False
    assert body["error"] == "limits_unavailable" and body["requestId"] == r.headers["x-request-id"]
    assert r.headers["retry-after"] == "1"
    assert r.headers["x-tenant-id"] == broken.tenant.tenant_id
    assert r.headers["ratelimit-policy"] == '"rate";q=300;w=1'  # it passed the rate
    assert schema.status_code == 200 and schema.json()["tenant"] == "quota"
    last = _events(broken, r.headers["x-request-id"])[-1]
    assert (last["type"], last["status"], last["reason"]) == (
        "dispatch_failure",
        503,
        "limits_unavailable",
    )
    assert last["details"]["steps"] == ["resolve", "limits"]
