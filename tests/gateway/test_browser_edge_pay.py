"""A person pays through the edge's paywall page: Chromium, a wallet, the dev chain, workerd.

The dispatch Worker and the tenant's Worker, generated as `402claw cloudflare up` uploads them,
run under workerd with the payment settings of the stack `402claw dev` runs (anvil + ClawUSD,
the facilitator over HTTP). A browser opening a priced URL at the edge gets the `@x402/paywall`
page rendered at build time; the wallet is `browserwallet`'s. The edge settles through the
facilitator and keeps its claims in a Durable Object, so its payments reach the books as the
product books them: the dispatcher posts its lifecycle events to a gateway's `POST
/_claw402/events` (EVENTS_URL, bearer EVENTS_TOKEN; here a `Gateway` on the stack's registry,
as a `402claw serve` with CLAW402_EVENTS_TOKEN would be), and `402claw reconcile` credits the
tenant the settlement its `payment_settled` event names, once the chain agrees.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from browserwallet import cli, creator_balance, paid_json, pay_through_the_page, with_wallet
from playwright.sync_api import Browser
from test_browser import browser, screenshot, shots  # noqa: F401 (fixtures)

from claw402.cloudflare.dispatcher import DispatcherOptions, build_dispatcher
from claw402.cloudflare.tenant import build_tenant
from claw402.cloudflare.workerd import LocalEdge
from claw402.config import Settings
from claw402.devstack import DevStack, start_dev_stack
from claw402.events.sink import EventSink
from claw402.events.store import EventStore
from claw402.gateway.app import EDGE_EVENTS_PATH, Gateway
from claw402.ledger import balance
from claw402.ledger.chain import TokenChain
from claw402.ledger.reconcile import reconcile
from claw402.ledger.report import ReconcileReport
from claw402.ledger.schema import ledger_transactions
from claw402.payments.schema import payments
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.models import Tenant
from claw402.samples import CITIES
from claw402.serving import ServerThread

PRICE = 1000  # $0.001 in the token's 6-decimal units
TOKEN = "edge-events-secret"
T = TypeVar("T")


@dataclass
class Edge:
    stack: DevStack
    settings: Settings
    tenant: Tenant
    url: str  # the dispatcher's origin, under workerd

    def events(self, kind: str) -> list[dict[str, Any]]:
        """The edge's events of `kind` that reached the platform's events table."""
        found = EventStore(self.stack.registry.engine).read_events(kind=kind, limit=1000)
        return [e for e in found if e["type"] == kind]

    def reconcile(self) -> dict[str, Any]:
        """`402claw reconcile --json`, as the operator runs it against the chain."""
        chain = self.stack.chain
        return cli(self.settings, "reconcile", "--rpc-url", chain.rpc_url, "--token",
                   chain.token, "--treasury", chain.treasury.address)  # fmt: skip

    def reconcile_here(self) -> ReconcileReport:
        """The same run in this process (the CLI costs seconds of imports)."""
        chain = self.stack.chain
        tokens = TokenChain(chain.web3(), chain.token)
        return reconcile(self.stack.registry.engine, tokens, chain.treasury.address)

    def earned(self) -> int:
        """The tenant's available balance, as `402claw balance` computes it."""
        return balance(self.stack.registry.engine, self.tenant.tenant_id).available


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    """`cities` at $0.001 a call, paid to the treasury (the creator's share shows in `402claw
    balance`), served by the edge under workerd, its events reaching the platform's books."""
    home = tmp_path_factory.mktemp("browser-edge-pay")
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'registry.sqlite3'}")
    with start_dev_stack(settings, payers=1) as stack:
        request = DeployRequest(source=CITIES, slug="cities", price="0.001")
        tenant = deploy(stack.registry, settings, request)
        sink = EventSink.in_process(stack.registry.engine, interval=0.02)
        platform = Gateway(stack.registry, sink=sink, events_token=TOKEN, limiter=False)
        with ExitStack() as running:
            running.callback(sink.close)
            events_url = running.enter_context(ServerThread(platform)).url + EDGE_EVENTS_PATH
            options = DispatcherOptions(
                payment=stack.payments, events_url=events_url, secrets=["EVENTS_TOKEN"]
            )
            local = LocalEdge(
                build_dispatcher([tenant], options),
                [build_tenant(tenant)],
                events_to_recorder=False,
                secrets={options.script_name: {"EVENTS_TOKEN": TOKEN}},
                start_timeout=60,
            )
            running.enter_context(local)
            yield Edge(stack, settings, tenant, local.url)


def payment_rows(edge: Edge) -> int:
    with edge.stack.registry.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(payments)).scalar_one()


def wait_for(found: Callable[[], T], timeout: float = 10.0) -> T:
    """`found()` once it is truthy (the Worker sends its events after answering)."""
    deadline = time.monotonic() + timeout
    while not (value := found()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def test_a_person_pays_the_edge_through_its_paywall_page(browser: Browser, shots, edge):  # noqa: F811
    chain = edge.stack.chain
    payer = chain.payers[0].address  # an anvil dev account: anvil itself signs for it
    treasury = chain.treasury.address
    url = f"{edge.url}/t/cities/v1/records?country=Japan"
    before = chain.balance(payer), chain.balance(treasury)
    earned = edge.earned()

    page = browser.new_page()
    log = with_wallet(page, chain, payer)
    pay_through_the_page(page, url, shots, payer, "edge-paywall-pay")
    data = paid_json(page, log, shots, "edge-paywall")
    page.close()
    assert "eth_signTypedData_v4" in log.asked, log.asked  # anvil signed for the payer
    # The page paid for the address the person opened, query included, and shows its answer.
    assert log.paid == [url], log.paid
    assert [row["city"] for row in data["items"]] == ["Tokyo", "Osaka", "Nagoya"], data

    # On chain: the payer paid exactly the price, to the payTo of the edge's offer.
    assert chain.balance(payer) == before[0] - PRICE
    assert chain.balance(treasury) == before[1] + PRICE
    # The edge reported the settlement to the platform: one event, naming the tenant.
    found = wait_for(lambda: edge.events("payment_settled"))
    assert len(found) == 1, f"the edge's settlement did not reach the platform: {found}"
    settled = found[0]
    facts = settled["details"]
    assert settled["source"] == "edge" and settled["tenantId"] == edge.tenant.tenant_id
    assert facts["payer"].lower() == payer.lower() and facts["amount"] == str(PRICE)
    assert facts["payTo"].lower() == treasury.lower()
    assert chain.web3().eth.get_transaction_receipt(facts["transaction"])["status"] == 1
    # Not booked until reconcile reads the chain: the edge has no claim rows to book from.
    assert edge.earned() == earned

    report = edge.reconcile()
    assert (report["edgeSettlements"], report["unattributed"]) == (1, 0), report
    assert report["balanced"] and report["warnings"] == [], report
    # The creator's `402claw balance` rose by the price less the platform fee.
    assert creator_balance(edge.settings, "cities") - earned == PRICE * 95 // 100
    # Booked once: one payments row and one ledger entry under the edge's transaction, for
    # its gross; reconcile again finds nothing more to post.
    assert edge.reconcile_here().settlements == 0
    with edge.stack.registry.engine.connect() as conn:
        (row,) = conn.execute(sa.select(payments)).mappings().all()
        booked = conn.execute(
            sa.select(ledger_transactions.c.gross, ledger_transactions.c.payer).where(
                ledger_transactions.c.tx_hash == facts["transaction"]
            )
        ).all()
    assert row["tx_hash"] == facts["transaction"] and row["tenant_id"] == edge.tenant.tenant_id
    assert row["amount_atomic"] == PRICE and row["payer"].lower() == payer.lower()
    assert row["request_id"] == settled["requestId"]
    assert [(gross, who.lower()) for gross, who in booked] == [(PRICE, payer.lower())]
    assert edge.earned() - earned == PRICE * 95 // 100


def test_a_declined_signature_pays_nothing_at_the_edge(browser: Browser, shots, edge):  # noqa: F811
    chain = edge.stack.chain
    payer = chain.payers[0].address
    before = chain.balance(payer), chain.balance(chain.treasury.address)
    challenges = len(edge.events("payment_challenge"))
    tried = [len(edge.events(k)) for k in ("payment_verified", "payment_failed", "payment_settled")]
    rows = payment_rows(edge)
    page = browser.new_page()
    log = with_wallet(page, chain, payer, refuse=True)
    pay_through_the_page(page, f"{edge.url}/t/cities/v1/records", shots, payer,
                         "edge-paywall-decline")  # fmt: skip
    # The page says why, in its status line (after "Checking balance...", "Creating...").
    page.locator("#root .status", has_text="User rejected the request.").wait_for(timeout=30_000)
    assert page.url.startswith(edge.url)  # still the paywall page, no data shown
    screenshot(page, shots, "edge-paywall-declined")
    page.close()
    assert log.paid == []  # no request carried a payment
    assert (chain.balance(payer), chain.balance(chain.treasury.address)) == before
    # The edge saw the page's 402 and no payment: nothing verified, settled or refused.
    assert wait_for(lambda: len(edge.events("payment_challenge")) > challenges)
    assert [len(edge.events(k)) for k in ("payment_verified", "payment_failed",
                                          "payment_settled")] == tried  # fmt: skip
    assert edge.reconcile_here().settlements == 0 and payment_rows(edge) == rows
