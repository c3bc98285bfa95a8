import pytest

from claw402.dispatch.naming import InvalidName, check_slug, normalize_host, request_host
from claw402.dispatch.plans import PLANS, effective_limits
from claw402.dispatch.routing import Directory, DirectoryEntry, route_for


def _tenant(slug: str, *hosts: str, plan: str = "free", **kw):
    return route_for(
        tenant_id=f"id-{slug}",
        slug=slug,
        worker_name=f"tenant-{slug}-worker",
        plan=plan,
        hosts=hosts,
        **kw,
    )


@pytest.mark.parametrize("slug", ["a", "acme", "acme-data-2", "x" * 63, "0abc"])
def test_valid_slugs(slug):
    assert check_slug(slug) == slug


@pytest.mark.parametrize(
    "slug", ["", "-a", "a-", "A", "a_b", "../x", "a/b", "x" * 64, "admin", "t", "é", "a.b", " a"]
)
def test_invalid_slugs(slug):
    with pytest.raises(InvalidName):
        check_slug(slug)


def test_hosts_normalised_and_checked():
    assert normalize_host("API.Acme.COM.") == "api.acme.com"
    for bad in ["api.acme.com:8080", "localhost", "a..b", "-a.com", "a b.com", "http://x.com"]:
        with pytest.raises(InvalidName):
            normalize_host(bad)
    assert request_host("API.acme.com:8402") == "api.acme.com"
    assert request_host(None) is None


def test_plan_limits_and_overrides():
    assert effective_limits("free") == PLANS["free"]
    assert (PLANS["pro"].cpu_ms, PLANS["pro"].sub_requests) == (200, 50)
    assert (PLANS["business"].cpu_ms, PLANS["business"].sub_requests) == (350, 100)
    assert (PLANS["enterprise"].cpu_ms, PLANS["enterprise"].sub_requests) == (600, 250)
    assert (PLANS["quarantine"].cpu_ms, PLANS["quarantine"].sub_requests) == (25, 3)
    limits = effective_limits("pro", 999, None)
    assert (limits.cpu_ms, limits.sub_requests) == (999, 50)
    # Only positive integers override.
    for bad in (0, -5, "300", 1.5, True):
        assert effective_limits("pro", bad, bad) == PLANS["pro"]
    assert effective_limits("free").payload() == {
        "cpuMs": 50,
        "subRequests": 10,
        "cpu_ms": 50,
        "subrequests": 10,
    }


def test_resolution_prefers_host_then_path():
    acme = _tenant("acme", "api.acme.com")
    beta = _tenant("beta")
    directory = Directory([DirectoryEntry(acme, "acme's record"), DirectoryEntry(beta, None)])
    by_host = directory.resolve("api.acme.com:443", "/t/beta/v1/records")
    assert by_host is not None and by_host.route is acme
    assert by_host.entry.tenant == "acme's record"  # the runtime's own record, typed
    assert by_host.path == "/t/beta/v1/records"  # a host route never strips a path

    by_path = directory.resolve("gateway.local", "/t/beta/v1/records")
    assert by_path is not None and by_path.route is beta and by_path.path == "/v1/records"
    root = directory.resolve(None, "/t/beta")
    assert root is not None and root.path == "/"


@pytest.mark.parametrize(
    "path",
    ["/", "/t/", "/t/nobody/v1", "/t/../x", "/t/ACME/v1", "/tacme", "/t/%2e%2e/x", "/v1/records"],
)
def test_unknown_tenants_do_not_resolve(path):
    directory = Directory([DirectoryEntry(_tenant("acme"), None)])
    assert directory.resolve("gateway.local", path) is None


def test_directory_entry_shape():
    entry = _tenant("acme", "api.acme.com", plan="pro", price_atomic=1000).directory_entry("0.001")
    assert entry == {
        "tenantId": "id-acme",
        "slug": "acme",
        "workerName": "tenant-acme-worker",
        "plan": "pro",
        "limits": {"cpuMs": 200, "subRequests": 50, "cpu_ms": 200, "subrequests": 50},
        "price": "0.001",
        "priceAtomic": "1000",
        "pricePer1kRows": None,
        "pricePer1kRowsAtomic": None,
        "payTo": None,
        "hosts": ["api.acme.com"],
    }
