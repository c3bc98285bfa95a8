"""Events the dispatch Worker reports: the one way a batch of them is checked and stored.

The Worker posts `{"events": [...]}` once per request (to the gateway's `POST
/_claw402/events`, `Authorization: Bearer <EVENTS_TOKEN>`), each event in the shape of
`claw402.events.compact.event`. `ingest` checks the batch whole and writes it where the
gateway's own events go, marked `"source": "edge"`, so `402claw events` reads edge and
self-hosted events alike and the ledger can attribute the edge's settlements
(`claw402.ledger.edge`). Serving it over HTTP is the gateway's job.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

import orjson

from claw402.events.kinds import KINDS
from claw402.events.store import EDGE, EventStore

MAX_BATCH = 100  # one request sends a handful; more is not the dispatch Worker
MAX_ID = 64  # characters of a request or correlation id (the events table's columns)
_FIELDS = {"type": str, "ts": (int, float), "requestId": str}


class InvalidEvents(ValueError):
    """The batch is refused whole; nothing was written."""


def authorized(header: str | None, token: str) -> bool:
    """Does an `Authorization` header carry `token` as its bearer secret?"""
    scheme, _, value = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode(), token.encode()
    )


def check_batch(payload: object) -> list[dict[str, Any]]:
    """The batch's events, or `InvalidEvents` saying what is wrong with the first bad one."""
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
        if len(item["requestId"]) > MAX_ID:
            raise InvalidEvents(f"event {index}: requestId is longer than {MAX_ID} characters")
        correlation = item.get("correlationId")
        if correlation is not None and not (
            isinstance(correlation, str) and 0 < len(correlation) <= MAX_ID
        ):
            raise InvalidEvents(f"event {index}: correlationId must be 1 to {MAX_ID} characters")
    return events


def ingest(store: EventStore, body: bytes) -> int:
    """Check and store one posted batch (the request body, JSON); returns how many events
    were stored. Raises `InvalidEvents` and stores nothing if any of it is wrong. The write
    is done when this returns: the ledger may read the batch's settlements at once."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvents(str(exc)) from None
    events = check_batch(payload)
    store.write_events([{**item, "source": EDGE} for item in events])
    return len(events)
