"""Dispatcher failures and the answers they map to, identical in every runtime."""

from __future__ import annotations

STATUS = {
    "tenant_not_found": 404,
    "dispatcher_binding_missing": 500,
    "tenant_worker_failure": 502,
    "tenant_limit_exceeded": 503,  # the tenant ran over its plan's limits
    "rate_limited": 429,  # one caller over its rate (`claw402.limits`)
    "usage_quota_exceeded": 429,  # the tenant's day or month quota is used up
    "cap_exceeded": 402,  # the tenant's daily spend cap: refused before any settlement
    "limits_unavailable": 503,  # rate counters or usage books down: paid routes fail closed
    "internal_error": 500,  # an exception no step answered, before any tenant was resolved
}


def error_body(code: str, request_id: str, detail: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {"ok": False, "error": code, "requestId": request_id}
    if detail:
        body["detail"] = detail
    return body
