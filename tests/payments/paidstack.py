"""The paid-call stack the payment tests share, and helpers to bend payments for them.

A uniquely named module (not conftest) so tests can import it: test folders have no
`__init__.py`, and every folder's conftest is a module named `conftest`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from x402.http.utils import decode_payment_required_header
from x402.schemas import PaymentRequirements

from claw402.chain.devchain import DevChain, start_dev_chain
from claw402.chain.eip3009 import Authorization, Domain, sign_authorization
from claw402.chain.token import usdc
from claw402.chain.wallet import Wallet
from claw402.config import Settings
from claw402.events.sink import EventSink
from claw402.facilitator.server import background_server
from claw402.facilitator.settings import FacilitatorSettings
from claw402.gateway.app import Gateway
from claw402.payments.client import PaidCall, pay_and_fetch_async
from claw402.payments.config import PaymentConfig
from claw402.payments.paywall import Paywall
from claw402.payments.schema import payment_claims, payments
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.models import Tenant
from claw402.registry.store import Registry
from claw402.samples import CITIES
from claw402.serving import ServerThread
from claw402.tenant_api.call import Guard
from jsclient import pay_with_js_client

MAX_TIMEOUT = 120


@dataclass
class Stack:
    chain: DevChain
    facilitator_url: str
    settings: Settings
    registry: Registry
    config: PaymentConfig
    paywall: Paywall
    url: str
    creator: Wallet
    tenants: dict[str, Tenant] = field(default_factory=dict)
    _servers: list[ServerThread] = field(default_factory=list)

    # -- wallets and balances --------------------------------------------------------------

    def payer(self, amount: int = usdc(1)) -> Wallet:
        """A fresh wallet holding `amount` test USDC (and no ETH: payers never pay gas)."""
        wallet = Wallet.create()
        if amount:
            self.chain.fund(wallet.address, amount)
        return wallet

    def balance(self, address: str) -> int:
        return self.chain.balance(address)

    def pay_js(self, url: str, payer: Wallet, max_atomic: int) -> dict[str, Any]:
        """A call paid with the official JavaScript client; its report (`jsclient`)."""
        chain = self.chain
        return pay_with_js_client(url, payer.private_key, chain.network, chain.token, max_atomic)

    # -- payments made by hand -------------------------------------------------------------

    def requirements(self, slug: str) -> PaymentRequirements:
        """The tenant's `exact` requirements, read from a real 402 challenge."""
        r = httpx.get(f"{self.url}/t/{slug}/v1/records", timeout=10)
        assert r.status_code == 402, r.text
        accepts = decode_payment_required_header(r.headers["payment-required"]).accepts
        return next(req for req in accepts if req.scheme == "exact")

    def sign(
        self,
        payer: Wallet,
        slug: str,
        *,
        accepted: dict[str, Any] | None = None,
        value: int | None = None,
        to: str | None = None,
        valid_after: int = 0,
        valid_before: int | None = None,
        domain_name: str | None = None,
        signer_key: str | None = None,
        extensions: dict[str, Any] | None = None,
        nonce: bytes | None = None,
    ) -> dict[str, Any]:
        """A v2 payment payload (a dict) for `slug`, with any field bent for a test."""
        req = self.requirements(slug).model_dump(by_alias=True)
        bent = dict(accepted or {})
        req["extra"] = {**req["extra"], **bent.pop("extra", {})}
        req.update(bent)
        authorization = Authorization(
            from_address=payer.address,
            to=to or req["payTo"],
            value=int(req["amount"]) if value is None else value,
            valid_after=valid_after,
            valid_before=valid_before or int(time.time()) + MAX_TIMEOUT,
            nonce=nonce or os.urandom(32),
        )
        domain = Domain(
            name=domain_name or self.chain.token_name,
            version=self.chain.token_version,
            chain_id=self.chain.chain_id,
            verifying_contract=self.chain.token,
        )
        signature = sign_authorization(signer_key or payer.private_key, authorization, domain)
        payload: dict[str, Any] = {
            "x402Version": 2,
            "accepted": req,
            "payload": {
                "authorization": authorization.as_x402(),
                "signature": "0x" + signature.hex(),
            },
        }
        if extensions is not None:
            payload["extensions"] = extensions
        return payload

    # -- requests ----------------------------------------------------------------------------

    def pay(self, url: str, payer: Wallet, max_price_atomic: int) -> PaidCall:
        """A call paid with the official Python client, allowed this stack's token only."""
        return asyncio.run(
            pay_and_fetch_async(
                url,
                payer.private_key,
                max_price_atomic=max_price_atomic,
                allowed_assets=[(self.chain.network, self.chain.token)],
            )
        )

    def get(
        self,
        path: str,
        payment: dict[str, Any] | str | None = None,
        *,
        header: str = "PAYMENT-SIGNATURE",
        base: str | None = None,
        **kw: Any,
    ) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if payment is not None:
            headers[header] = payment if isinstance(payment, str) else encode(payment)
        return httpx.get(f"{base or self.url}{path}", headers=headers, timeout=30, **kw)

    def serve(self, guard: Guard) -> str:
        """Another gateway on the same registry with another guard; returns its URL."""
        sink = EventSink.in_process(self.registry.engine)
        gateway = Gateway(self.registry, guard=guard, sink=sink)
        server = ServerThread(gateway).start()
        self._servers.append(server)
        return server.url

    def paywall_with(self, **overrides: Any) -> Paywall:
        return Paywall(replace(self.config, **overrides), self.registry.engine)

    # -- the database ----------------------------------------------------------------------

    def claims(self, nonce: str) -> list[dict[str, Any]]:
        with self.registry.engine.connect() as conn:
            rows = conn.execute(
                sa.select(payment_claims).where(payment_claims.c.nonce == nonce.lower())
            ).mappings()
            return [dict(r) for r in rows]

    def released(self, nonce: str) -> int:
        """The failed attempts of a released claim (asserting it is one): nothing was used."""
        (claim,) = self.claims(nonce)
        assert claim["status"] == "released", claim
        return claim["attempts"]

    def payments(self, tx_hash: str) -> list[dict[str, Any]]:
        with self.registry.engine.connect() as conn:
            rows = conn.execute(sa.select(payments).where(payments.c.tx_hash == tx_hash)).mappings()
            return [dict(r) for r in rows]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def encode(payload: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(payload).encode()).decode()


def nonce_of(payload: dict[str, Any]) -> str:
    return payload["payload"]["authorization"]["nonce"]


@contextmanager
def open_stack(
    home: Path,
    *,
    facilitator: Mapping[str, Any] | None = None,
    payment: Mapping[str, Any] | None = None,
) -> Iterator[Stack]:
    """Chain, facilitator, registry with three tenants, and the paying gateway on uvicorn.

    `facilitator` and `payment` override `FacilitatorSettings` and `PaymentConfig` fields.
    """
    with start_dev_chain(payers=1) as chain:
        facilitator_settings = FacilitatorSettings(
            rpc_url=chain.rpc_url,
            private_key=chain.facilitator.private_key,
            network=chain.network,
            **(facilitator or {}),
        )
        with background_server(facilitator_settings) as facilitator_server:
            settings = Settings(home=home, database_url=f"sqlite:///{home / 'registry.sqlite3'}")
            registry = Registry.open(settings)
            config = PaymentConfig(
                network=chain.network,
                asset=chain.token,
                asset_name=chain.token_name,
                asset_version=chain.token_version,
                facilitator_url=facilitator_server.url,
                treasury=chain.treasury.address,
                max_timeout_seconds=MAX_TIMEOUT,
                **(payment or {}),
            )
            sink = EventSink.in_process(registry.engine, interval=0.02)
            paywall = Paywall(config, registry.engine)
            gateway = Gateway(registry, guard=paywall, sink=sink)
            creator = Wallet.create()
            with ServerThread(gateway) as server:
                stack = Stack(
                    chain,
                    facilitator_server.url,
                    settings,
                    registry,
                    config,
                    paywall,
                    server.url,
                    creator,
                )
                for slug, price, extra in (
                    ("alpha", "0.01", {"hosts": ["alpha.test"]}),
                    ("beta", "0.02", {"pay_to": creator.address}),
                    ("gamma", "0.01", {}),
                ):
                    request = DeployRequest(source=CITIES, slug=slug, price=price, **extra)
                    stack.tenants[slug] = deploy(registry, settings, request)
                try:
                    yield stack
                finally:
                    for extra_server in stack._servers:
                        extra_server.stop()
            registry.close()
