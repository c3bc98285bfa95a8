"""A dev chain and facilitators over real HTTP, shared per session (one set per xdist worker).

Payloads are made by the official SDK client (`x402Client` + `ExactEvmClientScheme`) and
sent through the SDK's `HTTPFacilitatorClient`, exactly as a resource server would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_account import Account
from x402 import x402Client
from x402.http import HTTPFacilitatorClient
from x402.mechanisms.evm.exact import ExactEvmClientScheme
from x402.mechanisms.evm.signers import EthAccountSigner
from x402.schemas import (
    PaymentPayload,
    PaymentRequired,
    PaymentRequirements,
    SettleResponse,
    SupportedResponse,
    VerifyResponse,
)

from claw402.chain.devchain import DevChain, start_dev_chain
from claw402.facilitator.client import facilitator_config
from claw402.facilitator.server import background_server
from claw402.facilitator.settings import FacilitatorSettings

API_KEY = "test-api-key-0123456789"


@pytest.fixture(scope="session")
def chain() -> Iterator[DevChain]:
    with start_dev_chain(payers=4) as dev_chain:
        yield dev_chain


@pytest.fixture(scope="session")
def settings(chain: DevChain) -> FacilitatorSettings:
    return FacilitatorSettings(
        rpc_url=chain.rpc_url, private_key=chain.facilitator.private_key, network=chain.network
    )


@pytest.fixture(scope="session")
def facilitator_url(settings: FacilitatorSettings) -> Iterator[str]:
    with background_server(settings) as server:
        yield server.url


@pytest.fixture(scope="session")
def keyed_facilitator_url(chain: DevChain) -> Iterator[str]:
    keyed = FacilitatorSettings(
        rpc_url=chain.rpc_url,
        private_key=chain.facilitator.private_key,
        network=chain.network,
        api_key=API_KEY,
    )
    with background_server(keyed) as server:
        yield server.url


@pytest.fixture
def requirements(chain: DevChain) -> Callable[..., PaymentRequirements]:
    """Requirements for the dev token; keyword overrides use the model's field names."""

    def make(**overrides: Any) -> PaymentRequirements:
        fields: dict[str, Any] = {
            "scheme": "exact",
            "network": chain.network,
            "asset": chain.token,
            "amount": "10000",  # 0.01 test USDC
            "pay_to": chain.treasury.address,
            "max_timeout_seconds": 60,
            "extra": dict(chain.asset_extra),
        }
        return PaymentRequirements(**{**fields, **overrides})

    return make


def sdk_client(private_key: str, network: str, asset: str) -> x402Client:
    """A payer's x402 client allowed to spend the (non-default) dev token."""
    client = x402Client()
    client.register(network, ExactEvmClientScheme(EthAccountSigner(Account.from_key(private_key))))
    client.set_spend_controls({"allowed_assets": [{"network": network, "asset": asset}]})
    return client


@pytest.fixture
def pay() -> Callable[[str, PaymentRequirements], PaymentPayload]:
    """Sign a payment for `requirements` with `private_key`, through the SDK client."""

    def make(private_key: str, requirements: PaymentRequirements) -> PaymentPayload:
        client = sdk_client(private_key, requirements.network, requirements.asset)
        required = PaymentRequired(x402_version=2, accepts=[requirements])
        payload = asyncio.run(client.create_payment_payload(required))
        assert isinstance(payload, PaymentPayload)
        return payload

    return make


class Facilitator:
    """Calls one facilitator URL through the SDK's async `HTTPFacilitatorClient`."""

    def __init__(self, url: str, api_key: str | None = None) -> None:
        self.url = url
        self.api_key = api_key

    def _client(self) -> HTTPFacilitatorClient:
        return HTTPFacilitatorClient(facilitator_config(self.url, self.api_key))

    def supported(self) -> SupportedResponse:
        return self._client().get_supported()

    def verify(self, payload: PaymentPayload, requirements: PaymentRequirements) -> VerifyResponse:
        async def call() -> VerifyResponse:
            async with self._client() as client:
                return await client.verify(payload, requirements)

        return asyncio.run(call())

    def settle(self, payload: PaymentPayload, requirements: PaymentRequirements) -> SettleResponse:
        async def call() -> SettleResponse:
            async with self._client() as client:
                return await client.settle(payload, requirements)

        return asyncio.run(call())


@pytest.fixture
def facilitator(facilitator_url: str) -> Facilitator:
    return Facilitator(facilitator_url)


@pytest.fixture
def connect() -> type[Facilitator]:
    """`connect(url, api_key=None)`: an SDK-backed client for any facilitator URL."""
    return Facilitator


@pytest.fixture(scope="session")
def api_key() -> str:
    return API_KEY
