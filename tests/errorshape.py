"""The error answer every runtime gives, as a caller checks it: shared by the gateway's and
the dispatch Worker's tests of the same failures."""

from __future__ import annotations

import httpx


def assert_limits_unavailable(r: httpx.Response, tenant_id: str, cause: str = "") -> None:
    """A 503 `limits_unavailable` in the usual shape, stamped with the request and tenant,
    with `Retry-After: 1` and a one-line detail (containing `cause`, if given)."""
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["error"] == "limits_unavailable" and body["ok"] is False, body
    assert body["requestId"] == r.headers["x-request-id"]
    assert r.headers["x-tenant-id"] == tenant_id
    assert r.headers["retry-after"] == "1"
    assert body["detail"] and "\n" not in body["detail"], body
    assert cause in body["detail"], body
