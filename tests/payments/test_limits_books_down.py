"""The gateway when its usage books (the database) fail, with real failures and real payments
(anvil, the facilitator, the paywall): a paid call that needs the books answers 503
`limits_unavailable` with Retry-After, nothing claimed, verified or charged, while free routes
answer; a give-back that fails keeps the answer the call earned; a registry that cannot be read
leaves a running gateway on its last directory (free routes answer, paid calls fail closed),
and a gateway that never read it answers a JSON 500 `internal_error` with the request id.

- SQLite: another connection holds `BEGIN IMMEDIATE` past the books' busy timeout, so SQLite
  itself answers "database is locked". The books wait 0.2 s here (`UsageBooks(wait=)`; `serve`
  gives them `BOOKS_WAIT`, the registry's own engine waits 30 s).
- PostgreSQL (a schema of its own; skipped without a server): the books as `serve` makes
  them; another transaction holds their row past their `lock_timeout`, or their connection is
  killed (`pg_terminate_backend`) while it waits, or their role loses its login and its
  connections are killed.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
import sqlalchemy as sa
from paidstack import Stack, encode, nonce_of
from starlette.types import ASGIApp, Receive, Scope, Send
from x402.http.utils import decode_payment_required_header

from claw402.chain.token import usdc
from claw402.chain.wallet import Wallet
from claw402.clock import now
from claw402.config import Settings
from claw402.events.sink import EventSink
from claw402.events.store import EventStore
from claw402.facilitator.app import create_app
from claw402.facilitator.settings import FacilitatorSettings
from claw402.gateway.app import Gateway
from claw402.limits import windows
from claw402.limits.counters import MemoryCounters
from claw402.limits.limiter import Limiter
from claw402.limits.usage import UsageBooks
from claw402.payments.paywall import Paywall
from claw402.registry.db import make_engine
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.models import Tenant
from claw402.registry.store import Registry
from claw402.samples import CITIES
from claw402.serving import ServerThread
from errorshape import assert_limits_unavailable

POSTGRES_URL = os.environ.get("CLAW402_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
PRICE = usdc("0.01")


def _tenant(registry: Registry, settings: Settings, slug: str, **extra: Any) -> Tenant:
    spec: dict[str, Any] = {"source": CITIES, "slug": slug, "price": "0.01", "schemes": "exact"}
    return deploy(registry, settings, DeployRequest(**{**spec, **extra}))


def _serve(registry: Registry, paywall: Paywall, books: UsageBooks) -> ServerThread:
    sink = EventSink.in_process(registry.engine, interval=0.02)
    limiter = Limiter(MemoryCounters(), books)
    return ServerThread(Gateway(registry, guard=paywall, sink=sink, limiter=limiter)).start()


def _unavailable(r: httpx.Response, tenant: Tenant, cause: str) -> None:
    """The shape and stamps of every gateway error, with the limits' code."""
    assert_limits_unavailable(r, tenant.tenant_id, cause)


def _last_event(engine: sa.Engine, request_id: str) -> dict[str, Any]:
    store = EventStore(engine)
    deadline = time.monotonic() + 10
    while True:
        found = store.read_events(request_id=request_id)
        if found or time.monotonic() > deadline:
            assert found, f"no events for {request_id}"
            return found[-1]
        time.sleep(0.05)


def _used(books: UsageBooks, tenant: Tenant) -> int:
    return books.used(tenant.tenant_id, "calls_day", windows.day(now())[0])


def _sign(stack: Stack, url: str, payer: Wallet, slug: str) -> str:
    """A payment for `slug` on the gateway at `url`, against its own 402."""
    challenge = httpx.get(f"{url}/t/{slug}/v1/records", timeout=10)
    assert challenge.status_code == 402, challenge.text
    accepts = decode_payment_required_header(challenge.headers["payment-required"]).accepts
    exact = next(r for r in accepts if r.scheme == "exact").model_dump(by_alias=True)
    return encode(stack.sign(payer, "alpha", accepted=exact))


# -- SQLite ----------------------------------------------------------------------------------


def test_a_locked_sqlite_database_fails_paid_calls_closed_and_free_ones_answer(
    stack: Stack, payer: Wallet
) -> None:
    registry, settings = stack.registry, stack.settings
    tenant = _tenant(registry, settings, "books-locked", quota_day=5)
    _tenant(registry, settings, "books-free", price="0")
    path = Path(registry.engine.url.database or "")
    books = UsageBooks(registry.engine, wait=0.2)
    server = _serve(registry, stack.paywall_with(), books)  # its own: stopping closes it
    try:
        url = server.url
        header = _sign(stack, url, payer, "books-locked")
        before = stack.balance(payer.address)
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another writer, for longer than the busy timeout
        try:
            paid = httpx.get(f"{url}/t/books-locked/v1/records",
                             headers={"PAYMENT-SIGNATURE": header}, timeout=30)  # fmt: skip
            _unavailable(paid, tenant, "database is locked")
            bare = httpx.get(f"{url}/t/books-locked/v1/records", timeout=30)
            assert bare.status_code == 402, bare.text  # a challenge takes nothing from them
            schema = httpx.get(f"{url}/t/books-locked/v1/schema", timeout=30)
            assert schema.status_code == 200 and schema.json()["tenant"] == "books-locked"
            rows = httpx.get(f"{url}/t/books-free/v1/records?_limit=1", timeout=30)
            assert rows.status_code == 200 and len(rows.json()["items"]) == 1, rows.text
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        nonce = nonce_of(_payload(header))
        assert stack.claims(nonce) == []  # never claimed, so never verified nor settled
        assert stack.balance(payer.address) == before
        event = _last_event(registry.engine, paid.headers["x-request-id"])
        assert (event["type"], event["status"], event["reason"]) == (
            "dispatch_failure", 503, "limits_unavailable",
        )  # fmt: skip
        assert event["details"]["steps"] == ["resolve", "limits"]
        # The lock gone, the same payment is honoured once and counted once.
        again = httpx.get(f"{url}/t/books-locked/v1/records",
                          headers={"PAYMENT-SIGNATURE": header}, timeout=30)  # fmt: skip
        assert again.status_code == 200, again.text
        assert before - stack.balance(payer.address) == PRICE
        assert _used(books, tenant) == 1
    finally:
        server.stop()
        books.close()


def _payload(header: str) -> dict[str, Any]:
    return json.loads(base64.b64decode(header))


# -- PostgreSQL ------------------------------------------------------------------------------


class HeldVerify:
    """The facilitator app, holding each `/verify` until the test lets it go."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.arrived = threading.Event()
        self.go = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/verify":
            self.arrived.set()
            await anyio.to_thread.run_sync(self.go.wait, 30)
        await self.app(scope, receive, send)


@dataclass
class Postgres:
    admin: sa.Engine
    schema: str
    role: str
    settings: Settings
    registry: Registry
    held: HeldVerify
    url: str  # the gateway, its paywall on the held facilitator
    books: UsageBooks

    def kill_waiting(self, timeout: float = 10) -> None:
        """Terminate the gateway's connection that waits on a lock (a row the test holds)."""
        sql = sa.text(
            "SELECT pid FROM pg_stat_activity WHERE application_name = :app "
            "AND wait_event_type = 'Lock'"
        )
        deadline = time.monotonic() + timeout
        while True:
            with self.admin.connect() as conn:
                pids = list(conn.execute(sql, {"app": self.schema}).scalars())
                if pids:
                    for pid in pids:
                        conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
                    return
            assert time.monotonic() < deadline, "no gateway connection waited on the lock"
            time.sleep(0.02)

    def lock_counter(self, conn: sa.Connection, tenant: Tenant) -> None:
        """Hold today's `calls_day` row of `tenant` (made if missing) in `conn`'s transaction."""
        table = f"{self.schema}.usage_counters"
        key = {"t": tenant.tenant_id, "c": "calls_day", "w": windows.day(now())[0]}
        conn.execute(sa.text(f"INSERT INTO {table} (tenant_id, counter, \"window\", value) "
                             "VALUES (:t, :c, :w, 0) ON CONFLICT DO NOTHING"), key)  # fmt: skip
        conn.commit()
        conn.execute(sa.text(f"SELECT value FROM {table} WHERE tenant_id = :t AND counter = :c "
                             "AND \"window\" = :w FOR UPDATE"), key)  # fmt: skip


@pytest.fixture(scope="module")
def postgres(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory, postgres_skip_reason: str | None
) -> Iterator[Postgres]:
    if postgres_skip_reason:
        pytest.skip(postgres_skip_reason)
    admin = make_engine(POSTGRES_URL)
    schema = "t_" + uuid.uuid4().hex[:12]
    with admin.begin() as conn:  # a role of its own, so the test can take its login away
        conn.execute(sa.text(f"CREATE ROLE {schema} LOGIN"))
        conn.execute(sa.text(f"CREATE SCHEMA {schema} AUTHORIZATION {schema}"))
    base = POSTGRES_URL.replace("postgresql://", f"postgresql://{schema}@", 1)
    url = f"{base}?options=-csearch_path%3D{schema}&application_name={schema}"
    home = tmp_path_factory.mktemp("books-pg")
    settings = Settings(home=home, database_url=url)
    registry = Registry.open(settings)
    chain = stack.chain
    held = HeldVerify(create_app(FacilitatorSettings(rpc_url=chain.rpc_url,
                                                     private_key=chain.facilitator.private_key,
                                                     network=chain.network)))  # fmt: skip
    try:
        with ServerThread(held) as facilitator:
            paywall = Paywall(replace(stack.config, facilitator_url=facilitator.url),
                              registry.engine)  # fmt: skip
            books = UsageBooks(registry.engine)
            server = _serve(registry, paywall, books)
            try:
                yield Postgres(admin, schema, schema, settings, registry, held, server.url, books)
            finally:
                server.stop()
    finally:
        registry.close()
        with admin.begin() as conn:
            conn.execute(sa.text(f"ALTER ROLE {schema} LOGIN"))
            conn.execute(sa.text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 f"WHERE usename = '{schema}'"))  # fmt: skip
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
            conn.execute(sa.text(f"DROP ROLE {schema}"))
        admin.dispose()


def _in_thread(get: Callable[[], httpx.Response]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(get()))
    thread.start()
    return thread, out


def test_a_killed_postgres_connection_fails_the_paid_call_closed(
    stack: Stack, postgres: Postgres, payer: Wallet
) -> None:
    pg = postgres
    tenant = _tenant(pg.registry, pg.settings, "books-killed", quota_day=5)
    pg.held.go.set()  # the facilitator answers at once here
    header = _sign(stack, pg.url, payer, "books-killed")
    before = stack.balance(payer.address)
    paid_url = f"{pg.url}/t/books-killed/v1/records"
    with pg.admin.connect() as conn:
        pg.lock_counter(conn, tenant)
        thread, out = _in_thread(lambda: httpx.get(paid_url, headers={"PAYMENT-SIGNATURE": header},
                                                   timeout=30))  # fmt: skip
        pg.kill_waiting()  # the books' take, waiting on the row, loses its connection
        thread.join(30)
        conn.rollback()
    (paid,) = out
    _unavailable(paid, tenant, "AdminShutdown: terminating connection")
    assert stack.balance(payer.address) == before
    assert _used(pg.books, tenant) == 0
    again = httpx.get(paid_url, headers={"PAYMENT-SIGNATURE": header}, timeout=30)
    assert again.status_code == 200, again.text  # a new connection: honoured once
    assert before - stack.balance(payer.address) == PRICE
    assert _used(pg.books, tenant) == 1


def test_a_postgres_row_held_past_the_books_lock_timeout_fails_the_paid_call_quickly(
    stack: Stack, postgres: Postgres, payer: Wallet
) -> None:
    """A transaction elsewhere holds the call's counter row (a stuck replica): the take gives
    up after the books' wait and the call answers 503 at once, instead of hanging with it."""
    pg = postgres
    tenant = _tenant(pg.registry, pg.settings, "books-held", quota_day=5)
    books = UsageBooks(pg.registry.engine, wait=0.3)
    server = _serve(pg.registry, stack.paywall_with(), books)
    try:
        paid_url = f"{server.url}/t/books-held/v1/records"
        header = _sign(stack, server.url, payer, "books-held")
        before = stack.balance(payer.address)
        with pg.admin.connect() as conn:
            pg.lock_counter(conn, tenant)
            started = time.monotonic()
            paid = httpx.get(paid_url, headers={"PAYMENT-SIGNATURE": header}, timeout=30)
            waited = time.monotonic() - started
            conn.rollback()
        _unavailable(paid, tenant, "LockNotAvailable: canceling statement due to lock timeout")
        assert waited < 3, waited  # the books' 0.3 s and the request, not the lock's holder
        assert stack.balance(payer.address) == before
        again = httpx.get(paid_url, headers={"PAYMENT-SIGNATURE": header}, timeout=30)
        assert again.status_code == 200, again.text  # the row free: honoured once
        assert before - stack.balance(payer.address) == PRICE
        assert _used(books, tenant) == 1
    finally:
        server.stop()
        books.close()


def test_a_failed_give_back_keeps_the_answer_the_call_earned(
    stack: Stack, postgres: Postgres
) -> None:
    """A payment the facilitator refuses (the wallet holds nothing) gets its 402 even when the
    slot it took cannot be given back; the slot stays taken (the books err on the safe side)
    and the request's last event says so."""
    pg = postgres
    tenant = _tenant(pg.registry, pg.settings, "books-kept", quota_day=5)
    broke = Wallet.create()
    pg.held.go.set()
    header = _sign(stack, pg.url, broke, "books-kept")
    pg.held.go.clear()
    pg.held.arrived.clear()
    paid_url = f"{pg.url}/t/books-kept/v1/records"
    with pg.admin.connect() as conn:
        thread, out = _in_thread(lambda: httpx.get(paid_url, headers={"PAYMENT-SIGNATURE": header},
                                                   timeout=30))  # fmt: skip
        assert pg.held.arrived.wait(20)  # the slot is taken; the paywall is verifying
        pg.lock_counter(conn, tenant)
        pg.held.go.set()
        pg.kill_waiting()  # the give-back, waiting on the row, loses its connection
        thread.join(30)
        conn.rollback()
    (refused,) = out
    assert refused.status_code == 402, refused.text
    body = refused.json()
    assert (
        body["error"] == "payment_invalid" and body["requestId"] == refused.headers["x-request-id"]
    )
    assert (
        refused.headers["x-tenant-id"] == tenant.tenant_id and "payment-required" in refused.headers
    )
    assert _used(pg.books, tenant) == 1  # kept: one call fewer allowed today, none served unpaid
    event = _last_event(pg.registry.engine, refused.headers["x-request-id"])
    assert event["status"] == 402 and "AdminShutdown" in event["details"]["booksKept"], event


def test_the_registry_unreachable_keeps_free_routes_and_fails_paid_ones_closed(
    stack: Stack, postgres: Postgres, payer: Wallet, caplog: pytest.LogCaptureFixture
) -> None:
    """The gateway's role loses its login and its connections are killed. A running gateway
    keeps its last directory: free routes answer, a paid call is refused with nothing
    charged. A gateway that never read the registry answers every tenant call as every error
    is (a JSON 500 with the request id); `/healthz` answers. All back once it may log in."""
    pg = postgres
    _tenant(pg.registry, pg.settings, "books-gone", price="0")
    paid_tenant = _tenant(pg.registry, pg.settings, "books-gone-paid", quota_day=5)
    url = f"{pg.url}/t/books-gone/v1/schema"
    assert httpx.get(url, timeout=30).status_code == 200
    pg.held.go.set()
    header = _sign(stack, pg.url, payer, "books-gone-paid")
    before = stack.balance(payer.address)
    with pg.admin.begin() as conn:
        conn.execute(sa.text(f"ALTER ROLE {pg.role} NOLOGIN"))
        conn.execute(sa.text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             f"WHERE usename = '{pg.role}'"))  # fmt: skip
    fresh = _serve(pg.registry, stack.paywall_with(), UsageBooks(pg.registry.engine))
    try:
        kept = httpx.get(url, timeout=30)
        assert kept.status_code == 200 and kept.json()["tenant"] == "books-gone", kept.text
        rows = httpx.get(f"{pg.url}/t/books-gone/v1/records?_limit=1", timeout=30)
        assert rows.status_code == 200 and len(rows.json()["items"]) == 1, rows.text
        paid = httpx.get(f"{pg.url}/t/books-gone-paid/v1/records",
                         headers={"PAYMENT-SIGNATURE": header}, timeout=30)  # fmt: skip
        _unavailable(paid, paid_tenant, "OperationalError")
        down = httpx.get(f"{fresh.url}/t/books-gone/v1/schema",
                         headers={"x-request-id": "probe-1"}, timeout=30)  # fmt: skip
        assert down.status_code == 500, down.text
        body = down.json()
        assert body == {"ok": False, "error": "internal_error",
                        "requestId": down.headers["x-request-id"]}  # fmt: skip
        assert down.headers["x-correlation-id"] == "probe-1" and "x-tenant-id" not in down.headers
        assert httpx.get(f"{fresh.url}/healthz", timeout=30).status_code == 200
    finally:
        fresh.stop()
        with pg.admin.begin() as conn:
            conn.execute(sa.text(f"ALTER ROLE {pg.role} LOGIN"))
    assert stack.balance(payer.address) == before  # the refused call charged nothing
    deadline = time.monotonic() + 10
    paid_url, signed = f"{pg.url}/t/books-gone-paid/v1/records", {"PAYMENT-SIGNATURE": header}
    while (back := httpx.get(paid_url, headers=signed, timeout=30)).status_code != 200:
        assert back.status_code == 503 and time.monotonic() < deadline, back.text
        time.sleep(0.05)
    assert before - stack.balance(payer.address) == PRICE  # the same payment, honoured once
    # The fresh gateway's dispatch_failure event went to a database that was down (the sink
    # logs and drops it): the log keeps the request id and the cause.
    logged = [r.getMessage() for r in caplog.records if r.name == "claw402.gateway.app"]
    assert any(down.headers["x-request-id"] in m and "OperationalError" in m for m in logged)
