"""The paid edge for tests: anvil + ClawUSD, the project's facilitator over HTTP, and the
generated dispatcher with the edge paywall and the user Workers under workerd.

Payments are signed here with the project's EIP-3009 helpers, against the requirements read
from a real 402 challenge of the edge.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from x402.http.utils import decode_payment_required_header

from claw402.chain.devchain import DevChain, start_dev_chain
from claw402.chain.eip3009 import Authorization, Domain, sign_authorization
from claw402.chain.token import usdc
from claw402.chain.wallet import Wallet
from claw402.cloudflare.dispatcher import DispatcherOptions, build_dispatcher
from claw402.cloudflare.tenant import build_tenant
from claw402.cloudflare.workerd import LocalEdge
from claw402.config import Settings
from claw402.facilitator.server import background_server
from claw402.facilitator.settings import FacilitatorSettings
from claw402.payments.config import PaymentConfig
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.models import Tenant
from claw402.registry.store import Registry
from claw402.samples import CITIES

MAX_TIMEOUT = 120


def encode(payload: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(payload).encode()).decode()


@dataclass
class EdgeClient:
    """Pays an edge at `url` on `chain`: fresh wallets, signed payments, requests."""

    chain: DevChain
    url: str

    def payer(self, amount: int = usdc(1)) -> Wallet:
        wallet = Wallet.create()
        self.chain.fund(wallet.address, amount)
        return wallet

    def get(
        self,
        path: str,
        payment: dict[str, Any] | str | None = None,
        *,
        header: str = "PAYMENT-SIGNATURE",
        **kw: Any,
    ) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if payment is not None:
            headers[header] = payment if isinstance(payment, str) else encode(payment)
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=30, **kw)

    def requirements(self, slug: str) -> dict[str, Any]:
        r = self.get(f"/t/{slug}/v1/records")
        assert r.status_code == 402, r.text
        required = decode_payment_required_header(r.headers["payment-required"])
        return required.accepts[0].model_dump(by_alias=True)

    def sign(
        self,
        payer: Wallet,
        slug: str,
        *,
        value: int | None = None,
        signer_key: str | None = None,
        nonce: bytes | None = None,
        accepted: dict[str, Any] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        req = {**self.requirements(slug), **(accepted or {})}
        authorization = Authorization(
            from_address=payer.address,
            to=req["payTo"],
            value=int(req["amount"]) if value is None else value,
            valid_after=0,
            valid_before=int(time.time()) + MAX_TIMEOUT,
            nonce=nonce or os.urandom(32),
        )
        domain = Domain(
            name=self.chain.token_name,
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


@dataclass
class PaidEdge(EdgeClient):
    config: PaymentConfig | None = None
    registry: Registry | None = None
    edge: LocalEdge | None = None
    creator: Wallet | None = None
    tenants: dict[str, Tenant] = field(default_factory=dict)


def payment_config(chain: DevChain, facilitator_url: str) -> PaymentConfig:
    return PaymentConfig(
        network=chain.network,
        asset=chain.token,
        asset_name=chain.token_name,
        asset_version=chain.token_version,
        facilitator_url=facilitator_url,
        treasury=chain.treasury.address,
        max_timeout_seconds=MAX_TIMEOUT,
    )


@contextmanager
def paid_edge(home: Path) -> Iterator[PaidEdge]:
    """Tenants: `alpha` ($0.01, treasury), `beta` ($0.02, paid to a creator), `free` ($0),
    `rows` ($0.05 per 1,000 rows: a full free-plan page of 100 rows is $0.005)."""
    with start_dev_chain(payers=1) as chain:
        facilitator = FacilitatorSettings(
            rpc_url=chain.rpc_url, private_key=chain.facilitator.private_key, network=chain.network
        )
        with background_server(facilitator) as server:
            settings = Settings(home=home, database_url=f"sqlite:///{home / 'registry.sqlite3'}")
            registry = Registry.open(settings)
            creator = Wallet.create()
            tenants = {}
            for slug, price, extra in (
                ("alpha", "0.01", {"key": "id"}),
                ("beta", "0.02", {"pay_to": creator.address}),
                ("free", "0", {}),
                ("rows", None, {"price_per_1k_rows": "0.05"}),
            ):
                request = DeployRequest(source=CITIES, slug=slug, price=price, **extra)
                tenants[slug] = deploy(registry, settings, request)
            config = payment_config(chain, server.url)
            options = DispatcherOptions(payment=config)
            dispatcher = build_dispatcher(tenants.values(), options)
            workers = [build_tenant(t) for t in tenants.values()]
            with LocalEdge(dispatcher, workers) as edge:
                yield PaidEdge(chain, edge.url, config, registry, edge, creator, tenants)
            registry.close()
