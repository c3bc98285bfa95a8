"""The dispatch Worker when its limits Durable Objects fail: paid routes answer 503
`limits_unavailable` (nothing verified, nothing charged), free routes go on.

The objects fail for real, under workerd, with the production classes untouched: the edge
keeps its Durable Objects on disk (`LocalEdge(objects_dir=...)`), and the test removes one
class's folder once workerd has started, so every object of that class it opens next fails to
open its storage (`SQLITE_CANTOPEN`) and the dispatcher's call to it throws, as a call to an
object whose storage is unavailable throws on Cloudflare. Payments are real (anvil, the
project's facilitator); the facilitator records every request it is sent.

Past the limits step, an exception no step answers (here the paywall's `PaymentClaims` failing
the same way) is answered 502 `tenant_worker_failure` in the usual shape, and a give-back of
usage slots that fails (the objects' disk filled up while the payment was being verified: a
tmpfs mounted for the test, skipped where mounting is not allowed) keeps the answer the call
earned.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
from cfhelpers import wait_for
from edgepay import EdgeClient, encode, payment_config
from starlette.types import ASGIApp, Receive, Scope, Send

from claw402.chain.devchain import DevChain, start_dev_chain
from claw402.chain.token import usdc
from claw402.chain.wallet import Wallet
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
from errorshape import assert_limits_unavailable

PRICE = usdc("0.01")
PAID = "/t/booked/v1/records?_limit=1"


class Recorded:
    """The facilitator app, keeping the path of every request it is sent; while `hold` is
    set, each `/verify` waits until it is released (`verifying` tells one arrived)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.paths: list[str] = []
        self.hold: threading.Event | None = None
        self.verifying = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
            if scope["path"] == "/verify" and self.hold is not None:
                self.verifying.set()
                await anyio.to_thread.run_sync(self.hold.wait, 30)
        await self.app(scope, receive, send)


@dataclass
class Limits:
    chain: DevChain
    facilitator: Recorded
    tenants: list[Tenant]
    options: DispatcherOptions
    home: Path

    @contextmanager
    def edge(self, failing: str | None = None, small: str | None = None) -> Iterator[LocalEdge]:
        """The edge with its objects on disk; `failing` names the class whose storage is
        taken away once workerd is up, `small` one whose folder is a 4 MB disk of its own."""
        objects = Path(tempfile.mkdtemp(prefix="objects-", dir=self.home))  # each edge its own
        dispatcher = build_dispatcher(self.tenants, self.options)
        workers = [build_tenant(t) for t in self.tenants]
        edge = LocalEdge(dispatcher, workers, objects_dir=objects)
        with small_disk(edge.object_folder(small) if small else None), edge:
            if failing is not None:
                folder = edge.object_folder(failing)
                assert folder.is_dir(), edge.log()  # workerd made it at start
                shutil.rmtree(folder)
            yield edge


@pytest.fixture(scope="module")
def limits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Limits]:
    """`booked`: priced, with a day quota (so a paid call takes from `TenantBooks`) and the
    plan's rate (`CallerRate`); `open`: free; `single`: priced, one call a day."""
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
                    {"slug": "single", "price": "0.01", "schemes": "exact", "quota_day": 1},
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
    assert_limits_unavailable(r, tenant.tenant_id)


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
    booked, free, _ = limits.tenants
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


def test_an_exception_no_step_answers_is_a_502_in_the_usual_shape(limits):
    """The paywall's claims object fails to open: the exception leaves the guard step, and the
    dispatcher answers as the gateway answers an exception in a tenant call (app.py)."""
    booked = limits.tenants[0]
    address, header = signed_payment(limits)
    before = limits.chain.balance(address)
    with limits.edge("PaymentClaims") as edge:
        limits.facilitator.paths.clear()
        r = httpx.get(edge.url + PAID, headers={"PAYMENT-SIGNATURE": header,
                                                "x-request-id": "probe-7"}, timeout=30)  # fmt: skip
        assert r.status_code == 502, r.text
        assert r.json() == {"ok": False, "error": "tenant_worker_failure",
                            "requestId": r.headers["x-request-id"]}  # fmt: skip
        assert r.headers["x-tenant-id"] == booked.tenant_id
        assert r.headers["x-correlation-id"] == "probe-7"
        assert r.headers["access-control-allow-origin"] == "*"
        request_id = r.headers["x-request-id"]
        events = wait_for(
            lambda: [e for e in edge.records("events") if e["requestId"] == request_id], 2
        )
        assert "usage slots not given back" not in edge.log()  # its slot went back
    last = events[-1]
    assert (last["type"], last["status"]) == ("dispatch_failure", 502), events
    assert last["reason"].startswith("Error: internal error"), last  # workerd's words
    assert last["details"]["steps"] == ["resolve", "limits", "guard"]
    assert limits.facilitator.paths == []  # never claimed, so never verified nor settled
    assert limits.chain.balance(address) == before


@contextmanager
def small_disk(folder: Path | None) -> Iterator[None]:
    """A 4 MB tmpfs mounted on `folder` (none if None), unmounted once the edge stopped."""
    if folder is None:
        yield
        return
    folder.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(folder: Path) -> Path:
    """Write until the disk is full; the filler's path."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"x" * 65536)
    except OSError:
        pass  # ENOSPC
    finally:
        os.close(fd)
    return filler


def test_a_give_back_that_fails_keeps_the_answer_the_call_earned(limits):
    """A wallet with no money pays `single`: its slot is taken, then the disk fills while the
    facilitator verifies, the facilitator refuses the payment, and `TenantBooks.giveBack`
    fails (SQLITE_FULL). The caller still gets the refusal it earned, stamped; the slot stays
    taken, so the day's one call is gone (the safe side) and a good payment is refused 429
    before anything is verified or charged."""
    single = limits.tenants[2]
    path = "/t/single/v1/records?_limit=1"
    with limits.edge(small="TenantBooks") as edge:
        disk = edge.object_folder("TenantBooks")
        client = EdgeClient(limits.chain, edge.url)
        broke = encode(client.sign(Wallet.create(), "single"))
        good_payer = client.payer()
        good = encode(client.sign(good_payer, "single"))
        limits.facilitator.hold = threading.Event()
        limits.facilitator.verifying.clear()
        answers: list[httpx.Response] = []
        call = threading.Thread(
            target=lambda: answers.append(
                httpx.get(edge.url + path, headers={"PAYMENT-SIGNATURE": broke}, timeout=60)
            )
        )
        call.start()
        try:
            assert limits.facilitator.verifying.wait(20), edge.log()
            filler = fill(disk)
        finally:
            limits.facilitator.hold.set()
            call.join(60)
            limits.facilitator.hold = None
        (refused,) = answers
        filler.unlink()
        assert refused.status_code == 402, refused.text
        body = refused.json()
        assert (
            body["error"] == "payment_invalid"
            and body["requestId"] == refused.headers["x-request-id"]
        )
        assert refused.headers["x-tenant-id"] == single.tenant_id
        assert (
            "payment-required" in refused.headers and refused.headers["cache-control"] == "no-store"
        )
        request_id = refused.headers["x-request-id"]
        events = wait_for(
            lambda: [e for e in edge.records("events") if e["requestId"] == request_id], 2
        )
        assert "SQLITE_FULL" in events[-1]["details"]["booksKept"], events
        before = limits.chain.balance(good_payer.address)
        limits.facilitator.paths.clear()
        over = httpx.get(edge.url + path, headers={"PAYMENT-SIGNATURE": good}, timeout=30)
        assert over.status_code == 429 and over.json()["error"] == "usage_quota_exceeded", over.text
        assert limits.facilitator.paths == []
        assert limits.chain.balance(good_payer.address) == before
