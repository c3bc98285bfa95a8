"""A paywalled gateway over a real registry, for tests that read 402 challenges."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from claw402.config import Settings
from claw402.events.sink import EventSink
from claw402.gateway.app import Gateway
from claw402.payments.config import PaymentConfig
from claw402.payments.paywall import Paywall
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.store import Registry
from claw402.samples import CITIES
from claw402.serving import ServerThread

ADDRESS = "0x" + "11" * 20


@contextmanager
def priced_gateway(
    tmp_path: Path, discovery: Any = None, **gateway: object
) -> Iterator[tuple[Settings, Registry, Gateway, httpx.Client]]:
    """A paywalled gateway (`gateway`: more Gateway arguments; `discovery`: the paywall's)
    serving a priced `cities` with the host `cities.test`. No facilitator: no call may get as
    far as verifying a payment."""
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    registry = Registry.open(settings)
    config = PaymentConfig(
        network="eip155:31337",
        asset=ADDRESS,
        asset_name="USD Coin",
        asset_version="2",
        facilitator_url="http://127.0.0.1:9",  # unreachable: no call here may need it
        treasury=ADDRESS,
    )
    app = Gateway(
        registry,
        guard=Paywall(config, registry.engine, discovery=discovery),
        sink=EventSink.in_process(registry.engine, interval=0.02),
        **gateway,  # type: ignore[arg-type]
    )
    deploy(registry, settings, DeployRequest(source=CITIES, slug="cities", price="0.001",
                                             hosts=("cities.test",)))  # fmt: skip
    try:
        with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=10) as client:
            yield settings, registry, app, client
    finally:
        registry.close()


def count_guarded(gateway: Gateway) -> list[int]:
    """Wrap the gateway's guard: the list returned grows by one per call it guards (a replayed
    402 never reaches it)."""
    guarded: list[int] = []
    guard = gateway.guard

    async def counted(*args: Any) -> Any:
        guarded.append(1)
        return await guard(*args)

    gateway.guard = counted
    return guarded
