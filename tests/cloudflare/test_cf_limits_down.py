"""The dispatch Worker when its limits Durable Objects fail: paid routes answer 503
`limits_unavailable` (nothing verified, nothing charged), free routes go on.

The objects fail for real, under workerd, with the production classes untouched: the edge
keeps its Durable Objects on disk (`LocalEdge(objects_dir=...)`), and the test removes one
class's folder once workerd has started, so every object of that class it opens next fails to
open its storage (`SQLITE_CANTOPEN`) and the dispatcher's call to it throws, as a call to an
object whose storage is unavailable throws on Cloudflare. Payments are real (anvil, the
project's facilitator); the facilitator records every request it is sent.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cfhelpers import wait_for
from edgepay import EdgeClient, encode, payment_config
from starlette.types import ASGIApp, Receive, Scope, Send

from claw402.chain.devchain import DevChain, start_dev_chain
from claw402.chain.token import usdc
from claw402.cloudflare.dispatcher import DispatcherOptions, build_dispatcher
from claw402.cloudflare.tenant import build_tenant
from claw402.cloudflare.workerd import LocalEdge
from claw402.config import Settings
from claw402.facilitator.app import create_app
from claw402.facilitator.settings import FacilitatorSettings
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.models import Tenant
from claw402.registry.store import Registry
from claw402.samples import CITIES
from claw402.serving import ServerThread

PRICE = usdc("0.01")
PAID = "/t/booked/v1/records?_limit=1"


class Recorded:
    """The facilitator app, keeping the path of every request it is sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


@dataclass
class Limits:
    chain: DevChain
    facilitator: Recorded
    tenants: list[Tenant]
    options: DispatcherOptions
    home: Path

    @contextmanager
    def edge(self, failing: str | None = None) -> Iterator[LocalEdge]:
        """The edge with its objects on disk; `failing` names the class whose storage is
        taken away once workerd is up."""
        objects = Path(tempfile.mkdtemp(prefix="objects-", dir=self.home))  # each edge its own
        dispatcher = build_dispatcher(self.tenants, self.options)
        workers = [build_tenant(t) for t in self.tenants]
        with LocalEdge(dispatcher, workers, objects_dir=objects) as edge:
            if failing is not None:
                folder = edge.object_folder(failing)
                assert folder.is_dir(), edge.log()  # workerd made it at start
                shutil.rmtree(folder)
            yield edge


@pytest.fixture(scope="module")
def limits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Limits]:
    """`booked`: priced, with a day quota (so a paid call takes from `TenantBooks`) and the
    plan's rate (`CallerRate`); `open`: free."""
    home = tmp_path_factory.mktemp("limits-down")
    with start_dev_chain(payers=1) as chain:
        facilitator = Recorded(
            create_app(
                FacilitatorSettings(
                    rpc_url=chain.rpc_url,
                    private_key=chain.facilitator.private_key,
                    network=chain.network,
                )
            )
        )
        with ServerThread(facilitator) as server:
            settings = Settings(home=home, database_url=f"sqlite:///{home / 'registry.sqlite3'}")
            registry = Registry.open(settings)
            tenants = [
                deploy(registry, settings, DeployRequest(source=CITIES, **spec))
                for spec in (
                    {"slug": "booked", "price": "0.01", "schemes": "exact", "quota_day": 50},
                    {"slug": "open", "price": "0"},
                )
            ]
            options = DispatcherOptions(payment=payment_config(chain, server.url))
            yield Limits(chain, facilitator, tenants, options, home)
            registry.close()


def signed_payment(limits: Limits) -> tuple[str, str]:
    """A funded wallet's address and its payment for one `booked` call, signed against a real
    402 of an edge whose objects work (one that fails cannot give the challenge)."""
    with limits.edge() as healthy:
        client = EdgeClient(limits.chain, healthy.url)
        wallet = client.payer()
        return wallet.address, encode(client.sign(wallet, "booked"))


def refused_as_unavailable(r: httpx.Response, tenant: Tenant) -> None:
    """The error shape and stamps of every dispatcher answer, with the limits' code."""
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["error"] == "limits_unavailable" and body["ok"] is False, body
    assert body["requestId"] == r.headers["x-request-id"]
    assert r.headers["x-tenant-id"] == tenant.tenant_id
    assert r.headers["retry-after"] == "1"
    assert body["detail"]  # what the object's failure said


def test_a_paid_call_is_served_and_settled_when_the_objects_work(limits):
    """The control: the same kind of payment, through objects kept on disk, is served and
    settled, and the facilitator sees it."""
    address, header = signed_payment(limits)
    before = limits.chain.balance(address)
    with limits.edge() as edge:
        limits.facilitator.paths.clear()
        r = httpx.get(edge.url + PAID, headers={"PAYMENT-SIGNATURE": header}, timeout=30)
    assert r.status_code == 200, r.text
    assert "/settle" in limits.facilitator.paths
    assert limits.chain.balance(address) == before - PRICE


@pytest.mark.parametrize("failing", ["CallerRate", "TenantBooks"])
def test_paid_routes_fail_closed_and_free_ones_answer_when_a_limits_object_fails(limits, failing):
    booked, free = limits.tenants
    address, header = signed_payment(limits)
    before = limits.chain.balance(address)
    with limits.edge(failing) as edge:
        limits.facilitator.paths.clear()
        paid = httpx.get(edge.url + PAID, headers={"PAYMENT-SIGNATURE": header}, timeout=30)
        refused_as_unavailable(paid, booked)
        if failing == "CallerRate":  # every priced call meets the rate first, 402s too
            refused_as_unavailable(httpx.get(edge.url + PAID, timeout=30), booked)
        schema = httpx.get(edge.url + "/t/booked/v1/schema", timeout=30)
        assert schema.status_code == 200 and schema.json()["tenant"] == "booked", schema.text
        assert schema.headers["x-tenant-id"] == booked.tenant_id
        rows = httpx.get(edge.url + "/t/open/v1/records?_limit=1", timeout=30)
        assert rows.status_code == 200 and len(rows.json()["items"]) == 1, rows.text
        assert rows.headers["x-tenant-id"] == free.tenant_id
        request_id = paid.headers["x-request-id"]
        events: list[dict[str, Any]] = wait_for(
            lambda: [e for e in edge.records("events") if e["requestId"] == request_id], 2
        )
    assert [(e["type"], e["status"], e["reason"]) for e in events][-1] == (
        "dispatch_failure",
        503,
        "limits_unavailable",
    )
    assert limits.facilitator.paths == []  # not verified, not settled
    assert limits.chain.balance(address) == before  # nothing charged
