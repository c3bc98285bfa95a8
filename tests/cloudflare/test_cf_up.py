"""`402claw cloudflare up` and `cloudflare status` through the official SDK against a recording
server that keeps an account's state (cfstate.py): every call `up` makes, idempotence, drift."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from cfapi import FakeCloudflare
from cfhelpers import cli_app
from cfstate import CloudflareState
from typer.testing import CliRunner

from claw402.cloudflare.history import History
from claw402.registry.deploy import DeployRequest, deploy
from claw402.samples import CITIES

app = cli_app()
ACCOUNT, ZONE = "acc1", "zone9"
A = f"/client/v4/accounts/{ACCOUNT}"
NS = f"{A}/workers/dispatch/namespaces"
PAYMENT_VARS = (
    "CLAW402_ENV",
    "CLAW402_NETWORK",
    "CLAW402_ASSET",
    "CLAW402_FACILITATOR_URL",
    "CLAW402_TREASURY",
    "CLAW402_FACILITATOR_API_KEY",
)


@pytest.fixture
def cf(monkeypatch) -> Iterator[tuple[FakeCloudflare, CloudflareState]]:
    for name in PAYMENT_VARS:
        monkeypatch.delenv(name, raising=False)
    state = CloudflareState()
    with FakeCloudflare() as server:
        server.responder = state
        monkeypatch.setenv("CLOUDFLARE_BASE_URL", server.base_url)
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "tok")
        monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
        monkeypatch.setenv("CLOUDFLARE_ZONE_ID", ZONE)
        yield server, state


def run(settings, *args: str, code: int = 0) -> dict:
    result = CliRunner().invoke(app, ["cloudflare", *args, "--home", str(settings.home), "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.output)


def cities(registry, settings, plan: str = "pro"):
    return deploy(
        registry,
        settings,
        DeployRequest(
            source=CITIES,
            slug="cities",
            price="0",
            key="id",
            plan=plan,
            hosts=["data.cities.example"],
        ),
    )


def calls(server: FakeCloudflare, start: int = 0) -> list[str]:
    return [f"{r.method} {r.path.split('?')[0]}" for r in server.requests[start:]]


READS = [
    f"GET {NS}/claw402",
    f"GET {NS}/claw402/scripts/tenant-cities-worker",
    f"GET {A}/workers/scripts",
    f"GET {A}/workers/scripts/claw402-dispatcher/subdomain",
    f"GET {A}/workers/subdomain",
    f"GET /client/v4/zones/{ZONE}/workers/routes",
    f"GET /client/v4/zones/{ZONE}/custom_hostnames",
]


def test_up_from_nothing_then_idempotent(cf, registry, settings):
    server, state = cf
    cities(registry, settings)
    dry = run(settings, "up")
    assert dry["executed"] is False
    assert [(i["kind"], i["live"], i["action"]) for i in dry["items"]] == [
        ("namespace", "missing", "create"),
        ("tenant", "missing", "upload"),
        ("dispatcher", "missing", "upload"),
        ("workers.dev", "disabled", "enable"),
        ("route", "missing", "create"),
        ("hostname", "missing", "create"),
    ]
    # a missing namespace has no scripts and a missing dispatcher no subdomain: not asked
    assert calls(server) == [READS[0], READS[2], READS[4], READS[5], READS[6]]

    start = len(server.requests)
    done = run(settings, "up", "--execute")
    assert done["executed"] is True and done["changed"] == 6
    assert calls(server, start) == [
        READS[0],
        READS[2],
        READS[4],
        READS[5],
        READS[6],
        f"POST {NS}",
        f"PUT {NS}/claw402/scripts/tenant-cities-worker",
        f"GET {A}/workers/scripts",  # the dispatcher's migration tag: what its PUT must carry
        f"PUT {A}/workers/scripts/claw402-dispatcher",
        f"POST {A}/workers/scripts/claw402-dispatcher/subdomain",
        f"POST /client/v4/zones/{ZONE}/workers/routes",
        f"POST /client/v4/zones/{ZONE}/custom_hostnames",
    ]
    writes = [r for r in server.requests[start + 5 :] if r.method != "GET"]
    assert json.loads(writes[0].body) == {"name": "claw402"}
    assert json.loads(writes[3].body) == {"enabled": True, "previews_enabled": False}
    assert json.loads(writes[4].body) == {"pattern": "*/*", "script": "claw402-dispatcher"}
    assert json.loads(writes[5].body) == {
        "hostname": "data.cities.example",
        "ssl": {"method": "http", "type": "dv"},
    }
    assert all(r.headers["Authorization"] == "Bearer tok" for r in server.requests)
    by_kind = {i["kind"]: i for i in done["items"]}
    assert by_kind["workers.dev"]["url"] == "https://claw402-dispatcher.acme-co.workers.dev"
    assert by_kind["hostname"]["found"]["verification"]["type"] == "txt"
    assert [e["kind"] for e in History(settings.home).entries()] == ["tenant", "dispatcher"]
    assert (
        b"data.cities.example" in state.bundle("claw402-dispatcher").module("directory.js").content
    )

    start = len(server.requests)
    again = run(settings, "up", "--execute")
    assert again["changed"] == 0 and all(i["inSync"] for i in again["items"])
    assert calls(server, start) == READS  # only reads the second time
    status = run(settings, "status")
    assert status["inSync"] is True and status["drift"] == 0


def test_status_shows_drift_and_up_uploads_only_what_changed(cf, registry, settings):
    server, state = cf
    cities(registry, settings)
    run(settings, "up", "--execute")
    cities(registry, settings, plan="business")  # new limits: the tenant and the directory
    status = run(settings, "status", code=1)
    assert {i["kind"]: i["live"] for i in status["items"] if not i["inSync"]} == {
        "tenant": "stale",
        "dispatcher": "stale",
    }

    start = len(server.requests)
    run(settings, "up", "--execute")
    assert [c for c in calls(server, start) if not c.startswith("GET")] == [
        f"PUT {NS}/claw402/scripts/tenant-cities-worker",
        f"PUT {A}/workers/scripts/claw402-dispatcher",
    ]

    state.scripts[("claw402", "tenant-cities-worker")].etag = "edited-in-the-dashboard"
    drifted = run(settings, "status", code=1)
    (item,) = [i for i in drifted["items"] if not i["inSync"]]
    assert (item["kind"], item["live"]) == ("tenant", "changed outside 402claw")


def test_up_refuses_a_route_owned_by_another_worker(cf, registry, settings):
    server, state = cf
    cities(registry, settings)
    state.routes[ZONE] = [{"id": "r1", "pattern": "*/*", "script": "someone-else"}]
    refused = run(settings, "up", "--execute", code=1)
    assert "already serves someone-else" in refused["detail"]
    assert all(r.method == "GET" for r in server.requests)  # nothing changed


def test_up_without_zone_serves_workers_dev_and_says_hosts_wait(
    cf, registry, settings, monkeypatch
):
    server, _ = cf
    monkeypatch.delenv("CLOUDFLARE_ZONE_ID")
    cities(registry, settings)
    done = run(settings, "up", "--execute")
    hosts = [i for i in done["items"] if i["kind"] == "hostname"]
    assert [(h["name"], h["live"], h["action"]) for h in hosts] == [
        ("data.cities.example", "not attached (no zone)", None)
    ]
    assert not any("/zones/" in r.path for r in server.requests)


def test_up_needs_account_and_token(cf, registry, settings, monkeypatch):
    cities(registry, settings)
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN")
    no_token = run(settings, "up", code=1)
    assert "no API token" in no_token["detail"] and "live state" in no_token["detail"]
    monkeypatch.delenv("CLOUDFLARE_ACCOUNT_ID")
    assert "account id is required" in run(settings, "status", code=1)["detail"]


def test_what_up_uploaded_serves_free_402_and_paid_calls(cf, tmp_path, monkeypatch):
    """The Workers `up` sent (as the account keeps them) run under workerd and take payments."""
    from edgepay import MAX_TIMEOUT, EdgeClient
    from x402.http.utils import decode_payment_response_header

    from claw402.chain.devchain import start_dev_chain
    from claw402.chain.wallet import Wallet
    from claw402.cloudflare.workerd import LocalEdge
    from claw402.config import Settings
    from claw402.facilitator.server import background_server
    from claw402.facilitator.settings import FacilitatorSettings
    from claw402.registry.store import Registry

    _, state = cf
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    with start_dev_chain(payers=1) as chain:
        facilitator = FacilitatorSettings(
            rpc_url=chain.rpc_url, private_key=chain.facilitator.private_key, network=chain.network
        )
        with background_server(facilitator) as server:
            for name, value in {
                "CLAW402_ENV": "dev",
                "CLAW402_NETWORK": chain.network,
                "CLAW402_ASSET": chain.token,
                "CLAW402_ASSET_NAME": chain.token_name,
                "CLAW402_ASSET_VERSION": chain.token_version,
                "CLAW402_FACILITATOR_URL": server.url,
                "CLAW402_TREASURY": chain.treasury.address,
                "CLAW402_MAX_TIMEOUT_SECONDS": str(MAX_TIMEOUT),
            }.items():
                monkeypatch.setenv(name, value)
            registry = Registry.open(settings)
            creator = Wallet.create()
            deploy(
                registry,
                settings,
                DeployRequest(
                    source=CITIES,
                    slug="acme",
                    price="0.005",
                    key="id",
                    hosts=["data.acme.test"],
                    pay_to=creator.address,
                ),
            )
            registry.close()
            run(settings, "up", "--execute")
            # the migration tag is applied: the next up finds the dispatcher current
            assert run(settings, "up", "--execute")["changed"] == 0
            dispatcher = state.bundle("claw402-dispatcher")
            assert dispatcher.metadata["migrations"]["new_tag"] == "claw402-limits-v2"
            tenant = state.bundle("tenant-acme-worker", "claw402")
            with LocalEdge(dispatcher, [tenant]) as running:
                edge = EdgeClient(chain, running.url)
                free = edge.get("/t/acme/v1/schema")
                assert free.status_code == 200 and free.json()["price"] == "0.005"
                unpaid = edge.get("/v1/records", headers={"host": "data.acme.test"})
                assert unpaid.status_code == 402 and "payment-required" in unpaid.headers
                payer = edge.payer()
                paid = edge.get(
                    "/v1/records/1", edge.sign(payer, "acme"), headers={"host": "data.acme.test"}
                )
                assert paid.status_code == 200, paid.text
                assert paid.json()["item"]["id"] == 1
                receipt = decode_payment_response_header(paid.headers["payment-response"])
                assert receipt.success and chain.balance(creator.address) == 5_000


def test_up_serves_a_dataset_too_large_to_embed_from_r2(cf, registry, settings, monkeypatch):
    """Over the embedding limit: refused without a bucket; with one, its rows go to R2 before
    its Worker, and what was uploaded answers under workerd."""
    import httpx

    from claw402.cloudflare import sizes
    from claw402.cloudflare.workerd import LocalEdge

    server, state = cf
    monkeypatch.setattr(sizes, "MAX_EMBEDDED_DATA", 1024)
    cities(registry, settings)
    refused = run(settings, "up", code=1)
    assert "cities" in refused["detail"] and "--r2-bucket" in refused["detail"]

    start = len(server.requests)
    done = run(settings, "up", "--execute", "--r2-bucket", "claw402-data")
    writes = [c for c in calls(server, start) if not c.startswith("GET")]
    assert writes[:2] == [f"POST {NS}", f"POST {A}/r2/buckets"]
    (put_object,) = [w for w in writes if "/objects/" in w]
    assert put_object.startswith(f"PUT {A}/r2/buckets/claw402-data/objects/claw402-")
    assert writes.index(put_object) < writes.index(f"PUT {NS}/claw402/scripts/tenant-cities-worker")
    tenant_item = next(i for i in done["items"] if i["kind"] == "tenant")
    assert tenant_item["action"] == "upload"
    tenant = state.bundle("tenant-cities-worker", "claw402")
    assert {"type": "r2_bucket", "name": "DATA", "bucket_name": "claw402-data"} in (
        tenant.metadata["bindings"]
    )
    manifest = json.loads(tenant.module("dataset.json").content)
    assert manifest["rows"] == 50 and "data" not in manifest
    (key,) = state.buckets["claw402-data"]
    assert manifest["r2"]["chunks"][0]["key"] == key

    with LocalEdge(
        state.bundle("claw402-dispatcher"),
        [tenant],
        r2={"claw402-data": state.buckets["claw402-data"]},
    ) as edge:
        one = httpx.get(f"{edge.url}/v1/records/3", headers={"host": "data.cities.example"})
        assert one.json()["item"]["city"] == "Shanghai"
        page = httpx.get(
            f"{edge.url}/t/cities/v1/records?_sort=-population&_limit=2&_fields=city,population"
        ).json()
        every = httpx.get(f"{edge.url}/t/cities/v1/records?_limit=50&_fields=population").json()
        populations = sorted((r["population"] for r in every["items"]), reverse=True)
        assert [r["population"] for r in page["items"]] == populations[:2] and page["next"]

    start = len(server.requests)
    again = run(settings, "up", "--execute", "--r2-bucket", "claw402-data")
    assert again["changed"] == 0 and all(c.startswith("GET") for c in calls(server, start))


def test_build_and_deploy_tenant_with_an_r2_bucket(cf, registry, settings, tmp_path, monkeypatch):
    from claw402.cloudflare import sizes
    from claw402.cloudflare.bundle import read_bundle

    server, _ = cf
    monkeypatch.setattr(sizes, "MAX_EMBEDDED_DATA", 1024)
    cities(registry, settings)
    out = tmp_path / "edge"
    built = run(settings, "build", "--out", str(out), "--r2-bucket", "b1")
    (stored,) = built["r2"]
    assert stored["slug"] == "cities" and stored["objects"] == 1
    manifest = json.loads((out / "tenants" / "tenant-cities-worker" / "dataset.json").read_text())
    (chunk,) = manifest["r2"]["chunks"]
    assert (out / "r2" / "b1" / chunk["key"]).stat().st_size == chunk["bytes"]
    assert read_bundle(out / "tenants" / "tenant-cities-worker").metadata["bindings"] == [
        {"type": "r2_bucket", "name": "DATA", "bucket_name": "b1"}
    ]

    result = CliRunner().invoke(
        app,
        [
            "cloudflare-deploy-tenant",
            "cities",
            "--r2-bucket",
            "b1",
            "--home",
            str(settings.home),
            "--json",
        ],
    )
    plan = json.loads(result.output)["plan"]
    objects, put = plan["calls"]
    assert put["method"] == "PUT" and put["path"].endswith("/scripts/tenant-cities-worker")
    assert objects["sdk"] == "client.r2.buckets.objects.upload" and objects["objects"] == 1
    assert plan["tenant"]["r2"]["bucket"] == "b1" and server.requests == []


def test_up_and_status_need_an_admin_key_and_audit_what_up_changed(cf, registry, settings):
    from claw402.control import audit, keys

    server, _ = cf
    cities(registry, settings)
    issued = {}
    for user, scopes in (("root", ["admin"]), ("dev", ["deploy"])):
        keys.create_user(registry.engine, user, "local")
        issued[user] = keys.create_key(registry.engine, user, scopes, "local").secret
    for command in (["up", "--execute"], ["up"], ["status"]):
        refused = run(settings, *command, "--api-key", issued["dev"], code=1)
        assert "admin" in refused["detail"]
    assert server.requests == []
    run(settings, "up", "--execute", "--api-key", issued["root"])
    actions = [
        (e.action, e.subject)
        for e in audit.entries(registry.engine)
        if e.action.startswith("cloudflare.")
    ]
    assert actions == [
        ("cloudflare.configured", "namespace:claw402"),
        ("cloudflare.deployed", "worker:tenant-cities-worker"),
        ("cloudflare.deployed", "worker:claw402-dispatcher"),
        ("cloudflare.configured", "workers.dev:claw402-dispatcher"),
        ("cloudflare.configured", "route:*/*"),
        ("cloudflare.configured", "hostname:data.cities.example"),
    ]
    assert audit.verify(registry.engine).ok


def test_readable_output(cf, registry, settings):
    """The Rich output of up and status (the path the payments dry run once crashed in)."""
    cities(registry, settings)

    def plain(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(app, ["cloudflare", *args, "--home", str(settings.home)])
        assert result.exit_code == code, result.output
        return result.output

    dry = plain("up")
    assert "dry run: 6 change(s)" in dry and "namespace" in dry and "hostname" in dry
    done = plain("up", "--execute")
    assert "up: 6 change(s) made" in done
    assert "https://claw402-dispatcher.acme-co.workers.dev/t/<slug>/v1/records" in done
    assert "data.cities.example: CNAME it" in done and "_cf-custom-hostname" in done
    assert "in sync" in plain("status")


def test_build_says_where_the_r2_chunks_are(registry, settings, tmp_path, monkeypatch):
    from claw402.cloudflare import sizes

    monkeypatch.setattr(sizes, "MAX_EMBEDDED_DATA", 1024)
    cities(registry, settings)
    out = tmp_path / "edge"
    result = CliRunner().invoke(
        app,
        [
            "cloudflare",
            "build",
            "--out",
            str(out),
            "--r2-bucket",
            "b1",
            "--home",
            str(settings.home),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "cities: rows in R2 bucket b1 (1 chunk(s)" in result.output
