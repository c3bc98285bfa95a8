"""Lifecycle events sent by the dispatch Worker, into the registry's events table.

The Worker posts `{"events": [...]}` to `EVENTS_URL` with `Authorization: Bearer
<EVENTS_TOKEN>` once per request (dispatch_start / _success / _failure and the payment_*
steps, in the shape of `claw402.dispatch.events.event`). `ingest_events` checks a batch and
writes it where the gateway's own events go, so `402claw events` reads edge and self-hosted
events alike. Serving it over HTTP is the gateway's job (this layer knows nothing of ASGI).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from claw402.registry.store import Registry

MAX_BATCH = 100  # one request sends a handful; more is not the dispatch Worker
KINDS = frozenset({
    "dispatch_start", "dispatch_success", "dispatch_failure",
    "payment_challenge", "payment_verified", "payment_settled", "payment_pending",
    "payment_failed", "payment_replayed",
})
_FIELDS = {"type": str, "ts": (int, float), "requestId": str}


class InvalidEvents(ValueError):
    """The batch is refused whole; nothing was written."""


def authorized(header: str | None, token: str) -> bool:
    scheme, _, value = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(),
                                                              token.encode())


def check_batch(payload: object) -> list[dict[str, Any]]:
    events = payload.get("events") if isinstance(payload, Mapping) else None
    if not isinstance(events, list) or not 0 < len(events) <= MAX_BATCH:
        raise InvalidEvents(f'expected {{"events": [...]}} with 1 to {MAX_BATCH} events')
    for index, item in enumerate(events):
        if not isinstance(item, dict):
            raise InvalidEvents(f"event {index} is not an object")
        for name, kind in _FIELDS.items():
            if not isinstance(item.get(name), kind) or isinstance(item.get(name), bool):
                raise InvalidEvents(f"event {index}: {name} is missing or of the wrong type")
        if item["type"] not in KINDS:
            raise InvalidEvents(f"event {index}: unknown type {item['type']!r}")
        if item.get("tenantId") is not None and not isinstance(item["tenantId"], str):
            raise InvalidEvents(f"event {index}: tenantId must be text")
    return events


def ingest_events(registry: Registry, payload: object) -> int:
    """Write one batch from the edge; returns how many events were stored."""
    events = check_batch(payload)
    registry.write_events([{**e, "source": "edge"} for e in events])
    return len(events)
