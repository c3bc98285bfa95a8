"""The one call the gateway makes at start: a paywall from the environment, or none.

In `claw402.gateway.server.build_app`:

    registry = Registry.open(settings)
    sink = EventSink.in_child(registry)
    paywall = paywall_from_env(registry.engine)   # raises PaymentConfigError
    Gateway(registry, guard=paywall or unpriced_guard, sink=sink)

`None` means no payment network is configured (no `CLAW402_ENV`, no `CLAW402_NETWORK`/
`CLAW402_ASSET`/`CLAW402_FACILITATOR_URL`): priced tenants then answer 402 without a way to
pay. A half-configured environment raises `PaymentConfigError` naming the variable to fix.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from sqlalchemy import Engine

from claw402.payments.config import payment_config_from_env
from claw402.payments.offer import Discovery
from claw402.payments.paywall import Paywall
from claw402.registry.models import Tenant


def paywall_from_env(
    engine: Engine,
    environ: Mapping[str, str] | None = None,
    *,
    discovery: Callable[[Tenant], Discovery] | None = None,
) -> Paywall | None:
    config = payment_config_from_env(os.environ if environ is None else environ)
    return None if config is None else Paywall(config, engine, discovery=discovery)
