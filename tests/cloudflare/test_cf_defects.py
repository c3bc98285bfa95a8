"""The edge's silent traps of issue 24, each one closed: the payments dry run, priced tenants
without payment settings, the portable build folder, a token-less `--execute`, rollbacks."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import orjson
import pytest
from cfapi import FakeCloudflare, failure
from cfhelpers import add_tenant, cli_app
from typer.testing import CliRunner

from claw402.cloudflare.bundle import read_bundle
from claw402.cloudflare.history import HISTORY_FILE, History
from claw402.cloudflare.workerd import LocalEdge
from claw402.registry.deploy import DeployRequest, deploy
from claw402.samples import CITIES

app = cli_app()
PAYMENT_VARS = (
    "CLAW402_ENV",
    "CLAW402_NETWORK",
    "CLAW402_ASSET",
    "CLAW402_FACILITATOR_URL",
    "CLAW402_TREASURY",
    "CLAW402_FACILITATOR_API_KEY",
)


@pytest.fixture
def fake(monkeypatch) -> Iterator[FakeCloudflare]:
    for name in (*PAYMENT_VARS, "CLOUDFLARE_ACCOUNT_ID"):
        monkeypatch.delenv(name, raising=False)
    with FakeCloudflare() as server:
        monkeypatch.setenv("CLOUDFLARE_BASE_URL", server.base_url)
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "tok")
        yield server


def run(settings, *args: str, code: int = 0, as_json: bool = True) -> dict | str:
    extra = ["--json"] if as_json else []
    result = CliRunner().invoke(app, [*args, "--home", str(settings.home), *extra])
    assert result.exit_code == code, result.output
    return json.loads(result.output) if as_json else result.output


def cities(registry, settings, plan: str = "pro"):
    return deploy(
        registry,
        settings,
        DeployRequest(
            source=CITIES, slug="cities", price="0", key="id", plan=plan, hosts=["cities.example"]
        ),
    )


DISPATCHER = ("cloudflare-deploy-dispatcher", "--account-id", "acc1")


def test_dry_run_with_payments_prints_the_plan(fake, registry, settings, monkeypatch):
    """It crashed with KeyError: 'multipart' on the migration-tag GET."""
    add_tenant(registry, "acme", price_atomic=1000)
    monkeypatch.setenv("CLAW402_ENV", "test")
    monkeypatch.setenv("CLAW402_TREASURY", "0x" + "b2" * 20)
    output = run(settings, *DISPATCHER, as_json=False)
    assert "GET " in output and "migration tag" in output and "PUT " in output
    assert "part dispatcher.js" in output and fake.requests == []


def test_priced_tenant_needs_payment_settings(fake, registry, settings, tmp_path):
    add_tenant(registry, "acme", price_atomic=1000)
    out = tmp_path / "edge"
    built = run(settings, "cloudflare", "build", "--out", str(out), code=1)
    assert "priced tenant(s) acme" in built["detail"] and "CLAW402_TREASURY" in built["detail"]
    assert not out.exists()
    for args in (DISPATCHER, ("cloudflare-deploy-tenant", "acme", "--account-id", "acc1")):
        refused = run(settings, *args, "--execute", code=1)
        assert "CLAW402_ENV" in refused["detail"] and "CLAW402_TREASURY" in refused["detail"]
    assert fake.requests == [] and not (settings.home / HISTORY_FILE).exists()


def test_build_folder_runs_with_json_modules_and_either_directory(registry, settings, tmp_path):
    cities(registry, settings)
    out = tmp_path / "edge"
    run(settings, "cloudflare", "build", "--out", str(out), "--directory-format", "registry")
    directory = json.loads((out / "directory.json").read_text())
    assert [t["slug"] for t in directory["tenants"]] == ["cities"] and "byHost" not in directory
    dispatcher = read_bundle(out / "dispatcher", "claw402-dispatcher")
    assert b'\\"tenants\\"' in dispatcher.module("directory.js").content
    tenant = read_bundle(out / "tenants" / "tenant-cities-worker")
    # wrangler and a workerd config with `json` modules hand the Worker parsed JSON
    for json_modules in (True, False):
        with LocalEdge(dispatcher, [tenant], json_modules=json_modules) as edge:
            by_host = httpx.get(f"{edge.url}/v1/records/3", headers={"host": "cities.example"})
            assert by_host.json()["item"]["city"] == "Shanghai"
            by_slug = httpx.get(f"{edge.url}/t/cities/v1/schema")
            assert by_slug.status_code == 200 and by_slug.json()["rows"] == 50


def test_execute_without_token_claims_no_record(fake, registry, settings, monkeypatch):
    """It said "(recorded in <history>)" and recorded nothing: now a refusal that says so."""
    add_tenant(registry, "acme")
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN")
    refused = run(settings, *DISPATCHER, "--execute", code=1)
    assert "no API token" in refused["detail"] and "recorded in" not in refused["detail"]
    assert "nothing was uploaded or recorded" in refused["detail"]
    assert refused["error"] == "deploy_refused"
    assert History(settings.home).entries() == [] and fake.requests == []


def test_failed_migration_read_is_recorded(fake, registry, settings, monkeypatch):
    """The migration-tag GET is a call too: its failure is in the history it is said to be."""
    add_tenant(registry, "acme", price_atomic=1000)
    monkeypatch.setenv("CLAW402_ENV", "test")
    monkeypatch.setenv("CLAW402_TREASURY", "0x" + "b2" * 20)
    fake.answers.append(failure(403, 10000, "Authentication error"))
    refused = run(settings, *DISPATCHER, "--execute", code=1)
    assert "recorded in" in refused["detail"]
    (entry,) = History(settings.home).entries()
    assert entry["status"] == "failed" and entry["httpStatus"] == 403


def _directory(request) -> bytes:
    return request.part("directory.js").content


def test_dispatcher_rollback_moves_back_through_history(fake, registry, settings):
    ids = []
    for slug in ("a1", "b2", "c3"):  # three uploads, each with one more tenant
        add_tenant(registry, slug)
        ids.append(run(settings, *DISPATCHER, "--execute")["deploy"]["id"])
    uploads = [_directory(r) for r in fake.requests if r.method == "PUT"]
    rollback = ("cloudflare-rollback-dispatcher", "--account-id", "acc1", "--execute")
    first = run(settings, *rollback)["deploy"]
    assert first["rollbackOf"] == ids[1] and _directory(fake.requests[-1]) == uploads[1]
    second = run(settings, *rollback)["deploy"]  # not back to c3: on to a1
    assert second["rollbackOf"] == ids[0] and _directory(fake.requests[-1]) == uploads[0]
    done = run(settings, *rollback, code=1)
    assert "nothing to roll back to" in done["detail"]
    chosen = run(settings, *rollback, "--to", ids[2])["deploy"]
    assert chosen["rollbackOf"] == ids[2] and _directory(fake.requests[-1]) == uploads[2]
    assert run(settings, *rollback)["deploy"]["rollbackOf"] == ids[1]  # from c3 again


def test_tenant_rollback(fake, registry, settings):
    args = ("cloudflare-deploy-tenant", "cities", "--account-id", "acc1", "--execute")
    cities(registry, settings, plan="pro")
    old = run(settings, *args)["deploy"]
    cities(registry, settings, plan="business")  # a new version: a different Worker
    run(settings, *args)
    before, after = (orjson.loads(r.part("tenant.json").content) for r in fake.requests)
    assert before["maxLimit"] != after["maxLimit"]

    plan = run(settings, "cloudflare-rollback-tenant", "cities", "--account-id", "acc1")["plan"]
    assert plan["action"] == "rollback" and plan["rollbackOf"] == old["id"]
    assert plan["calls"][0]["path"] == (
        "/accounts/acc1/workers/dispatch/namespaces/claw402/scripts/tenant-cities-worker"
    )
    assert len(fake.requests) == 2  # a dry run
    restored = run(
        settings, "cloudflare-rollback-tenant", "cities", "--account-id", "acc1", "--execute"
    )["deploy"]
    assert restored["kind"] == "tenant" and restored["rollbackOf"] == old["id"]
    assert orjson.loads(fake.requests[-1].part("tenant.json").content) == before
    other_ns = run(
        settings,
        "cloudflare-rollback-tenant",
        "cities",
        "--account-id",
        "acc1",
        "--dispatch-namespace",
        "elsewhere",
        code=1,
    )
    assert "no executed deploy" in other_ns["detail"]
