"""Cloudflare deploy and rollback behind API keys: refused keys never reach the API.

Once a key exists: a dry run needs any valid key (and ownership for a tenant), executing a
deploy needs `deploy` (and ownership for a tenant), executing a rollback needs `admin`; each
executed upload is in the audit log under the key's user.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from cfapi import FakeCloudflare
from cfhelpers import add_tenant, cli_app
from typer.testing import CliRunner

from claw402.cli.main import app as main_app
from claw402.control import audit, keys
from claw402.registry.deploy import DeployRequest, deploy
from claw402.samples import CITIES

app = cli_app()


@pytest.fixture
def fake(monkeypatch) -> Iterator[FakeCloudflare]:
    with FakeCloudflare() as server:
        monkeypatch.setenv("CLOUDFLARE_BASE_URL", server.base_url)
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "test-token")
        monkeypatch.delenv("CLOUDFLARE_ACCOUNT_ID", raising=False)
        monkeypatch.delenv("CLAW402_API_KEY", raising=False)
        yield server


@pytest.fixture
def secrets(registry, settings) -> dict[str, str]:
    """admin (root), alice (deploy, owns acme), carol (deploy, owns nothing), bob (read)."""
    engine = registry.engine
    issued = {}
    for user, scopes in (
        ("root", ["admin"]),
        ("alice", ["deploy"]),
        ("carol", ["deploy"]),
        ("bob", ["read"]),
    ):
        keys.create_user(engine, user, "local")
        issued[user] = keys.create_key(engine, user, scopes, "local").secret
    deploy(registry, settings, DeployRequest(source=CITIES, slug="acme", price="0", owner="alice"))
    return issued


@pytest.fixture
def run(settings):
    runner = CliRunner()

    def invoke(*args: str, key: str | None = None, ok: bool = True) -> dict[str, Any]:
        extra = ["--api-key", key] if key else []
        result = runner.invoke(app, [*args, *extra, "--home", str(settings.home), "--json"])
        assert (result.exit_code == 0) is ok, result.output
        return json.loads(result.stdout)

    return invoke


DISPATCHER = ["cloudflare-deploy-dispatcher", "--account-id", "acc1", "--dispatch-namespace", "ns"]
TENANT = ["cloudflare-deploy-tenant", "acme", "--account-id", "acc1", "--dispatch-namespace", "ns"]
ROLLBACK = ["cloudflare-rollback-dispatcher", "--account-id", "acc1", "--dispatch-namespace", "ns"]


def cloudflare_audit(registry) -> list[tuple[str, str, str | None]]:
    return [
        (e.actor, e.action, e.subject)
        for e in audit.entries(registry.engine)
        if e.action.startswith("cloudflare.")
    ]


@pytest.mark.parametrize(
    "command", [DISPATCHER, TENANT, ROLLBACK], ids=["dispatcher", "tenant", "rollback"]
)
def test_no_key_is_refused_with_a_clear_error_even_for_a_dry_run(run, fake, secrets, command):
    for execute in ([], ["--execute"]):
        out = run(*command, *execute, ok=False)
        assert out["error"] == "api_key_required"
        assert "--api-key" in out["detail"] and "CLAW402_API_KEY" in out["detail"]
    assert fake.requests == []


def test_a_wrong_key_is_refused(run, fake, secrets):
    forged = secrets["root"][:-4] + ("AAAA" if not secrets["root"].endswith("AAAA") else "BBBB")
    for key, detail in ((forged, "unknown API key"), ("c402_nope", "not an API key")):
        for execute in ([], ["--execute"]):
            out = run(*DISPATCHER, *execute, key=key, ok=False)
            assert out["ok"] is False and out["detail"].startswith(detail)
    assert fake.requests == []


def test_a_read_key_plans_but_does_not_deploy(run, fake, secrets, registry):
    assert run(*DISPATCHER, key=secrets["bob"])["executed"] is False
    out = run(*DISPATCHER, "--execute", key=secrets["bob"], ok=False)
    assert out["error"] == "missing_scope" and "'deploy' scope" in out["detail"]
    assert fake.requests == [] and cloudflare_audit(registry) == []


def test_a_tenant_worker_needs_its_owner(run, fake, secrets, registry):
    for user, execute, error in (
        ("carol", [], "not_tenant_owner"),  # deploy scope, not the owner: not even a plan
        ("carol", ["--execute"], "not_tenant_owner"),
        ("bob", [], "not_tenant_owner"),
        ("bob", ["--execute"], "missing_scope"),  # the scope is checked first
    ):
        out = run(*TENANT, *execute, key=secrets[user], ok=False)
        assert out["error"] == error
        assert ("'acme'" if error == "not_tenant_owner" else "'deploy' scope") in out["detail"]
    assert fake.requests == []
    done = run(*TENANT, "--execute", key=secrets["alice"])
    assert done["executed"] is True and len(fake.requests) == 1
    (entry,) = cloudflare_audit(registry)
    assert entry[0].startswith("alice (c402_")
    assert entry[1:] == ("cloudflare.deployed", "worker:tenant-acme-worker")


def uploads(fake):
    """The PUTs (a dispatcher upload first reads its Durable Object migration tag)."""
    return [r for r in fake.requests if r.method == "PUT"]


def test_deploy_then_rollback_needs_admin_and_both_are_audited(run, fake, secrets, registry):
    run(*DISPATCHER, "--execute", key=secrets["alice"])
    add_tenant(registry, "other")  # a new directory: the next upload differs
    run(*DISPATCHER, "--execute", key=secrets["carol"])
    assert len(uploads(fake)) == 2
    assert run(*ROLLBACK, key=secrets["bob"])["executed"] is False  # a plan: any key
    out = run(*ROLLBACK, "--execute", key=secrets["alice"], ok=False)
    assert out["error"] == "missing_scope" and "'admin' scope" in out["detail"]
    assert len(uploads(fake)) == 2
    rolled = run(*ROLLBACK, "--execute", key=secrets["root"])
    assert rolled["deploy"]["action"] == "rollback" and len(uploads(fake)) == 3
    actions = [(actor.split(" ")[0], action) for actor, action, _ in cloudflare_audit(registry)]
    assert actions == [
        ("alice", "cloudflare.deployed"),
        ("carol", "cloudflare.deployed"),
        ("root", "cloudflare.rolled_back"),
    ]
    assert audit.verify(registry.engine).ok


def test_publish_uses_the_deploy_key_and_audits_each_upload(
    fake, settings, registry, secrets, monkeypatch
):
    for name in (
        "CLAW402_ENV",
        "CLAW402_NETWORK",
        "CLAW402_ASSET",
        "CLAW402_FACILITATOR_URL",
        "CLAW402_DATABASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    args = [
        "deploy",
        str(CITIES),
        "--tenant",
        "cities",
        "--price",
        "0",
        "--publish",
        "--account-id",
        "acc1",
        "--dispatch-namespace",
        "ns",
        "--home",
        str(settings.home),
        "--json",
        "--execute",
    ]
    refused = runner.invoke(main_app, [*args, "--api-key", secrets["bob"]])
    assert refused.exit_code == 1 and json.loads(refused.stdout)["error"] == "missing_scope"
    assert fake.requests == []
    done = runner.invoke(main_app, [*args, "--api-key", secrets["alice"]])
    assert done.exit_code == 0, done.output
    assert len(uploads(fake)) == 2
    subjects = [subject for _, _, subject in cloudflare_audit(registry)]
    assert subjects == ["worker:tenant-cities-worker", "worker:claw402-dispatcher"]


def test_publish_through_control_needs_the_deploy_key_and_audits_a_half_publish(
    fake, settings, registry, secrets
):
    """`deploy --publish` is one control operation: a read key deploys nothing and uploads
    nothing; when the dispatcher upload fails after the tenant's, the deploy stands, the
    tenant upload is audited, and the error says both."""
    from cfapi import failure, success

    from claw402.control import edge, tenants
    from claw402.control.errors import ControlError

    where = edge.Publish(edge.target("acc1", None, "ns"), execute=True)
    request = DeployRequest(source=CITIES, slug="acme", price="0")
    with pytest.raises(ControlError) as refused:
        tenants.deploy(registry, settings, secrets["bob"], request, publish=where)
    assert refused.value.code == "missing_scope" and fake.requests == []

    fake.answers.extend([success(), failure(400, 10021, "script rejected")])
    with pytest.raises(ControlError) as half:
        tenants.deploy(registry, settings, secrets["alice"], request, publish=where)
    assert half.value.code == "cloudflare_api_error"
    assert "acme is deployed, but publishing it failed" in str(half.value)
    assert len(fake.requests) == 2
    assert registry.get("acme").dataset.version == 2
    assert [(a.split(" ")[0], act, subj) for a, act, subj in cloudflare_audit(registry)] == [
        ("alice", "cloudflare.deployed", "worker:tenant-acme-worker")
    ]


def test_directory_and_build_show_a_key_only_its_tenants(
    run, fake, secrets, registry, settings, monkeypatch
):
    """Both hold every tenant's pay-to, hosts and prices: no key, no directory; a creator's
    key covers their own tenants, an admin's all of them."""
    for name in ("CLAW402_ENV", "CLAW402_NETWORK", "CLAW402_ASSET", "CLAW402_FACILITATOR_URL"):
        monkeypatch.delenv(name, raising=False)
    add_tenant(registry, "other")  # no owner: an admin's only
    out = settings.home / "edge"
    for command in (["export-tenant-directory"], ["cloudflare", "build", "--out", str(out)]):
        refused = run(*command, ok=False)
        assert refused["error"] == "api_key_required" and "--api-key" in refused["detail"]
    assert not out.exists()

    def slugs(key: str) -> list[str]:
        return sorted(run("export-tenant-directory", key=key)["bySlug"])

    assert slugs(secrets["alice"]) == ["acme"]
    assert slugs(secrets["bob"]) == []
    assert slugs(secrets["root"]) == ["acme", "other"]
    built = run("cloudflare", "build", "--out", str(out), key=secrets["alice"])
    assert [t["slug"] for t in built["tenants"]] == ["acme"]
    assert (out / "directory.json").read_text().count('"slug"') == 1
