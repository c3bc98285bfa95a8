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


def build_app(settings: Settings, *, reconcile: bool = True) -> Gateway:
    """Raises `PaymentConfigError` at start when the payment environment is half-configured.

    `reconcile`: settle the books with the chain first (needs CLAW402_RPC_URL); `402claw
    serve` does it once before its workers start, not once per worker."""
    registry = Registry.open(settings)
    sink = EventSink.in_child(registry.engine)
    paywall = paywall_from_env(registry.engine, discovery=tenant_bazaar)
    if paywall is not None and reconcile:
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
    from `CLAW402_HOME` / `CLAW402_DATABASE_URL` and the payment variables.

    Per worker: the directory snapshot and its replay memo (each polls the registry's
    generation, so a deploy reaches every worker), the open datasets, and the event sink with
    its own writer child (a request's events are written by the worker that served it, once).
    Once per `serve`, in its parent: the migration, the reconcile at start, the channel
    manager."""
    starting_up()
    app = build_app(load_settings(), reconcile=False)
    tune_gc()
    return app


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def starting_up() -> None:
    """Signals while the worker builds its app, before granian installs its own handlers.

    A forked worker inherits the serve process's handlers, which only set a flag in the
    parent's memory: a SIGTERM from a serve stopped while this worker starts would be lost,
    and serve would wait for it forever. Until granian takes over, SIGTERM ends the worker
    (it has served nothing yet) and SIGINT (a terminal's Ctrl-C, sent to the whole group) is
    left to serve, which stops its workers itself."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()


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
