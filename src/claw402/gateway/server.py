"""Build the gateway the way `402claw serve` runs it: settings plus the payment environment."""

from __future__ import annotations

from claw402.config import Settings
from claw402.gateway.app import Gateway, unpriced_guard
from claw402.gateway.events import EventSink
from claw402.payments.env import paywall_from_env
from claw402.registry.store import Registry


def build_app(settings: Settings) -> Gateway:
    """Raises `PaymentConfigError` at start when the payment environment is half-configured."""
    registry = Registry.open(settings)
    sink = EventSink(registry.write_events)
    paywall = paywall_from_env(registry.engine, sink.emit)
    if paywall is not None:  # settle the books with the chain first (needs CLAW402_RPC_URL)
        from claw402.ledger.startup import reconcile_from_env

        reconcile_from_env(
            registry.engine, token=paywall.config.asset, treasury=paywall.config.treasury
        )
    return Gateway(registry, guard=paywall or unpriced_guard, sink=sink)
