"""Lifecycle events: one shape for dispatch and payment steps, in every runtime."""

from __future__ import annotations

import time
from typing import Any

from claw402.dispatch.routing import TenantRoute

DISPATCH_START = "dispatch_start"
DISPATCH_SUCCESS = "dispatch_success"
DISPATCH_FAILURE = "dispatch_failure"


def event(
    kind: str,
    request_id: str,
    tenant: TenantRoute | None,
    *,
    status: int | None = None,
    duration_ms: float | None = None,
    reason: str | None = None,
    **details: Any,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": kind,
        "ts": time.time(),
        "requestId": request_id,
        "tenantId": tenant.tenant_id if tenant else None,
        "workerName": tenant.worker_name if tenant else None,
        "limits": tenant.limits.payload() if tenant else None,
        "status": status,
        "durationMs": None if duration_ms is None else round(duration_ms, 3),
        "reason": reason,
    }
    if details:
        record["details"] = details
    return record
