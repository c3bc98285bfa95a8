"""The dispatcher and data-API contract: the same assertions on the gateway and on workerd."""

from __future__ import annotations

import time
from urllib.parse import quote, urlencode

import orjson
import pytest
from typer.testing import CliRunner

from claw402.cli.main import app
from claw402.datasets.engine import Engine
from claw402.datasets.output import render
from claw402.datasets.query import InvalidQuery, format_from_accept, parse_query
from claw402.datasets.schema import Column
from claw402.dispatch.plans import max_page_size
from claw402.events.edge import ingest
from claw402.events.store import EventStore


def expected(tenant, params, accept=None):
    """What the datasets layer answers for these parameters: (status, media type, body)."""
    version = tenant.dataset
    columns = [Column.from_dict(c) for c in version.columns]
    engine = Engine(cache_rows=0)
    try:
        dataset = engine.open(
            version.data_path, columns, key=version.key, version=str(version.version)
        )
        query = parse_query(
            params,
            columns,
            max_limit=max_page_size(tenant.plan),
            version=str(version.version),
            default_format=format_from_accept(accept),
        )
        body, media_type = render(dataset.records(query), query.format)
    except InvalidQuery as exc:
        return 400, "application/json", exc.detail
    finally:
        engine.close()
    return 200, media_type, body


def records_url(slug, params):
    return f"/t/{slug}/v1/records?{urlencode(params, quote_via=quote, safe='')}"


# -- dispatcher ------------------------------------------------------------------------------


def test_routes_by_path_and_by_host(runtime):
    tenant = runtime.tenants["cities"]
    by_path = runtime.get("/t/cities/v1/records/1")
    by_host = runtime.get("/v1/records/1", headers={"host": "cities.contract.test"})
    with_port = runtime.get("/v1/records/1", headers={"host": "CITIES.contract.test:8080"})
    for r in (by_path, by_host, with_port):
        assert r.status_code == 200
        assert r.json()["item"]["city"] == "Tokyo"
        assert r.headers["x-tenant-id"] == tenant.tenant_id
    assert runtime.get("/t/%63ities/v1/records/1").status_code == 200  # the path is decoded


# `/` is the gateway's catalogue (tests/gateway/test_catalogue.py); the edge has none.
@pytest.mark.parametrize(
    "path",
    [
        "/t/nobody/v1/records",
        "/t/CITIES/v1/records",
        "/t/-x/",
        "/t/admin/",
        "/t/",
        "/v1/records",
        "/t/../x",
        "/t/%2e%2e/v1/records",
    ],
)
def test_unknown_tenant(runtime, path):
    r = runtime.get(path)
    assert r.status_code == 404
    assert r.json() == {
        "ok": False,
        "error": "tenant_not_found",
        "requestId": r.headers["x-request-id"],
    }
    assert "x-tenant-id" not in r.headers


def test_request_ids(runtime):
    # A caller's well-formed id is echoed as a correlation id; the request id is always ours.
    r = runtime.get("/t/cities/v1/schema", headers={"x-request-id": "contract-1"})
    assert r.headers["x-request-id"] not in ("", "contract-1")
    assert r.headers["x-correlation-id"] == "contract-1"
    bad = runtime.get("/t/cities/v1/schema", headers={"x-request-id": "no spaces allowed"})
    assert bad.headers["x-request-id"] not in ("", "no spaces allowed")
    assert "x-correlation-id" not in bad.headers
    missing = runtime.get("/t/cities/v1/records/999999", headers={"x-request-id": "contract-2"})
    assert missing.json()["requestId"] == missing.headers["x-request-id"] != "contract-2"
    health = runtime.get("/healthz", headers={"x-request-id": "contract-3"})
    assert health.json() == {"ok": True} and health.headers["x-correlation-id"] == "contract-3"
    assert health.headers["x-request-id"] != "contract-3"


def test_calls_sharing_a_caller_id_stay_apart(runtime, contract_home, monkeypatch):
    """Two calls sent with the same x-request-id are two requests: each has its own id in
    the answer and the events, and `402claw events --request` finds them by either id."""
    shared = f"agent-run-{runtime.name}"
    calls = [
        runtime.get("/t/nokey/v1/records?_limit=1", headers={"x-request-id": shared}),
        runtime.get("/t/nokey/v1/records/1", headers={"x-request-id": shared}),
    ]
    ids = [r.headers["x-request-id"] for r in calls]
    assert len(set(ids)) == 2 and shared not in ids
    assert [r.headers["x-correlation-id"] for r in calls] == [shared, shared]
    assert calls[1].status_code == 404 and calls[1].json()["requestId"] == ids[1]
    trails = [runtime.events(rid, 2) for rid in ids]
    for rid, trail in zip(ids, trails, strict=True):
        assert [e["type"] for e in trail] == ["dispatch_start", "dispatch_success"]
        assert {(e["requestId"], e["correlationId"]) for e in trail} == {(rid, shared)}
    if runtime.name.startswith("workerd"):  # the Worker's events reach the sink via the gateway
        sent = [e for trail in trails for e in trail]
        ingest(EventStore(contract_home.registry.engine), orjson.dumps({"events": sent}))
    monkeypatch.delenv("CLAW402_DATABASE_URL", raising=False)

    def cli_events(request: str) -> list[dict]:
        result = CliRunner().invoke(
            app,
            ["events", "--request", request, "--json", "--home", str(contract_home.settings.home)],
        )
        assert result.exit_code == 0, result.output
        return orjson.loads(result.stdout)["events"]

    by_shared = cli_events(shared)
    assert [e["requestId"] for e in by_shared] == [ids[0], ids[0], ids[1], ids[1]]
    by_own = cli_events(ids[1])
    assert [(e["type"], e["correlationId"]) for e in by_own] == [
        ("dispatch_start", shared),
        ("dispatch_success", shared),
    ]


def test_lifecycle_events(runtime):
    tenant = runtime.tenants["nokey"]
    r = runtime.get("/t/nokey/v1/records?_limit=1")
    start, success = runtime.events(r.headers["x-request-id"], 2)
    assert start["type"] == "dispatch_start" and success["type"] == "dispatch_success"
    for e in (start, success):
        assert e["tenantId"] == tenant.tenant_id and e["workerName"] == tenant.worker_name
        assert e["limits"] == {"cpuMs": 40, "subRequests": 3, "cpu_ms": 40, "subrequests": 3}
    assert start["details"] == {"path": "/v1/records"}
    assert success["status"] == 200 and success["reason"] is None
    assert success["durationMs"] >= 0
    r = runtime.get("/t/nobody/", headers={"x-request-id": f"ev-miss-{runtime.name}"})
    (miss,) = runtime.events(r.headers["x-request-id"], 1)
    assert miss["correlationId"] == f"ev-miss-{runtime.name}"
    assert (miss["type"], miss["status"], miss["reason"], miss["tenantId"]) == (
        "dispatch_failure",
        404,
        "tenant_not_found",
        None,
    )


STEPS = ["resolve", "limits", "guard", "run"]


@pytest.mark.parametrize(("path", "passed"), [
    ("/t/nokey/v1/records?_limit=1", STEPS),  # a free tenant: the guard hands on
    ("/t/paid/v1/schema", STEPS),  # a priced tenant's free route
    ("/t/paid/v1/records", STEPS[:3]),  # unpaid: the guard answers the 402
    ("/t/paid/v1/records", STEPS[:3]),  # again (the gateway may answer it from its memo)
    ("/t/nobody/v1/records", STEPS[:1]),  # no such tenant: resolve answers
    ("/t/cities/v1/records/999999", STEPS),  # the tenant's own 404
])  # fmt: skip
def test_both_runtimes_go_through_the_same_steps(runtime, path, passed):
    """The request path is the same ordered steps in both runtimes; each reports in its last
    event the steps a request passed, so where a request ended is comparable too."""
    r = runtime.get(path)
    rid = r.headers["x-request-id"]
    deadline = time.monotonic() + 5
    while True:
        trail = runtime.events(rid, 1)
        last = [e for e in trail if e["type"] in ("dispatch_success", "dispatch_failure")]
        if last or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert len(last) == 1, trail
    assert last[0]["details"]["steps"] == passed


# -- data API --------------------------------------------------------------------------------

QUERIES = [
    [],
    [("country", "Japan"), ("_sort", "-population"), ("_fields", "city,population")],
    [("population__gte", "10000000"), ("_sort", "continent,-area_km2"), ("_limit", "4")],
    [("_q", "SAN"), ("_format", "csv")],
    [("continent__in", "Europe,Africa"), ("_format", "ndjson"), ("_fields", "city,capital")],
    [("latitude__lt", "0"), ("_sort", "latitude")],
    [("capital", "true"), ("_limit", "3"), ("_sort", "-longitude")],
    [("city__icontains", "ão")],
    [("country", "Atlantis")],
    [("nope", "1")],
    [("population__gt", "many")],
    [("_sort", "-city,city")],
    [("_limit", "0")],
    [("_cursor", "not-a-cursor")],
]


@pytest.mark.parametrize("params", QUERIES, ids=range(len(QUERIES)))
def test_records(runtime, params):
    status, media_type, body = expected(runtime.tenants["cities"], params)
    r = runtime.get(records_url("cities", params))
    assert r.status_code == status
    assert r.headers["content-type"] == media_type
    if status == 400:
        assert r.json()["error"] == "invalid_query" and r.json()["detail"] == body
    else:
        assert r.content == body


@pytest.mark.parametrize("accept", ["text/csv", "application/x-ndjson", "text/html"])
def test_accept_header(runtime, accept):
    params = [("_limit", "2")]
    status, media_type, body = expected(runtime.tenants["cities"], params, accept)
    r = runtime.get(records_url("cities", params), headers={"accept": accept})
    assert (r.status_code, r.headers["content-type"], r.content) == (status, media_type, body)


def test_page_size_capped_by_plan(runtime):
    r = runtime.get("/t/nokey/v1/records?_limit=500")  # quarantine: at most 10
    assert len(r.json()["items"]) == max_page_size("quarantine")


def test_cursor_walk(runtime):
    seen, cursor = [], None
    while True:
        params = [("_limit", "7"), ("_sort", "continent,-population")]
        if cursor:
            params.append(("_cursor", cursor))
        r = runtime.get(records_url("cities", params))
        assert r.content == expected(runtime.tenants["cities"], params)[2]
        body = r.json()
        seen += [item["id"] for item in body["items"]]
        cursor = body["next"]
        if cursor is None:
            break
    assert sorted(seen) == list(range(1, 51))


def test_record_by_key(runtime):
    assert runtime.get("/t/cities/v1/records/4").json()["item"]["city"] == "São Paulo"
    cases = (
        ("999", "no record '999'"),
        ("abc", "no record 'abc'"),
        ("%2525", "no record '%25'"),
    )  # the path is decoded once, never twice
    for key, detail in cases:
        r = runtime.get(f"/t/cities/v1/records/{key}")
        assert r.status_code == 404
        assert r.json()["error"] == "record_not_found" and r.json()["detail"] == detail
    r = runtime.get("/t/nokey/v1/records/1")
    assert (r.status_code, r.json()["detail"]) == (404, "this dataset has no key column")


def test_documents(runtime):
    tenant = runtime.tenants["cities"]
    schema = runtime.get("/t/cities/v1/schema")
    assert schema.json() == {
        "ok": True,
        "tenant": "cities",
        "name": "World cities",
        "description": "Fifty large cities",
        "columns": tenant.dataset.columns,
        "key": "id",
        "rows": 50,
        "version": tenant.dataset.version,
        "price": "0",
        "priceAtomic": "0",
        "pricePer1kRows": None,
        "plan": "pro",
        "maxLimit": max_page_size("pro"),
    }
    root = f"{runtime.url}/t/cities"
    spec = runtime.get("/t/cities/v1/openapi.json").json()
    assert spec["servers"] == [{"url": root}] and spec["info"]["title"] == "World cities"
    by_host = runtime.get("/v1/openapi.json", headers={"host": "cities.contract.test"}).json()
    assert by_host["servers"] == [{"url": "http://cities.contract.test"}]
    docs = runtime.get("/t/cities/docs")
    assert docs.status_code == 200 and docs.headers["content-type"] == "text/html; charset=utf-8"
    assert f"curl &#x27;{root}/v1/records?_limit=10" in docs.text
    index = runtime.get("/t/cities/").json()
    assert index["links"]["records"] == f"{root}/v1/records"
    assert orjson.loads(runtime.get("/t/cities/v1/schema").content) == schema.json()


def test_method_and_route_errors(runtime):
    r = runtime.client.post("/t/cities/v1/records")
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    assert r.json()["error"] == "method_not_allowed"
    r = runtime.get("/t/cities/v2/whatever")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert r.json()["detail"] == "no route /v2/whatever"


def test_priced_tenant_without_payment(runtime):
    r = runtime.get("/t/paid/v1/records")
    assert r.status_code == 402 and r.json()["error"] == "payment_required"
    assert r.headers["x-tenant-id"] == runtime.tenants["paid"].tenant_id
    assert runtime.get("/t/paid/v1/records/1").status_code == 402
    assert runtime.get("/t/paid/v1/schema").json()["price"] == "0.0025"  # always free
    assert runtime.get("/t/paid/v1/openapi.json").json()["x-price-usd"] == "0.0025"
