"""The generated dispatch Worker under real workerd: routing, limits, errors, headers, events.

The user Workers here are small hand-written ones (an echo, one that throws, one that runs over
its limits) so each dispatcher rule is tested on its own; the data API is tested elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from cfhelpers import js_worker, make_tenant, wait_for

from claw402.cloudflare.dispatcher import DispatcherOptions, build_dispatcher
from claw402.cloudflare.workerd import LocalEdge
from claw402.events.compact import event
from claw402.events.kinds import DISPATCH_SUCCESS

ECHO = """export default { async fetch(request) {
  const url = new URL(request.url);
  return Response.json({ path: url.pathname, search: url.search,
    headers: Object.fromEntries(request.headers) }, { headers: { "x-tenant-id": "spoofed" } });
} };"""
THROWS = 'export default { async fetch() { throw new RangeError("tenant bug"); } };'
OVER_LIMIT = (
    'export default { async fetch() { throw new Error("Worker exceeded CPU time limit."); } };'
)

TENANTS = [
    make_tenant("acme", plan="pro", hosts=("api.acme.test",)),
    make_tenant("beta", cpu_ms=75, sub_requests=7),
    make_tenant("crash", plan="business"),
    make_tenant("slow", plan="quarantine"),
    make_tenant("ghost"),  # in the directory, but no Worker in the namespace
    make_tenant("priced", price_atomic=2500),
]
WORKERS = [
    js_worker("tenant-acme-worker", ECHO),
    js_worker("tenant-beta-worker", ECHO),
    js_worker("tenant-crash-worker", THROWS),
    js_worker("tenant-slow-worker", OVER_LIMIT),
    js_worker("tenant-priced-worker", ECHO),
]


@pytest.fixture(scope="module")
def edge() -> Iterator[LocalEdge]:
    with LocalEdge(build_dispatcher(TENANTS), WORKERS) as running:
        yield running


@pytest.fixture
def client(edge: LocalEdge) -> Iterator[httpx.Client]:
    edge.clear("dispatches")
    edge.clear("events")
    with httpx.Client(base_url=edge.url, timeout=10) as client:
        yield client


def test_routes_by_path_with_prefix_stripped(client, edge):
    r = client.get("/t/acme/v1/records?country=Japan&_limit=2")
    assert r.status_code == 200
    seen = r.json()
    assert seen["path"] == "/v1/records" and seen["search"] == "?country=Japan&_limit=2"
    assert seen["headers"]["x-claw402-path"] == "/v1/records"
    assert seen["headers"]["x-claw402-root-url"] == f"{edge.url}/t/acme"
    assert client.get("/t/acme").json()["path"] == "/"
    assert client.get("/t/acme/").json()["path"] == "/"
    # An ASGI server decodes the path before the gateway sees it; so does the dispatcher.
    assert client.get("/t/%61cme/v1/a%20b").json()["headers"]["x-claw402-path"] == "/v1/a%20b"


def test_host_first(client):
    for host in ("api.acme.test", "API.Acme.Test:8443", "api.acme.test."):
        r = client.get("/t/beta/v1/records", headers={"host": host})
        assert r.status_code == 200, host
        assert r.headers["x-tenant-id"] == "tnt_acme"  # the host wins over the path
        assert r.json()["path"] == "/t/beta/v1/records"
    r = client.get("/t/beta/v1/records", headers={"host": "unknown.test"})
    assert r.headers["x-tenant-id"] == "tnt_beta"


@pytest.mark.parametrize(
    "path",
    [
        "/t/nobody/v1/records",
        "/t/../x",
        "/t/%2e%2e/v1/records",
        "/v1/records",
        "/x",
        "/t/ACME/v1/records",
        "/t/-acme/",
        "/t/admin/",
        "/t/",
        "/tacme/v1/records",
    ],
)
def test_unknown_tenants(client, path):  # ("/" is the catalogue: tests/contract/test_pages.py)
    r = client.get(path)
    assert r.status_code == 404, path
    assert r.json() == {
        "ok": False,
        "error": "tenant_not_found",
        "requestId": r.headers["x-request-id"],
    }
    assert "x-tenant-id" not in r.headers
    assert r.headers["content-type"] == "application/json"


def test_missing_worker_is_tenant_not_found(client, edge):
    r = client.get("/t/ghost/v1/records")
    assert r.status_code == 404
    assert r.json()["error"] == "tenant_not_found"
    assert r.headers["x-tenant-id"] == "tnt_ghost"
    assert edge.records("dispatches")[-1] == {
        "name": "tenant-ghost-worker",
        "args": {},
        "options": {"limits": {"cpuMs": 50, "subRequests": 10}},
        "found": False,
    }


def test_tenant_crash_is_502(client):
    r = client.get("/t/crash/v1/records")
    assert r.status_code == 502
    assert r.json() == {
        "ok": False,
        "error": "tenant_worker_failure",
        "requestId": r.headers["x-request-id"],
    }
    assert r.headers["x-tenant-id"] == "tnt_crash"


def test_platform_limit_is_503(client):
    r = client.get("/t/slow/v1/records")
    assert r.status_code == 503
    assert r.json()["error"] == "tenant_limit_exceeded"


def test_limits_passed_per_plan_and_override(client, edge):
    # Each from its own client address: the quarantine plan allows one call a second a caller.
    for i, path in enumerate(("/t/acme/", "/t/beta/", "/t/crash/", "/t/slow/")):
        client.get(path, headers={"cf-connecting-ip": f"198.51.100.{i + 1}"})
    got = {d["name"]: d["options"]["limits"] for d in edge.records("dispatches")}
    assert got == {
        "tenant-acme-worker": {"cpuMs": 200, "subRequests": 50},  # pro
        "tenant-beta-worker": {"cpuMs": 75, "subRequests": 7},  # overrides win
        "tenant-crash-worker": {"cpuMs": 350, "subRequests": 100},  # business
        "tenant-slow-worker": {"cpuMs": 25, "subRequests": 3},  # quarantine
    }


def test_request_id_and_headers(client):
    r = client.get(
        "/t/acme/v1/records",
        headers={"x-request-id": "trace-123", "x-claw402-root-url": "http://evil"},
    )
    rid = r.headers["x-request-id"]  # always the dispatcher's own; the caller's correlates
    assert rid != "trace-123" and len(rid) == 32
    assert r.headers["x-correlation-id"] == "trace-123"
    seen = r.json()["headers"]
    assert seen["x-request-id"] == rid  # the tenant logs the same id
    assert seen["x-claw402-root-url"].endswith("/t/acme")  # a caller cannot choose it
    assert r.headers["x-tenant-id"] == "tnt_acme"  # the tenant cannot spoof it
    bad = client.get("/t/acme/", headers={"x-request-id": "bad id with spaces"})
    assert bad.headers["x-request-id"] != "bad id with spaces"
    assert len(bad.headers["x-request-id"]) == 32 and "x-correlation-id" not in bad.headers
    health = client.get("/healthz", headers={"host": "api.acme.test"})
    assert health.json() == {"ok": True} and "x-tenant-id" not in health.headers


def test_priced_route_without_facilitator_is_402(client):
    r = client.get("/t/priced/v1/records")
    assert r.status_code == 402
    assert r.json()["error"] == "payment_required"
    assert "$0.0025 per call" in r.json()["detail"]
    assert client.get("/t/priced/v1/schema").status_code == 200  # only data routes are paid
    assert client.post("/t/priced/v1/records").status_code == 200  # the tenant answers 405


def test_lifecycle_events(client, edge):
    r = client.get("/t/acme/v1/records", headers={"x-request-id": "ev-1"})
    crash = client.get("/t/crash/x", headers={"x-request-id": "ev-2"})
    miss = client.get("/t/nobody/")
    ids = [a.headers["x-request-id"] for a in (r, crash, miss)]
    events = wait_for(lambda: edge.records("events"), 5)
    assert [(e["type"], e["requestId"], e.get("correlationId")) for e in events] == [
        ("dispatch_start", ids[0], "ev-1"),
        ("dispatch_success", ids[0], "ev-1"),
        ("dispatch_start", ids[1], "ev-2"),
        ("dispatch_failure", ids[1], "ev-2"),
        ("dispatch_failure", ids[2], None),
    ]
    python_shape = set(event(DISPATCH_SUCCESS, "x", None))
    for e in events:
        assert python_shape <= set(e), e
    start, success, _, failure, unknown = events
    assert start["details"] == {"path": "/v1/records"} and start["status"] is None
    assert success["tenantId"] == r.headers["x-tenant-id"]
    assert success["workerName"] == "tenant-acme-worker"
    assert success["limits"] == {"cpuMs": 200, "subRequests": 50, "cpu_ms": 200, "subrequests": 50}
    assert success["status"] == 200 and success["durationMs"] >= 0 and success["reason"] is None
    assert failure["status"] == 502 and failure["reason"] == "RangeError: tenant bug"
    assert unknown == {
        **unknown,
        "tenantId": None,
        "status": 404,
        "reason": "tenant_not_found",
        "details": {"path": "/t/nobody/", "steps": ["resolve"]},
    }


def test_registry_shaped_directory_and_missing_binding():
    options = DispatcherOptions(directory_format="registry")
    with LocalEdge(build_dispatcher(TENANTS, options), WORKERS, namespace_binding=False) as edge:
        r = httpx.get(f"{edge.url}/t/acme/v1/records")
        assert r.status_code == 500
        assert r.json()["error"] == "dispatcher_binding_missing"
        assert r.headers["x-tenant-id"] == "tnt_acme"  # resolved from the registry shape
        assert httpx.get(f"{edge.url}/t/nobody/").status_code == 404
