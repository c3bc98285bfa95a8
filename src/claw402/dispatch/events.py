"""Lifecycle events: one shape for dispatch and payment steps, in every runtime."""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from typing import Any

from claw402.dispatch.plans import Limits
from claw402.dispatch.routing import TenantRoute

DISPATCH_START = "dispatch_start"
DISPATCH_SUCCESS = "dispatch_success"
DISPATCH_FAILURE = "dispatch_failure"


# What the gateway queues per event: a flat tuple of plain values, expanded into the record
# (`expand`) by whoever writes it, off the request path. The event writer's child process reads
# a batch of these back ~10x faster than the nested records (`gateway/event_writer.py`).
Compact = tuple[Any, ...]
# One request's events, in order: the gateway queues a request's trail as one item when the
# request ends, and it is stored as one row (`Registry.write_trails`), as Workers Trace Events
# keep one record per invocation.
Trail = list[Compact]


def compact(
    kind: str,
    request_id: str,
    tenant: TenantRoute | None,
    *,
    status: int | None = None,
    duration_ms: float | None = None,
    reason: str | None = None,
    correlation_id: str | None = None,
    **details: Any,
) -> Compact:
    """`request_id` is the gateway's own, unique per request; `correlation_id` the id the
    caller sent (`x-request-id`), which many requests may share: one event of a trail carrying
    it is enough, the row keeps it for all of them."""
    if tenant is None:
        return (kind, time.time(), request_id, None, None, None, None, status, duration_ms,
                reason, details or None, correlation_id)
    limits = tenant.limits
    return (kind, time.time(), request_id, tenant.tenant_id, tenant.worker_name, limits.cpu_ms,
            limits.sub_requests, status, duration_ms, reason, details or None, correlation_id)


def expand(item: Compact) -> dict[str, Any]:
    """The event record of a `compact` tuple: the one shape every runtime emits."""
    kind, ts, request_id, tenant_id, worker, cpu_ms, sub_requests, status, duration_ms, reason, \
        details, correlation_id = item
    record: dict[str, Any] = {
        "type": kind,
        "ts": ts,
        "requestId": request_id,
        "tenantId": tenant_id,
        "workerName": worker,
        "limits": None if cpu_ms is None else limits_payload(cpu_ms, sub_requests),
        "status": status,
        "durationMs": None if duration_ms is None else round(duration_ms, 3),
        "reason": reason,
    }
    if details:
        record["details"] = details
    if correlation_id is not None:
        record["correlationId"] = correlation_id
    return record


def event(kind: str, request_id: str, tenant: TenantRoute | None, **fields: Any) -> dict[str, Any]:
    """The record of `compact(kind, request_id, tenant, **fields)`, built at once."""
    return expand(compact(kind, request_id, tenant, **fields))


_PAYLOADS: dict[tuple[int, int], dict[str, int]] = {}


def limits_payload(cpu_ms: int, sub_requests: int) -> dict[str, int]:
    """Built once per distinct limits and shared read-only (records are serialised, never
    edited)."""
    found = _PAYLOADS.get((cpu_ms, sub_requests))
    if found is None:
        if len(_PAYLOADS) > 4096:  # overrides are per tenant: keep the table bounded
            _PAYLOADS.clear()
        found = _PAYLOADS[(cpu_ms, sub_requests)] = Limits(cpu_ms, sub_requests).payload()
    return found


# -- events reported by another runtime (the dispatch Worker posts them to the gateway) -------

MAX_BATCH = 100  # one request sends a handful; more is not the dispatch Worker
KINDS = frozenset({
    "dispatch_start", "dispatch_success", "dispatch_failure",
    "payment_challenge", "payment_verified", "payment_settled", "payment_pending",
    "payment_failed", "payment_replayed",
})
_FIELDS = {"type": str, "ts": (int, float), "requestId": str}
MAX_ID = 64  # characters of a request or correlation id (the events table's columns)


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
        if len(item["requestId"]) > MAX_ID:
            raise InvalidEvents(f"event {index}: requestId is longer than {MAX_ID} characters")
        correlation = item.get("correlationId")
        if correlation is not None and not (isinstance(correlation, str)
                                            and 0 < len(correlation) <= MAX_ID):
            raise InvalidEvents(f"event {index}: correlationId must be 1 to {MAX_ID} characters")
    return events
