"""Lifecycle events sent by the dispatch Worker, into the registry's events table.

The Worker posts `{"events": [...]}` to `EVENTS_URL` with `Authorization: Bearer
<EVENTS_TOKEN>` once per request (dispatch_start / _success / _failure and the payment_*
steps, in the shape of `claw402.dispatch.events.event`). `ingest_events` checks a batch and
writes it where the gateway's own events go, so `402claw events` reads edge and self-hosted
events alike. Serving it over HTTP is the gateway's job (this layer knows nothing of ASGI).
"""

from __future__ import annotations

from claw402.dispatch.events import (
    KINDS,
    MAX_BATCH,
    InvalidEvents,
    authorized,
    check_batch,
)
from claw402.registry.store import Registry

__all__ = ["KINDS", "MAX_BATCH", "InvalidEvents", "authorized", "check_batch", "ingest_events"]


def ingest_events(registry: Registry, payload: object) -> int:
    """Write one batch from the edge; returns how many events were stored."""
    events = check_batch(payload)
    registry.write_events([{**e, "source": "edge"} for e in events])
    return len(events)
