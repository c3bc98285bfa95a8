"""Build the gateway the way `402claw serve` runs it: settings plus the environment.

`CLAW402_EVENTS_TOKEN`, when set, opens `POST /_claw402/events` for the dispatch Worker's
lifecycle events (its `EVENTS_URL`, with the same token as `EVENTS_TOKEN`).
`CLAW402_PUBLIC_URL` (`402claw serve --public-url`) roots the 402 resource URLs and OpenAPI
servers; it and `CLAW402_RESERVED_HOSTS` are names no tenant's custom host may route by.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

from claw402.config import Settings, load_settings
from claw402.discovery.bazaar import tenant_bazaar
from claw402.events.sink import EventSink
from claw402.gateway.app import Gateway, unpriced_guard
from claw402.gc_tuning import tune_gc
from claw402.payments.env import paywall_from_env
from claw402.registry.store import Registry


def build_app(settings: Settings) -> Gateway:
    """Raises `PaymentConfigError` at start when the payment environment is half-configured."""
    registry = Registry.open(settings)
    sink = EventSink.in_child(registry.engine)
    paywall = paywall_from_env(registry.engine, discovery=tenant_bazaar)
    if paywall is not None:  # settle the books with the chain first (needs CLAW402_RPC_URL)
        from claw402.ledger.startup import reconcile_from_env

        reconcile_from_env(
            registry.engine, token=paywall.config.asset, treasury=paywall.config.treasury
        )
    return Gateway(
        registry,
        guard=paywall or unpriced_guard,
        sink=sink,
        events_token=os.environ.get("CLAW402_EVENTS_TOKEN") or None,
        public_url=settings.public_url,
        reserved_hosts=settings.reserved_hosts,
    )


def app_from_env() -> Gateway:
    """The factory `402claw serve` hands granian: each worker process builds its own gateway
    from `CLAW402_HOME` / `CLAW402_DATABASE_URL` and the payment variables."""
    die_with_parent()
    app = build_app(load_settings())
    tune_gc()
    return app


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker when the `402claw serve` process that spawned it dies,
    however it dies (a SIGKILL runs no clean-up): an orphaned worker would go on serving the
    port, and its event writer with it. Elsewhere granian's own supervision is all there is."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() == 1:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
