"""The event record every runtime emits, and the flat tuple the gateway queues in its place.

`compact` is what the request path builds: a tuple of plain values, no nesting, which the sink
hands to the event writer's child process as is (marshal carries tuples of plain values far
faster than nested records). Whoever writes it expands it (`expand`, or
`claw402.events.rows.compact_row` straight to a row), off the request path.
"""

from __future__ import annotations

import time
from typing import Any

from claw402.dispatch.plans import Limits
from claw402.dispatch.routing import TenantRoute

# What the gateway queues per event (see `compact` for the fields, in order).
Compact = tuple[Any, ...]
# One request's events, in order: the gateway queues a request's trail as one item when the
# request ends, and it is stored as one row (`EventStore.write_compact_trails`), as Workers
# Trace Events keep one record per invocation.
Trail = list[Compact]
DETAILS = 10  # where a `compact` tuple keeps its details (a dict, or None)


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
        return (
            kind,
            time.time(),
            request_id,
            None,
            None,
            None,
            None,
            status,
            duration_ms,
            reason,
            details or None,
            correlation_id,
        )
    limits = tenant.limits
    return (
        kind,
        time.time(),
        request_id,
        tenant.tenant_id,
        tenant.worker_name,
        limits.cpu_ms,
        limits.sub_requests,
        status,
        duration_ms,
        reason,
        details or None,
        correlation_id,
    )


def expand(item: Compact) -> dict[str, Any]:
    """The event record of a `compact` tuple: the one shape every runtime emits."""
    (
        kind,
        ts,
        request_id,
        tenant_id,
        worker,
        cpu_ms,
        sub_requests,
        status,
        duration_ms,
        reason,
        details,
        correlation_id,
    ) = item
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
