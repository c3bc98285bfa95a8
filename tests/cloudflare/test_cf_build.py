"""`402claw cloudflare build`, the size refusals, and tenant uploads (deploy-tenant, publish)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import orjson
import pytest
from cfapi import FakeCloudflare
from cfhelpers import cli_app
from typer.testing import CliRunner

from claw402.cloudflare import sizes
from claw402.cloudflare.api import Target
from claw402.cloudflare.bundle import Module, WorkerBundle, read_bundle
from claw402.cloudflare.deploy import publish_tenant
from claw402.cloudflare.history import History
from claw402.cloudflare.workerd import LocalEdge
from claw402.registry.deploy import DeployRequest, deploy
from claw402.samples import CITIES

app = cli_app()


@pytest.fixture
def cities(registry, settings):
    return deploy(
        registry,
        settings,
        DeployRequest(
            source=CITIES, slug="cities", price="0", key="id", plan="pro", hosts=["cities.example"]
        ),
    )


def invoke(settings, *args: str, code: int = 0) -> dict:
    result = CliRunner().invoke(app, [*args, "--home", str(settings.home), "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.output)


def test_build_writes_runnable_folders(cities, settings, tmp_path):
    out = tmp_path / "edge"
    report = invoke(
        settings, "cloudflare", "build", "--out", str(out), "--dispatch-namespace", "prod"
    )
    assert report["ok"] is True and report["refused"] == []
    assert [t["slug"] for t in report["tenants"]] == ["cities"]
    assert sorted(p.name for p in (out / "tenants" / "tenant-cities-worker").iterdir()) == [
        "dataset.json",
        "engine.js",
        "grammar.js",
        "manners.js",
        "metadata.json",
        "output.js",
        "paths.js",
        "query.js",
        "stored.js",
        "tenant.json",
        "worker.js",
    ]
    meta = json.loads((out / "tenants" / "tenant-cities-worker" / "metadata.json").read_text())
    assert meta["main_module"] == "worker.js" and meta["compatibility_date"] == "2026-11-01"
    assert meta["bindings"] == [] and 0 < len(meta["tags"]) <= 8
    assert f"tenant-{cities.tenant_id}" in meta["tags"]
    dmeta = json.loads((out / "dispatcher" / "metadata.json").read_text())
    assert dmeta["bindings"] == [
        {"type": "dispatch_namespace", "name": "DISPATCHER", "namespace": "prod"},
        {"type": "durable_object_namespace", "name": "RATES", "class_name": "CallerRate"},
        {"type": "durable_object_namespace", "name": "BOOKS", "class_name": "TenantBooks"},
    ]
    assert dmeta["migrations"]["new_tag"] == "claw402-limits-v2"
    assert (
        json.loads((out / "directory.json").read_text())["byHost"]["cities.example"]["slug"]
        == "cities"
    )
    assert json.loads((out / "build.json").read_text())["tenants"][0]["bytes"] > 0

    # The folders alone are enough to run the edge.
    dispatcher = read_bundle(out / "dispatcher", "claw402-dispatcher")
    tenant = read_bundle(out / "tenants" / "tenant-cities-worker")
    with LocalEdge(dispatcher, [tenant]) as edge:
        r = httpx.get(f"{edge.url}/v1/records/3", headers={"host": "cities.example"})
        assert r.json()["item"]["city"] == "Shanghai"
        assert edge.records("dispatches")[0]["options"]["limits"] == {
            "cpuMs": 200,
            "subRequests": 50,
        }


def test_oversized_dataset_is_refused(cities, settings, tmp_path, monkeypatch):
    monkeypatch.setattr(sizes, "MAX_EMBEDDED_DATA", 1024)
    report = invoke(settings, "cloudflare", "build", "--out", str(tmp_path / "edge"), code=1)
    (refused,) = report["refused"]
    assert refused["slug"] == "cities"
    assert "a user Worker embeds at most 0.00 MiB" in refused["reason"]
    assert "128 MB of memory" in refused["reason"] and "402claw serve" in refused["reason"]
    assert not (tmp_path / "edge" / "tenants").exists()
    assert (tmp_path / "edge" / "dispatcher" / "dispatcher.js").exists()


def test_platform_size_limits():
    noise = Module("blob.txt", os.urandom(4 * 1024 * 1024))  # incompressible
    bundle = WorkerBundle(
        "big", (Module("w.js", b"export default {}"), noise), {"main_module": "w.js"}
    )
    assert sizes.check_size(bundle, "paid").gzip > 4 * 1024 * 1024
    with pytest.raises(
        sizes.ScriptTooLarge,
        match=r"at most 3\.00 MiB per Worker on the "
        r"Workers free plan",
    ):
        sizes.check_size(bundle, "free")
    with pytest.raises(ValueError, match="at most 8 tags"):
        WorkerBundle("x", (Module("w.js", b""),), {"main_module": "w.js", "tags": ["t"] * 9})


def test_deploy_tenant_uploads_to_the_namespace(cities, settings, monkeypatch):
    with FakeCloudflare() as fake:
        monkeypatch.setenv("CLOUDFLARE_BASE_URL", fake.base_url)
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "tok")
        monkeypatch.setenv("UPSTREAM_KEY", "upstream-secret")
        args = [
            "cloudflare-deploy-tenant",
            "cities",
            "--account-id",
            "acc9",
            "--dispatch-namespace",
            "prod",
            "--secret",
            "UPSTREAM_KEY",
        ]
        plan = invoke(settings, *args)["plan"]
        assert plan["calls"][0]["path"] == (
            "/accounts/acc9/workers/dispatch/namespaces/prod/scripts/tenant-cities-worker"
        )
        assert plan["calls"][0]["sdk"] == (
            "client.workers_for_platforms.dispatch.namespaces.scripts.update"
        )
        assert plan["tenant"]["slug"] == "cities" and plan["tenant"]["rows"] == 50
        assert fake.requests == []

        entry = invoke(settings, *args, "--execute")["deploy"]
        (request,) = fake.requests
        assert request.method == "PUT"
        assert (
            request.path == "/client/v4/accounts/acc9/workers/dispatch/namespaces/prod/"
            "scripts/tenant-cities-worker"
        )
        dataset = request.part("dataset.json")
        assert dataset.content_type == "text/plain"
        assert orjson.loads(dataset.content)["rows"] == 50
        assert request.part("worker.js").content_type == "application/javascript+module"
        assert request.metadata["bindings"] == [
            {"type": "secret_text", "name": "UPSTREAM_KEY", "text": "upstream-secret"}
        ]
        assert entry["kind"] == "tenant" and entry["tenant"]["tenantId"] == cities.tenant_id
        assert (
            "upstream-secret"
            not in (settings.home / "cloudflare-dispatcher-history.json").read_text()
        )

        wrong = invoke(settings, *args[:-2], "--script-name", "other", code=1)
        assert "routed to the Worker 'tenant-cities-worker'" in wrong["detail"]
        unknown = invoke(settings, "cloudflare-deploy-tenant", "nobody", code=1)
        assert "tenant 'nobody' not found" in unknown["detail"]


def test_publish_uploads_tenant_then_dispatcher(cities, registry, settings):
    with FakeCloudflare() as fake:
        target = Target("acc9", "prod", api_token="tok", base_url=fake.base_url)
        history = History(settings.home)
        dry = publish_tenant(registry, history, "cities", target, execute_plan=False)
        assert [p["kind"] for p in dry] == ["tenant", "dispatcher"] and fake.requests == []
        entries = publish_tenant(registry, history, "cities", target)
        assert [e["kind"] for e in entries] == ["tenant", "dispatcher"]
        assert [r.path.rsplit("/", 1)[-1] for r in fake.requests] == [
            "tenant-cities-worker",
            "scripts",
            "claw402-dispatcher",
        ]  # GET: its migration tag
        assert b"cities.example" in fake.requests[2].part("directory.js").content
        assert [e["id"] for e in history.entries()] == [e["id"] for e in entries]


def test_bundle_folder_round_trip(tmp_path: Path):
    bundle = WorkerBundle(
        "w",
        (Module("main.js", b"export default {}"), Module("data.json", b"[]")),
        {"main_module": "main.js", "bindings": []},
    )
    again = read_bundle(bundle.write(tmp_path / "w"))
    assert again.digest == bundle.digest
    assert [m.content_type for m in again.modules] == [
        "application/javascript+module",
        "text/plain",
    ]
