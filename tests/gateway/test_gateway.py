"""The gateway from the outside: routing, the data API, errors and headers over real HTTP."""

from __future__ import annotations

import csv
import io
import time

import sqlalchemy as sa

from claw402.events.store import EventStore
from claw402.registry.schema import registry_state, tenants


def test_records_by_path(served):
    tenant = served.deploy(slug="cities", price="0")
    r = served.client.get("/t/cities/v1/records")
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is True and body["next"] is None
    assert len(body["items"]) == 50
    assert body["items"][0]["city"] == "Tokyo"
    assert r.headers["x-tenant-id"] == tenant.tenant_id
    assert len(r.headers["x-request-id"]) >= 16


def test_records_by_host_and_request_id_echo(served):
    served.deploy(slug="cities", price="0", hosts=["api.cities.test"])
    r = served.client.get(
        "/v1/records?country=Japan&_sort=-population&_fields=city,population",
        headers={"host": "API.cities.test:8402", "x-request-id": "trace-123"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["items"] == [
        {"city": "Tokyo", "population": 13960000},
        {"city": "Osaka", "population": 2752412},
        {"city": "Nagoya", "population": 2332176},
    ]
    # The caller's id is a correlation id: the request has one of our own.
    assert r.headers["x-correlation-id"] == "trace-123"
    assert r.headers["x-request-id"] != "trace-123" and len(r.headers["x-request-id"]) >= 16
    bad = served.client.get("/healthz", headers={"x-request-id": "bad id\twith spaces"})
    assert bad.headers["x-request-id"] != "bad id\twith spaces"
    assert "x-correlation-id" not in bad.headers


def test_pagination_walks_every_row_once(served):
    served.deploy(slug="cities", price="0")
    seen, url = [], "/t/cities/v1/records?_limit=7&_sort=continent,-population"
    while url:
        body = served.client.get(url).json()
        seen += [item["id"] for item in body["items"]]
        url = (
            body["next"]
            and f"/t/cities/v1/records?_limit=7&_sort=continent,-population&_cursor={body['next']}"
        )
    assert sorted(seen) == list(range(1, 51))


def test_unknown_tenants(served):
    served.deploy(slug="cities", price="0")
    for path in ("/t/nobody/v1/records", "/t/../x", "/t/%2e%2e/v1/records", "/v1/records"):
        r = served.client.get(path)
        assert r.status_code == 404, path
        body = r.json()
        assert body["error"] == "tenant_not_found"
        assert body["requestId"] == r.headers["x-request-id"]
        assert "x-tenant-id" not in r.headers


def test_invalid_queries_are_400(served):
    served.deploy(slug="cities", price="0")
    for query in (
        "nope=1",
        "population__gt=abc",
        "city__between=a",
        "_sort=nope",
        "_limit=-1",
        "_fields=nope",
        "_cursor=garbage",
        "_format=xml",
        "_bogus=1",
        "capital=maybe",
    ):
        r = served.client.get(f"/t/cities/v1/records?{query}")
        assert r.status_code == 400, (query, r.text)
        assert r.json()["error"] == "invalid_query" and r.json()["detail"]


def test_csv_output_and_formula_neutralisation(served, tmp_path):
    source = tmp_path / "evil.csv"
    source.write_text('id,name,amount\n1,"=HYPERLINK(""x"")",-5\n2,+cmd,3\n3,@sum,4\n')
    served.deploy(source=source, slug="evil", price="0")
    r = served.client.get("/t/evil/v1/records?_format=csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["id", "name", "amount"]
    assert [row[1] for row in rows[1:]] == ['\'=HYPERLINK("x")', "'+cmd", "'@sum"]
    assert rows[1][2] == "-5"
    ndjson = served.client.get("/t/evil/v1/records", headers={"accept": "application/x-ndjson"})
    assert len(ndjson.text.strip().splitlines()) == 3


def test_schema_openapi_docs_and_key_lookup(served):
    served.deploy(slug="cities", price="0.001", key="id", name="World cities")
    schema = served.client.get("/t/cities/v1/schema").json()
    assert schema["rows"] == 50 and schema["key"] == "id" and schema["price"] == "0.001"
    assert {"name": "population", "type": "integer"} in schema["columns"]
    spec = served.client.get("/t/cities/v1/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    assert any(p.endswith("/v1/records") for p in spec["paths"])
    docs = served.client.get("/t/cities/docs")
    assert docs.status_code == 200 and "World cities" in docs.text
    # Priced routes are paid; schema, OpenAPI and docs stay free.
    assert served.client.get("/t/cities/v1/records").status_code == 402
    assert served.client.get("/t/cities/v1/records/3").status_code == 402


def test_record_by_key(served):
    served.deploy(slug="cities", price="0", key="id")
    r = served.client.get("/t/cities/v1/records/37")
    assert r.status_code == 200 and r.json()["item"]["city"] == "London"
    assert served.client.get("/t/cities/v1/records/999").json()["error"] == "record_not_found"
    served.deploy(slug="nokey", price="0")
    r = served.client.get("/t/nokey/v1/records/1")
    assert r.status_code == 404 and r.json()["error"] == "record_not_found"


def test_redeploy_and_remove_are_live(served, tmp_path):
    from claw402.registry.deploy import remove

    served.deploy(slug="cities", price="0")
    assert served.client.get("/t/cities/v1/schema").json()["version"] == 1
    small = tmp_path / "small.csv"
    small.write_text("id,city\n1,Lisbon\n")
    served.deploy(source=small, slug="cities")
    r = served.client.get("/t/cities/v1/records")
    assert r.json()["items"] == [{"id": 1, "city": "Lisbon"}]
    remove(served.registry, served.settings, "cities")
    # A running gateway re-reads the registry's generation at most every 10 ms.
    deadline = time.monotonic() + 1
    while served.client.get("/t/cities/v1/records").status_code != 404:
        assert time.monotonic() < deadline, "removal not live within a second"
        time.sleep(0.005)


def test_binding_missing_and_worker_failure(served):
    tenant = served.deploy(slug="cities", price="0")
    # A tenant whose data file is unreadable: 502 tenant_worker_failure.
    with open(tenant.dataset.data_path, "r+b") as fh:
        fh.write(b"\0garbage" * 512)
    r = served.client.get("/t/cities/v1/records")
    assert r.status_code == 502 and r.json()["error"] == "tenant_worker_failure"
    assert r.headers["x-tenant-id"] == tenant.tenant_id
    # A tenant with no runtime (no current dataset): 500 dispatcher_binding_missing.
    with served.registry.engine.begin() as conn:
        conn.execute(sa.update(tenants).values(current_version=None))
        conn.execute(sa.update(registry_state).values(generation=registry_state.c.generation + 1))
    deadline = time.monotonic() + 1  # the gateway re-reads the registry within 10 ms
    while (r := served.client.get("/t/cities/v1/records")).status_code != 500:
        assert time.monotonic() < deadline, r.text
        time.sleep(0.005)
    assert r.json()["error"] == "dispatcher_binding_missing"


def test_query_over_budget_is_503(served, tmp_path):
    import duckdb

    big = tmp_path / "big.csv"
    duckdb.sql(
        "SELECT range AS id, md5(range::VARCHAR) AS word, range % 97 AS n FROM range(1000000)"
    ).write_csv(str(big))
    # 1 cpuMs is a 4 ms deadline: a case-insensitive scan of 1M strings plus a sort takes
    # tens of milliseconds on any machine (a non-ASCII needle: no search file answers it).
    served.deploy(source=big, slug="big", price="0", cpu_ms=1)
    r = served.client.get("/t/big/v1/records?_q=zz%C3%A9&_sort=-word,n")
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "tenant_limit_exceeded"
    assert "4 ms budget" in r.json()["detail"]
    served.deploy(source=big, slug="big", cpu_ms=60_000)
    assert served.client.get("/t/big/v1/records?_q=zz%C3%A9&_sort=-word,n").status_code == 200


def test_events_reach_the_durable_sink(served):
    tenant = served.deploy(slug="cities", price="0")
    r = served.client.get("/t/cities/v1/records", headers={"x-request-id": "evt-1"})
    served.client.get("/t/ghost/v1/records")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        events = EventStore(served.registry.engine).read_events(limit=100)
        if len(events) >= 3:
            break
        time.sleep(0.02)
    mine = [e for e in events if e["requestId"] == r.headers["x-request-id"]]
    assert {e["correlationId"] for e in mine} == {"evt-1"}
    assert [e["type"] for e in mine] == ["dispatch_start", "dispatch_success"]
    assert mine[0]["id"] == mine[1]["id"]  # one request, one row
    assert mine[0]["details"] == {"path": "/v1/records"} and mine[0]["ts"] <= mine[1]["ts"]
    done = mine[1]
    assert done["tenantId"] == tenant.tenant_id and done["workerName"] == "tenant-cities-worker"
    assert done["status"] == r.status_code and done["durationMs"] > 0
    assert done["limits"]["cpuMs"] == 50
    assert any(
        e["type"] == "dispatch_failure" and e["reason"] == "tenant_not_found" for e in events
    )


def test_methods_and_unknown_routes(served):
    served.deploy(slug="cities", price="0")
    assert served.client.post("/t/cities/v1/records").status_code == 405
    assert served.client.get("/t/cities/v2/nothing").status_code == 404
    assert served.client.get("/healthz").json() == {"ok": True}


def test_edge_events_endpoint(tmp_path):
    import httpx

    from claw402.config import Settings
    from claw402.gateway.app import Gateway
    from claw402.registry.store import Registry
    from claw402.serving import ServerThread

    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'r.sqlite3'}")
    registry = Registry.open(settings)
    gateway = Gateway(registry, events_token="edge-secret")
    batch = {
        "events": [
            {
                "type": "payment_settled",
                "ts": 1.5,
                "requestId": "edge-1",
                "tenantId": "tnt_x",
                "transaction": "0xabc",
            }
        ]
    }
    with ServerThread(gateway) as server, httpx.Client(base_url=server.url) as client:
        url = "/_claw402/events"
        assert client.post(url, json=batch).status_code == 401
        assert (
            client.post(url, json=batch, headers={"authorization": "Bearer no"}).status_code == 401
        )
        auth = {"authorization": "Bearer edge-secret"}
        bad = client.post(url, content=b"{not json", headers=auth)
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_events"
        assert (
            client.post(url, json={"events": [{"type": "nope"}]}, headers=auth).status_code == 400
        )
        assert client.post(url, content=b"x" * 300_000, headers=auth).status_code == 413
        ok = client.post(url, json=batch, headers=auth)
        assert ok.status_code == 200 and ok.json()["stored"] == 1
        assert client.get(url, headers=auth).status_code == 405
    (stored,) = EventStore(registry.engine).read_events()
    assert stored["source"] == "edge" and stored["transaction"] == "0xabc"
    assert stored["tenantId"] == "tnt_x"
    # Without a token the path is not special: it is an unknown tenant route.
    plain = Gateway(registry)
    with ServerThread(plain) as server, httpx.Client(base_url=server.url) as client:
        assert client.post("/_claw402/events", json=batch).status_code == 404
    registry.close()
