"""Rates, quotas, spend caps and quarantine, the same on both runtimes (issue 22): the gateway
with its limiter and paywall, and the generated dispatch Worker under workerd with its
Durable Objects and edge paywall, both paid on one anvil chain through the project's
facilitator with the official x402 client. Each runtime gets its own registry (a quarantine
made for one must not leak into the other) deployed from the same tenant specs."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from x402.http.utils import decode_payment_required_header

from claw402.chain.devchain import DevChain, start_dev_chain
from claw402.chain.eip3009 import Authorization, Domain, sign_authorization
from claw402.chain.token import usdc
from claw402.chain.wallet import Wallet
from claw402.cloudflare.dispatcher import DispatcherOptions, build_dispatcher
from claw402.cloudflare.tenant import build_tenant
from claw402.cloudflare.workerd import LocalEdge
from claw402.config import Settings
from claw402.control import access
from claw402.control.quarantine import quarantine
from claw402.events.sink import EventSink
from claw402.facilitator.server import background_server
from claw402.facilitator.settings import FacilitatorSettings
from claw402.gateway.app import Gateway
from claw402.limits.counters import MemoryCounters
from claw402.limits.limiter import Limiter
from claw402.limits.usage import UsageBooks
from claw402.payments.client import PaidCall, pay_and_fetch_async
from claw402.payments.config import PaymentConfig
from claw402.payments.paywall import Paywall
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.store import Registry
from claw402.samples import CITIES
from claw402.serving import ServerThread

PRICE = usdc("0.01")
TENANTS: list[dict[str, Any]] = [
    {"slug": "paced", "price": "0", "rate": "4/m"},
    {"slug": "paced-paid", "price": "0.01", "schemes": "exact", "rate": "3/m"},
    {"slug": "paced-wallet", "price": "0.01", "schemes": "exact", "rate": "2/m"},
    {"slug": "paced-forged", "price": "0.01", "schemes": "exact", "rate": "2/m"},
    {"slug": "quota", "price": "0.01", "schemes": "exact", "quota_day": 2},
    {"slug": "capped", "price": "0.01", "schemes": "exact", "spend_cap_day": "0.025"},
    {"slug": "held", "price": "0", "plan": "pro"},
]
RUNTIMES = ("gateway", "workerd")


@dataclass
class Paying:
    chain: DevChain
    config: PaymentConfig


@dataclass
class Limited:
    """One runtime serving `TENANTS` with limits on; `republish()` is what makes a registry
    change reach it (the gateway polls the registry; the edge needs a new dispatcher)."""

    name: str
    paying: Paying
    registry: Registry
    url: str = ""
    edge: LocalEdge | None = None
    server: ServerThread | None = None
    sink: EventSink | None = None
    stops: list[Any] = field(default_factory=list)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kw)

    def pay(self, path: str, payer: Wallet) -> PaidCall:
        chain = self.paying.chain
        return asyncio.run(pay_and_fetch_async(
            self.url + path, payer.private_key, max_price_atomic=PRICE,
            allowed_assets=[(chain.network, chain.token)], scheme="exact",
        ))  # fmt: skip

    def start(self) -> Limited:
        if self.name == "gateway":
            engine = self.registry.engine
            self.sink = EventSink.in_process(engine, interval=0.02)
            limiter = Limiter(MemoryCounters(), UsageBooks(engine))
            paywall = Paywall(self.paying.config, engine)
            gateway = Gateway(self.registry, guard=paywall, sink=self.sink, limiter=limiter)
            self.server = ServerThread(gateway).start()
            self.url = self.server.url
        else:
            tenants = self.registry.list_tenants()
            options = DispatcherOptions(payment=self.paying.config)
            self.edge = LocalEdge(build_dispatcher(tenants, options),
                                  [build_tenant(t) for t in tenants]).start()  # fmt: skip
            self.url = self.edge.url
        return self

    def republish(self) -> None:
        if self.edge is not None:  # `402claw cloudflare up`: a new dispatcher with the directory
            self.edge.stop()
            self.start()
        else:
            time.sleep(0.1)  # the gateway's directory checks the registry's generation

    def stop(self) -> None:
        if self.edge is not None:
            self.edge.stop()
        if self.server is not None:
            self.server.stop()


@pytest.fixture(scope="module")
def paying() -> Iterator[Paying]:
    with start_dev_chain(payers=1) as chain:
        facilitator = FacilitatorSettings(rpc_url=chain.rpc_url,
                                          private_key=chain.facilitator.private_key,
                                          network=chain.network)  # fmt: skip
        with background_server(facilitator) as server:
            config = PaymentConfig(
                network=chain.network, asset=chain.token, asset_name=chain.token_name,
                asset_version=chain.token_version, facilitator_url=server.url,
                treasury=chain.treasury.address, max_timeout_seconds=120,
            )  # fmt: skip
            yield Paying(chain, config)


@pytest.fixture(scope="module", params=RUNTIMES)
def limited(request: pytest.FixtureRequest, paying: Paying,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Limited]:  # fmt: skip
    home = tmp_path_factory.mktemp(f"limits-{request.param}")
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'registry.sqlite3'}")
    registry = Registry.open(settings)
    for spec in TENANTS:
        deploy(registry, settings, DeployRequest(source=CITIES, **spec))
    runtime = Limited(request.param, paying, registry).start()
    try:
        yield runtime
    finally:
        runtime.stop()
        if runtime.sink is not None:
            runtime.sink.close()
        registry.close()


def payer(paying: Paying) -> Wallet:
    wallet = Wallet.create()
    paying.chain.fund(wallet.address, usdc(1))
    return wallet


def clear_of_window_end(seconds: int, margin: float) -> None:
    """Wait until the current fixed window has at least `margin` seconds left, so a burst
    is counted in one window on both runtimes (both align windows on the epoch)."""
    left = seconds - time.time() % seconds
    if left < margin:
        time.sleep(left + 0.05)


def refusal(r: httpx.Response, code: str, detail: str, **fields: Any) -> None:
    """The error shape both runtimes share, with this request's id."""
    expected = {"ok": False, "error": code, "requestId": r.headers["x-request-id"],
                "detail": detail, **fields}  # fmt: skip
    assert r.json() == expected


def rate_state(r: httpx.Response) -> tuple[int, int]:
    """(remaining, seconds to reset) from `RateLimit: "rate";r=R;t=T`."""
    name, remaining, reset = r.headers["ratelimit"].split(";")
    assert name == '"rate"'
    return int(remaining.removeprefix("r=")), int(reset.removeprefix("t="))


def test_rate_limit_boundary_with_headers(limited):
    clear_of_window_end(60, 15)
    answers = [limited.get("/t/paced/v1/records?_limit=1") for _ in range(5)]
    for i, r in enumerate(answers[:4]):
        assert r.status_code == 200, r.text
        assert r.headers["ratelimit-policy"] == '"rate";q=4;w=60'
        remaining, reset = rate_state(r)
        assert remaining == 3 - i and 0 < reset <= 60
    over = answers[4]
    assert over.status_code == 429
    refusal(over, "rate_limited", "more than 4/m calls from one caller")
    assert over.headers["ratelimit-policy"] == '"rate";q=4;w=60'
    remaining, reset = rate_state(over)
    assert remaining == 0 and int(over.headers["retry-after"]) == reset
    # The limit is per tenant: another tenant answers this caller as before.
    other = limited.get("/t/held/v1/records?_limit=1")
    assert other.status_code == 200 and other.headers["ratelimit-policy"] == '"rate";q=1000;w=1'


def test_replayed_402s_count_against_the_rate(limited):
    clear_of_window_end(60, 15)
    challenges = [limited.get("/t/paced-paid/v1/records") for _ in range(3)]
    assert [r.status_code for r in challenges] == [402, 402, 402]  # the gateway memoises these
    assert [rate_state(r)[0] for r in challenges] == [2, 1, 0]
    over = limited.get("/t/paced-paid/v1/records")
    assert over.status_code == 429 and over.json()["error"] == "rate_limited"


def signed(limited: Limited, challenge: httpx.Response, wallet: Wallet,
           signer: Wallet | None = None) -> str:  # fmt: skip
    """A payment header paying the challenge's terms from `wallet` (EIP-3009), signed here by
    `signer` (a forgery when it is not `wallet`)."""
    chain = limited.paying.chain
    req = decode_payment_required_header(challenge.headers["payment-required"]).accepts[0]
    accepted = req.model_dump(by_alias=True)
    authorization = Authorization(
        from_address=wallet.address, to=accepted["payTo"], value=int(accepted["amount"]),
        valid_after=0, valid_before=int(time.time()) + 120, nonce=os.urandom(32),
    )  # fmt: skip
    domain = Domain(name=chain.token_name, version=chain.token_version,
                    chain_id=chain.chain_id, verifying_contract=chain.token)  # fmt: skip
    signature = sign_authorization((signer or wallet).private_key, authorization, domain)
    payload = {"x402Version": 2, "accepted": accepted,
               "payload": {"authorization": authorization.as_x402(),
                           "signature": "0x" + signature.hex()}}  # fmt: skip
    return base64.b64encode(json.dumps(payload).encode()).decode()


def test_a_payment_counts_against_its_wallet_not_the_address(limited):
    """The caller is the paying wallet once a payment header decodes, else the client."""
    clear_of_window_end(60, 20)
    path = "/t/paced-wallet/v1/records?_limit=1"
    bare = [limited.get(path) for _ in range(3)]
    assert [r.status_code for r in bare] == [402, 402, 429]  # this address's 2/m is used up
    wallet = payer(limited.paying)
    paid = [limited.get(path, headers={"payment-signature": signed(limited, bare[0], wallet)})
            for _ in range(3)]  # fmt: skip
    assert [r.status_code for r in paid] == [200, 200, 429], [r.text for r in paid]
    assert [rate_state(r)[0] for r in paid] == [1, 0, 0]
    assert limited.paying.chain.balance(wallet.address) == usdc(1) - 2 * PRICE


def test_a_forged_header_naming_a_wallet_does_not_spend_its_budget(limited):
    """Only a header whose signature recovers to its wallet counts against that wallet: an
    attacker's forgeries naming wallet W count against the attacker's own address, and W still
    has its whole budget (the edge reads the client from cf-connecting-ip, as on Cloudflare)."""
    clear_of_window_end(60, 25)
    path = "/t/paced-forged/v1/records?_limit=1"
    victim, attacker = payer(limited.paying), Wallet.create()
    forger = {"cf-connecting-ip": "203.0.113.7"}
    challenge = limited.get(path, headers=forger)
    assert challenge.status_code == 402 and rate_state(challenge)[0] == 1
    forged = [limited.get(path, headers={**forger, "payment-signature":
                                         signed(limited, challenge, victim, attacker)})
              for _ in range(3)]  # fmt: skip
    # Counted against the attacker's address: its last call, then refused.
    assert [r.status_code for r in forged] == [402, 429, 429], [r.text for r in forged]
    assert rate_state(forged[0])[0] == 0
    honest = {"cf-connecting-ip": "203.0.113.8"}
    paid = [limited.get(path, headers={**honest, "payment-signature":
                                       signed(limited, challenge, victim)})
            for _ in range(3)]  # fmt: skip
    assert [r.status_code for r in paid] == [200, 200, 429], [r.text for r in paid]
    assert [rate_state(r)[0] for r in paid] == [1, 0, 0]
    assert limited.paying.chain.balance(victim.address) == usdc(1) - 2 * PRICE


def test_quota_of_n_allows_exactly_n_paid_calls(limited):
    wallet = payer(limited.paying)
    chain = limited.paying.chain
    assert limited.get("/t/quota/v1/records").status_code == 402  # a bare 402 takes nothing
    failed = limited.pay("/t/quota/v1/records?nope=1", wallet)  # paid, but the query fails
    assert failed.response.status_code == 400 and not failed.paid  # takes nothing either
    assert chain.balance(wallet.address) == usdc(1)
    for _ in range(2):
        paid = limited.pay("/t/quota/v1/records?_limit=1", wallet)
        assert paid.response.status_code == 200 and paid.paid, paid.response.text
    assert chain.balance(wallet.address) == usdc(1) - 2 * PRICE
    over = limited.pay("/t/quota/v1/records?_limit=1", wallet)
    r = over.response
    assert r.status_code == 429 and not over.paid
    now = datetime.now(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    quota = {"window": "day", "limit": 2, "reset": midnight.isoformat()}
    refusal(r, "usage_quota_exceeded", "this tenant's day quota of 2 calls is used up", quota=quota)
    assert 0 < int(r.headers["retry-after"]) <= 86400
    assert chain.balance(wallet.address) == usdc(1) - 2 * PRICE  # refused before settlement
    # Known full: a bare call now gets the 429 too, not a 402 it could never pay.
    again = limited.get("/t/quota/v1/records")
    assert again.status_code == 429 and again.json()["error"] == "usage_quota_exceeded"


def test_spend_cap_refuses_the_payment_that_would_pass_it(limited):
    wallet = payer(limited.paying)
    chain = limited.paying.chain
    for _ in range(2):
        assert limited.pay("/t/capped/v1/records?_limit=1", wallet).paid
    refused = limited.pay("/t/capped/v1/records?_limit=1", wallet)
    r = refused.response
    assert r.status_code == 402 and not refused.paid
    now = datetime.now(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    refusal(
        r,
        "cap_exceeded",
        f"this tenant's daily spend cap is reached; resets {midnight.isoformat()}",
    )
    assert chain.balance(wallet.address) == usdc(1) - 2 * PRICE  # nothing charged for it


def test_quarantine_reaches_the_runtime_on_republish(limited):
    before = limited.get("/t/held/v1/schema")
    assert before.status_code == 200 and before.headers["ratelimit-policy"] == '"rate";q=1000;w=1'
    access.create_user(limited.registry.engine, None, "root")
    admin = access.create_key(limited.registry.engine, None, "root", ["admin"]).secret
    assert quarantine(limited.registry, admin, "held").changed
    limited.republish()
    time.sleep(1.02 - time.time() % 1)  # a fresh second: `before` counted in an earlier one
    answers = [limited.get("/t/held/v1/schema") for _ in range(4)]
    assert answers[0].status_code == 200
    assert {r.headers["ratelimit-policy"] for r in answers} == {'"rate";q=1;w=1'}
    assert 429 in [r.status_code for r in answers[1:]]
    refused = next(r for r in answers if r.status_code == 429)
    refusal(refused, "rate_limited", "more than 1/s calls from one caller")
