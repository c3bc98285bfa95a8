"""A paid resource server offering `batch-settlement` first and `exact` second at one price,
built from the x402 SDK's own parts (`x402HTTPResourceServerSync`, the batch-settlement and
exact server schemes) against our real facilitator: the other side the payer tests talk to.

A uniquely named module (not conftest) so tests and benchmarks can import it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from x402 import x402ResourceServerSync
from x402.http import HTTPFacilitatorClientSync
from x402.http.types import HTTPRequestContext, HTTPTransportContext, PaymentOption, RouteConfig
from x402.http.x402_http_server import x402HTTPResourceServerSync
from x402.mechanisms.evm.batch_settlement.server import (
    BatchSettlementChannelManagerSync,
    BatchSettlementEvmScheme,
    ChannelManagerConfigSync,
)
from x402.mechanisms.evm.exact import ExactEvmServerScheme

from claw402.chain.devchain import DevChain
from claw402.facilitator.client import facilitator_config
from claw402.serving import ServerThread

PATH = "/data"


@dataclass
class ChannelServer:
    url: str  # the paid resource
    pay_to: str
    scheme: BatchSettlementEvmScheme
    manager: BatchSettlementChannelManagerSync


class _Adapter:
    """The SDK's HTTPAdapter over a Starlette request."""

    def __init__(self, request: Request) -> None:
        self.request = request

    def get_header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    def get_method(self) -> str:
        return self.request.method

    def get_path(self) -> str:
        return self.request.url.path

    def get_url(self) -> str:
        return str(self.request.url)

    def get_accept_header(self) -> str:
        return self.request.headers.get("accept", "")

    def get_user_agent(self) -> str:
        return self.request.headers.get("user-agent", "")

    def get_query_params(self) -> dict[str, Any]:
        return dict(self.request.query_params)

    def get_query_param(self, name: str) -> str | None:
        return self.request.query_params.get(name)

    def get_body(self) -> Any:
        return None


def _answer(instructions: Any) -> Response:
    return JSONResponse(instructions.body or {}, instructions.status, instructions.headers)


def build_app(
    http: x402HTTPResourceServerSync, manager: BatchSettlementChannelManagerSync | None = None
) -> Starlette:
    """The paid route; with `manager`, `POST /_flush` claims and settles what is owed (for a
    server in another process, e.g. the benchmark's)."""

    def data(request: Request) -> Response:  # sync: Starlette runs it in its thread pool
        adapter = _Adapter(request)
        context = HTTPRequestContext(
            adapter=adapter,
            path=request.url.path,
            method=request.method,
            payment_header=adapter.get_header("payment-signature"),
        )
        result = http.process_http_request(context)
        if result.type != "payment-verified":
            return _answer(result.response)
        body = b'{"rows": [1, 2, 3]}'
        settled = http.process_settlement(
            result.payment_payload,
            result.payment_requirements,
            context=context,
            declared_extensions=result.declared_extensions,
            transport_context=HTTPTransportContext(request=context),
            before_handler_settlement=result.before_handler_settlement,
        )
        if not settled.success:
            return _answer(settled.response)
        return Response(body, 200, settled.headers, media_type="application/json")

    def flush(request: Request) -> Response:
        assert manager is not None
        claims = manager.claim()
        settled = manager.settle() if claims else None
        return JSONResponse(
            {
                "claims": [c.transaction for c in claims],
                "vouchers": sum(c.vouchers for c in claims),
                "settle": settled.transaction if settled else None,
            }
        )

    routes = [Route(PATH, data)]
    if manager is not None:
        routes.append(Route("/_flush", flush, methods=["POST"]))
    return Starlette(routes=routes)


def build_http(
    facilitator: HTTPFacilitatorClientSync,
    network: str,
    token: str,
    asset_extra: dict[str, str],
    pay_to: str,
    price: int,
) -> tuple[x402HTTPResourceServerSync, BatchSettlementEvmScheme, BatchSettlementChannelManagerSync]:
    """The SDK's HTTP resource server offering a channel, then `exact`, and its channel
    manager."""
    server = x402ResourceServerSync(facilitator)
    scheme = BatchSettlementEvmScheme(pay_to)
    server.register(network, scheme)
    server.register(network, ExactEvmServerScheme())
    amount = {"amount": str(price), "asset": token, "extra": dict(asset_extra)}
    offers = [
        PaymentOption(scheme=name, pay_to=pay_to, price=amount, network=network,
                      max_timeout_seconds=120)
        for name in ("batch-settlement", "exact")
    ]  # fmt: skip
    http = x402HTTPResourceServerSync(server, {f"GET {PATH}": RouteConfig(accepts=offers)})
    http.initialize()
    manager = BatchSettlementChannelManagerSync(
        ChannelManagerConfigSync(
            scheme=scheme, facilitator=facilitator, receiver=pay_to, token=token, network=network
        )
    )
    return http, scheme, manager


@contextmanager
def channel_server(chain: DevChain, facilitator_url: str, price: int) -> Iterator[ChannelServer]:
    """A running server that sells `PATH` for `price` atomic units to a fresh receiver."""
    pay_to = Account.create().address
    facilitator = HTTPFacilitatorClientSync(facilitator_config(facilitator_url))
    http, scheme, manager = build_http(
        facilitator, chain.network, chain.token, dict(chain.asset_extra), pay_to, price
    )
    thread = ServerThread(build_app(http)).start()
    try:
        yield ChannelServer(thread.url + PATH, pay_to, scheme, manager)
    finally:
        thread.stop()
        facilitator.close()
