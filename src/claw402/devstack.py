"""The local stack behind `402claw dev` and `402claw demo`: chain, facilitator, gateway.

anvil runs as a child process; the facilitator and the gateway run on uvicorn threads in this
process, each on a free port unless one is asked for. `stop()` ends all of them.
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass
from typing import Any

from claw402.chain.anvil import AnvilError
from claw402.chain.devchain import DevChain, start_dev_chain
from claw402.config import Settings
from claw402.discovery.bazaar import tenant_bazaar
from claw402.events.sink import EventSink
from claw402.facilitator.server import background_server
from claw402.facilitator.settings import FacilitatorSettings
from claw402.gateway.app import Gateway
from claw402.ledger.startup import reconcile_at_start
from claw402.lifecycle import Stops
from claw402.payments.channels.manager import ChannelManager
from claw402.payments.config import DEV, PaymentConfig
from claw402.payments.paywall import Paywall
from claw402.registry.store import Registry
from claw402.serving import ServerThread


@dataclass
class DevStack(Stops):
    chain: DevChain
    facilitator: ServerThread
    gateway: ServerThread
    registry: Registry
    sink: EventSink
    payments: PaymentConfig
    channels: ChannelManager

    def describe(self) -> dict[str, Any]:
        """The `402claw dev --json` document."""
        return {
            "rpc_url": self.chain.rpc_url,
            "chain_id": self.chain.chain_id,
            "network": self.chain.network,
            "asset": self.chain.token,
            "asset_name": self.chain.token_name,
            "asset_version": self.chain.token_version,
            "facilitator_url": self.facilitator.url,
            "gateway_url": self.gateway.url,
            "treasury_address": self.chain.treasury.address,
            "payers": [
                {"address": p.address, "private_key": p.private_key} for p in self.chain.payers
            ],
        }

    def environment(self) -> dict[str, str]:
        """Variables that point another `402claw serve` at this chain and facilitator."""
        return {
            "CLAW402_ENV": DEV,
            "CLAW402_NETWORK": self.payments.network,
            "CLAW402_ASSET": self.payments.asset,
            "CLAW402_ASSET_NAME": self.payments.asset_name,
            "CLAW402_ASSET_VERSION": self.payments.asset_version,
            "CLAW402_FACILITATOR_URL": self.payments.facilitator_url,
            "CLAW402_TREASURY": self.payments.treasury,
            "CLAW402_RPC_URL": self.chain.rpc_url,
        }

    def stop(self) -> None:
        steps = (
            self.channels.stop,
            self.gateway.stop,
            self.sink.close,
            self.facilitator.stop,
            self.chain.stop,
        )
        for step in steps:
            with contextlib.suppress(Exception):  # stop the rest even if one part fails
                step()
        self.registry.close()


def start_dev_stack(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    gateway_port: int = 0,
    facilitator_port: int = 0,
    payers: int = 3,
    chain_port: int = 0,
) -> DevStack:
    chain = _dev_chain(payers, chain_port)
    started: list[Any] = [chain]
    try:
        facilitator = background_server(
            FacilitatorSettings(
                rpc_url=chain.rpc_url,
                private_key=chain.facilitator.private_key,
                network=chain.network,
            ),
            host=host,
            port=facilitator_port,
        ).start()
        started.append(facilitator)
        payments = PaymentConfig(
            network=chain.network,
            asset=chain.token,
            asset_name=chain.token_name,
            asset_version=chain.token_version,
            facilitator_url=facilitator.url,
            treasury=chain.treasury.address,
            environment=DEV,
            rpc_url=chain.rpc_url,
        )
        registry = Registry.open(settings)
        reconcile_at_start(
            registry.engine, rpc_url=chain.rpc_url, token=chain.token, treasury=payments.treasury
        )
        sink = EventSink.in_process(registry.engine)
        started.append(sink)
        paywall = Paywall(payments, registry.engine, discovery=tenant_bazaar)
        gateway_app = Gateway(registry, guard=paywall, sink=sink)
        gateway = ServerThread(gateway_app, host=host, port=gateway_port).start()
        started.append(gateway)
        gateway_app.public_url = gateway.url  # resource URLs name this address, whatever Host
        channels = ChannelManager(paywall.channels).start()
    except BaseException:
        for part in reversed(started):
            part.close() if isinstance(part, EventSink) else part.stop()
        raise
    return DevStack(chain, facilitator, gateway, registry, sink, payments, channels)


def _dev_chain(payers: int, port: int) -> DevChain:
    """The chain on `port` if it can be had, else on a free port. A browser wallet and the
    paywall page (viem's built-in chain 31337) read balances from 127.0.0.1:8545, so `dev`
    asks for that port; tests and a second stack get another one rather than a failure."""
    if port:
        try:
            return start_dev_chain(payers=payers, port=port)
        except AnvilError:
            if _port_free(port):
                raise  # anvil failed for another reason than a taken port
    return start_dev_chain(payers=payers)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
