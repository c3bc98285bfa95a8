"""Deploy, history and rollback of the dispatch Worker through the real SDK against a recorder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest
from cfapi import FakeCloudflare, failure
from cfhelpers import add_tenant, cli_app
from cfstate import CloudflareState, Script
from typer.testing import CliRunner

from claw402.cloudflare.api import Target
from claw402.cloudflare.bundle import Module, WorkerBundle
from claw402.cloudflare.deploy import (
    DeployError,
    execute,
    plan_dispatcher,
    without_applied_migration,
)
from claw402.cloudflare.dispatcher import (
    DispatcherOptions,
    MigrationBehind,
    UnknownMigrationTag,
    migration_from,
)
from claw402.cloudflare.history import HISTORY_FILE, History

app = cli_app()
SECRET_VALUE = "s3cret-value-never-stored"

# The edge payer proof (templates/proof.js) and the @noble modules it imports, flat and relative.
PROOF_MODULES = (
    "proof.js", "vouchers.js", "noble-curves-_shortw_utils.js", "noble-curves-abstract-curve.js",
    "noble-curves-abstract-hash-to-curve.js", "noble-curves-abstract-modular.js",
    "noble-curves-abstract-utils.js", "noble-curves-abstract-weierstrass.js",
    "noble-curves-secp256k1.js", "noble-hashes-_md.js", "noble-hashes-_u64.js",
    "noble-hashes-crypto.js", "noble-hashes-hmac.js", "noble-hashes-sha2.js",
    "noble-hashes-sha3.js", "noble-hashes-utils.js",
)  # fmt: skip


@pytest.fixture
def fake() -> Iterator[FakeCloudflare]:
    with FakeCloudflare() as server:
        yield server


@pytest.fixture
def run(fake, settings, monkeypatch):
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", fake.base_url)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "test-token")
    monkeypatch.setenv("EVENTS_TOKEN", SECRET_VALUE)
    monkeypatch.delenv("CLOUDFLARE_ACCOUNT_ID", raising=False)
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True) -> dict:
        result = runner.invoke(app, [*args, "--home", str(settings.home), "--json"])
        assert (result.exit_code == 0) is ok, result.output
        return json.loads(result.output)

    return invoke


def deploy_args(*extra: str) -> list[str]:
    return [
        "cloudflare-deploy-dispatcher",
        "--account-id",
        "acc123",
        "--dispatch-namespace",
        "prod-ns",
        *extra,
    ]


def test_dry_run_plans_without_calling(run, fake, registry, settings):
    add_tenant(registry, "acme", plan="pro", hosts=("api.acme.test",))
    out = run(*deploy_args("--secret", "EVENTS_TOKEN", "--events-url", "https://ev.example/in"))
    assert out["executed"] is False and fake.requests == []
    plan = out["plan"]
    get, call = plan["calls"]  # the migration tag first: the PUT sends what is not applied
    assert (get["method"], get["sdk"]) == ("GET", "client.workers.scripts.list")
    assert call["method"] == "PUT"
    assert call["path"] == "/accounts/acc123/workers/scripts/claw402-dispatcher"
    assert call["url"] == fake.base_url + call["path"]
    assert call["sdk"] == "client.workers.scripts.update"
    assert [p.get("filename") for p in call["multipart"]] == [
        "dispatcher.js",
        "paywall.js",
        "limits.js",
        "paths.js",
        *PROOF_MODULES,
        "rules.js",
        "kinds.js",
        "directory.js",
        "payconfig.js",
        "pages.js",
        "manners.js",
        "catalogue.js",
        "paywallpage.js",
        None,
    ]
    assert plan["secrets"] == ["EVENTS_TOKEN"]
    assert {"type": "secret_text", "name": "EVENTS_TOKEN"} in plan["bindings"]
    assert {"type": "dispatch_namespace", "name": "DISPATCHER", "namespace": "prod-ns"} in plan[
        "bindings"
    ]
    assert {"type": "plain_text", "name": "EVENTS_URL", "text": "https://ev.example/in"} in plan[
        "bindings"
    ]
    assert plan["size"]["gzipBytes"] < plan["size"]["bytes"] < plan["size"]["limitBytes"]
    assert plan["directory"] == {"tenants": 1, "hosts": 1}
    assert plan["maxRetries"] == 2 and plan["timeoutSeconds"] == 120
    assert SECRET_VALUE not in json.dumps(out)
    assert not (settings.home / HISTORY_FILE).exists()


def test_execute_uploads_and_records(run, fake, registry, settings):
    add_tenant(registry, "acme", plan="pro", hosts=("api.acme.test",))
    out = run(*deploy_args("--secret", "EVENTS_TOKEN", "--execute"))
    listed, request = fake.requests
    assert (listed.method, listed.path) == ("GET", "/client/v4/accounts/acc123/workers/scripts")
    assert request.method == "PUT"
    assert request.path == "/client/v4/accounts/acc123/workers/scripts/claw402-dispatcher"
    assert request.headers["Authorization"] == "Bearer test-token"
    assert [(p.name, p.filename, p.content_type) for p in request.parts] == [
        ("files", "dispatcher.js", "application/javascript+module"),
        ("files", "paywall.js", "application/javascript+module"),
        ("files", "limits.js", "application/javascript+module"),
        ("files", "paths.js", "application/javascript+module"),
        *[("files", name, "application/javascript+module") for name in PROOF_MODULES],
        ("files", "rules.js", "application/javascript+module"),
        ("files", "kinds.js", "application/javascript+module"),
        ("files", "directory.js", "application/javascript+module"),
        ("files", "payconfig.js", "application/javascript+module"),
        ("files", "pages.js", "application/javascript+module"),
        ("files", "manners.js", "application/javascript+module"),
        ("files", "catalogue.js", "application/javascript+module"),
        ("files", "paywallpage.js", "application/javascript+module"),
        ("metadata", None, "application/json"),
    ]
    assert b"api.acme.test" in request.part("directory.js").content
    meta = request.metadata
    assert meta["main_module"] == "dispatcher.js"
    assert meta["compatibility_date"] == "2026-11-01"
    assert meta["keep_bindings"] == ["secret_text", "secret_key"]
    assert len(meta["tags"]) <= 8
    assert meta["bindings"] == [
        {"type": "dispatch_namespace", "name": "DISPATCHER", "namespace": "prod-ns"},
        {"type": "durable_object_namespace", "name": "RATES", "class_name": "CallerRate"},
        {"type": "durable_object_namespace", "name": "BOOKS", "class_name": "TenantBooks"},
        {"type": "secret_text", "name": "EVENTS_TOKEN", "text": SECRET_VALUE},
    ]
    assert meta["migrations"] == {
        "new_tag": "claw402-limits-v2",
        "new_sqlite_classes": ["PaymentClaims", "CallerRate", "TenantBooks"],
    }  # a new script: every class at once

    entry = out["deploy"]
    assert entry["status"] == "succeeded" and entry["kind"] == "dispatcher"
    assert entry["result"] == {"id": "script-id", "etag": "etag-1"}
    history = History(settings.home)
    assert [e["id"] for e in history.entries()] == [entry["id"]]
    raw = (settings.home / HISTORY_FILE).read_text()
    assert SECRET_VALUE not in raw and "test-token" not in raw
    assert (
        history.bundle(entry).module("directory.js").content == request.part("directory.js").content
    )


def test_rollback_reuploads_the_previous_copy(run, fake, registry):
    add_tenant(registry, "acme")
    first = run(*deploy_args("--execute"))["deploy"]
    add_tenant(registry, "beta", hosts=("beta.test",))
    second = run(*deploy_args("--execute"))["deploy"]
    assert b"beta.test" in fake.requests[3].part("directory.js").content  # [GET, PUT] each

    plan = run(
        "cloudflare-rollback-dispatcher",
        "--account-id",
        "acc123",
        "--dispatch-namespace",
        "prod-ns",
    )["plan"]
    assert plan["action"] == "rollback" and plan["rollbackOf"] == first["id"]
    assert len(fake.requests) == 4  # a dry run calls nothing

    done = run(
        "cloudflare-rollback-dispatcher",
        "--account-id",
        "acc123",
        "--dispatch-namespace",
        "prod-ns",
        "--execute",
    )["deploy"]
    restored = fake.requests[5]
    assert restored.path == fake.requests[1].path
    for name in ("dispatcher.js", "directory.js", "rules.js"):
        assert restored.part(name).content == fake.requests[1].part(name).content
    assert restored.metadata == fake.requests[1].metadata
    assert done["action"] == "rollback" and done["rollbackOf"] == first["id"]

    # Rolling back again moves further back (never back to `second`: no ping-pong); nothing is
    # older than `first`. --to picks any succeeded upload.
    again = run(
        "cloudflare-rollback-dispatcher",
        "--account-id",
        "acc123",
        "--dispatch-namespace",
        "prod-ns",
        ok=False,
    )
    assert "nothing to roll back to" in again["detail"]
    explicit = run(
        "cloudflare-rollback-dispatcher",
        "--account-id",
        "acc123",
        "--dispatch-namespace",
        "prod-ns",
        "--to",
        second["id"],
    )["plan"]
    assert explicit["rollbackOf"] == second["id"]
    missing = run(
        "cloudflare-rollback-dispatcher", "--account-id", "acc123", "--to", "nope", ok=False
    )
    assert missing["error"] == "deploy_refused" and "no deploy 'nope'" in missing["detail"]


def test_rollback_keeps_secrets_by_binding_type(run, fake, registry):
    add_tenant(registry, "acme")
    run(*deploy_args("--secret", "EVENTS_TOKEN", "--execute"))
    add_tenant(registry, "beta")
    run(*deploy_args("--secret", "EVENTS_TOKEN", "--execute"))
    run(
        "cloudflare-rollback-dispatcher",
        "--account-id",
        "acc123",
        "--dispatch-namespace",
        "prod-ns",
        "--execute",
    )
    meta = fake.requests[-1].metadata
    assert all(b["type"] != "secret_text" for b in meta["bindings"])  # no value to send
    assert meta["keep_bindings"] == ["secret_text", "secret_key"]  # the live one stays bound


@pytest.mark.parametrize(
    ("status", "headers", "calls", "message"),
    [
        (401, {}, 1, "Cloudflare rejected the API token (401)"),
        (403, {}, 1, "needs the Workers Scripts Edit permission"),
        (
            429,
            {"retry-after-ms": "5"},
            3,
            "rate limited by the Cloudflare API (429) after 2 retries",
        ),
        (503, {"retry-after-ms": "5"}, 3, "the Cloudflare API failed (503) after 2 retries"),
    ],
)
def test_api_errors_are_explained_and_recorded(
    run, fake, registry, settings, status, headers, calls, message
):
    add_tenant(registry, "acme")
    ok = run(*deploy_args("--execute"))["deploy"]
    for _ in range(3):
        fake.answers.append(failure(status, 10000 + status, "upstream said no", headers))
    out = run(*deploy_args("--execute"), ok=False)
    assert out["error"] == "cloudflare_api_error"
    assert message in out["detail"] and "upstream said no" in out["detail"]
    assert len(fake.requests) == 2 + calls  # retried only where a retry can help
    entries = History(settings.home).entries()
    assert [e["status"] for e in entries] == ["succeeded", "failed"]
    assert entries[1]["httpStatus"] == status and message in entries[1]["error"]
    # The failed upload is never a rollback target: the live copy is still the first one.
    with pytest.raises(LookupError, match="no earlier upload"):
        History(settings.home).rollback_target("dispatcher", "claw402-dispatcher", "acc123")
    assert ok["id"] == entries[0]["id"]


def test_refusals_before_any_call(run, fake, registry, settings, monkeypatch):
    add_tenant(registry, "acme")
    no_account = run("cloudflare-deploy-dispatcher", "--execute", ok=False)
    assert "account id is required" in no_account["detail"]
    monkeypatch.delenv("EVENTS_TOKEN")
    no_secret = run(*deploy_args("--secret", "EVENTS_TOKEN", "--execute"), ok=False)
    assert "EVENTS_TOKEN not set in the environment" in no_secret["detail"]
    monkeypatch.delenv("CLAW402_EVENTS_TOKEN", raising=False)
    events = run(
        *deploy_args("--events-url", "https://gw.example/_claw402/events", "--execute"), ok=False
    )
    assert "CLAW402_EVENTS_TOKEN not set in the environment" in events["detail"]  # else lost
    bad_name = run(*deploy_args("--secret", "lower-case"), ok=False)
    assert "secret name 'lower-case'" in bad_name["detail"]
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN")
    no_token = run(*deploy_args("--execute"), ok=False)
    assert "no API token" in no_token["detail"]
    assert fake.requests == []
    assert History(settings.home).entries() == []


def test_nothing_to_roll_back(run):
    out = run("cloudflare-rollback-dispatcher", "--account-id", "acc123", ok=False)
    assert "no executed deploy" in out["detail"]


def test_readable_output(fake, registry, settings, monkeypatch):
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", fake.base_url)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "test-token")
    add_tenant(registry, "acme")
    runner = CliRunner()
    home = ["--home", str(settings.home)]
    dry = runner.invoke(app, [*deploy_args(), *home])
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output and "PUT " in dry.output and "DISPATCHER" in dry.output
    done = runner.invoke(app, [*deploy_args("--execute"), *home])
    assert done.exit_code == 0 and "uploaded dispatcher" in done.output
    fake.answers.append(failure(401, 10000, "Authentication error"))
    bad = runner.invoke(app, [*deploy_args("--execute"), *home])
    assert bad.exit_code == 1 and "rejected the API token" in bad.output


def listing(*scripts: dict) -> tuple[int, dict, dict]:
    return 200, {"success": True, "errors": [], "messages": [], "result": list(scripts)}, {}


def test_dispatcher_with_payments_migrates_once(run, fake, registry, settings, monkeypatch):
    add_tenant(registry, "acme", price_atomic=1000)
    for name, value in {
        "CLAW402_ENV": "dev",
        "CLAW402_NETWORK": "eip155:31337",
        "CLAW402_ASSET": "0x" + "a1" * 20,
        "CLAW402_FACILITATOR_URL": "https://facilitator.example",
        "CLAW402_TREASURY": "0x" + "b2" * 20,
        "CLAW402_FACILITATOR_API_KEY": "fac-key-value",
    }.items():
        monkeypatch.setenv(name, value)
    plan = run(*deploy_args())["plan"]
    get, put = plan["calls"]
    assert (get["method"], get["path"], get["sdk"]) == (
        "GET",
        "/accounts/acc123/workers/scripts",
        "client.workers.scripts.list",
    )
    assert put["metadata"]["migrations"] == {
        "new_tag": "claw402-limits-v2",
        "new_sqlite_classes": ["PaymentClaims", "CallerRate", "TenantBooks"],
    }
    assert {
        "type": "durable_object_namespace",
        "name": "CLAIMS",
        "class_name": "PaymentClaims",
    } in plan["bindings"]
    assert plan["secrets"] == ["CLAW402_FACILITATOR_API_KEY"]
    assert plan["payments"]["facilitator"] == "https://facilitator.example"

    fake.answers.append(listing())  # a first upload: no script yet
    run(*deploy_args("--execute"))
    listed, uploaded = fake.requests
    assert (listed.method, listed.path) == ("GET", "/client/v4/accounts/acc123/workers/scripts")
    assert uploaded.metadata["migrations"]["new_tag"] == "claw402-limits-v2"
    assert {
        "type": "secret_text",
        "name": "CLAW402_FACILITATOR_API_KEY",
        "text": "fac-key-value",
    } in uploaded.metadata["bindings"]
    payconfig = uploaded.part("payconfig.js").content
    assert b"https://facilitator.example" in payconfig and b"fac-key-value" not in payconfig

    fake.answers.append(listing({"id": "claw402-dispatcher", "migration_tag": "claw402-limits-v2"}))
    run(*deploy_args("--execute"))
    assert "migrations" not in fake.requests[-1].metadata  # applied once, never again

    fake.answers.append(listing({"id": "claw402-dispatcher", "migration_tag": "someone-else"}))
    refused = run(*deploy_args("--execute"), ok=False)
    assert "migration tag 'someone-else'" in refused["detail"]
    assert "fac-key-value" not in (settings.home / HISTORY_FILE).read_text()


def test_a_dispatcher_at_the_claims_tag_gets_the_limits_step(run, fake, registry):
    """A script uploaded before the limits (tag claw402-claims-v1, PaymentClaims only) moves to
    claw402-limits-v2 by one `old_tag` step adding the limits' classes, then never again."""
    state = CloudflareState()
    fake.responder = state
    old = WorkerBundle(
        "claw402-dispatcher",
        (Module("dispatcher.js", b"export default {}"),),
        {"main_module": "dispatcher.js"},
    )
    state.scripts[(None, "claw402-dispatcher")] = Script(
        old, "etag-old", "claw402-claims-v1", classes=("PaymentClaims",)
    )
    add_tenant(registry, "acme", hosts=("api.acme.test",))

    plan = run(*deploy_args())["plan"]  # a dry run: the GET decides what the PUT carries
    assert [c["method"] for c in plan["calls"]] == ["GET", "PUT"] and fake.requests == []

    run(*deploy_args("--execute"))
    listed, uploaded = fake.requests
    assert (listed.method, listed.path) == ("GET", "/client/v4/accounts/acc123/workers/scripts")
    assert uploaded.metadata["migrations"] == {
        "old_tag": "claw402-claims-v1",
        "new_tag": "claw402-limits-v2",
        "steps": [{"new_sqlite_classes": ["CallerRate", "TenantBooks"]}],
    }
    script = state.scripts[(None, "claw402-dispatcher")]
    assert script.migration_tag == "claw402-limits-v2"
    assert script.classes == ("PaymentClaims", "CallerRate", "TenantBooks")
    assert script.bundle.module("limits.js").content == uploaded.part("limits.js").content

    run(*deploy_args("--execute"))
    assert "migrations" not in fake.requests[-1].metadata  # at the latest tag: nothing to run
    assert state.scripts[(None, "claw402-dispatcher")].migration_tag == "claw402-limits-v2"


def test_the_fake_refuses_what_cloudflare_refuses(run, fake, registry):
    """The stand-in holds the deploy to the API's rules: a binding to a class no migration
    created, or an `old_tag` that is not the script's, is a 400 and changes nothing."""
    state = CloudflareState()
    fake.responder = state
    add_tenant(registry, "acme")
    run(*deploy_args("--execute"))  # a new script: every class in one migration
    assert state.scripts[(None, "claw402-dispatcher")].classes == (
        "PaymentClaims",
        "CallerRate",
        "TenantBooks",
    )
    before = state.scripts[(None, "claw402-dispatcher")]
    fake.answers.append(listing())  # a stale read: the PUT sends a first upload's migration
    refused = run(*deploy_args("--execute"), ok=False)
    assert "migration tag precondition failed" in refused["detail"]
    assert state.scripts[(None, "claw402-dispatcher")] is before
    state.scripts.clear()
    fake.answers.append(
        listing({"id": "claw402-dispatcher", "migration_tag": "claw402-limits-v2"})
    )  # stale the other way
    missing = run(*deploy_args("--execute"), ok=False)
    assert "no migration creates class CallerRate" in missing["detail"]
    assert state.scripts == {}


def test_migration_from_each_tag():
    v1, v2 = "claw402-claims-v1", "claw402-limits-v2"
    every = ["PaymentClaims", "CallerRate", "TenantBooks"]
    assert migration_from(None) == {"new_tag": v2, "new_sqlite_classes": every}
    assert migration_from(v1) == {
        "old_tag": v1,
        "new_tag": v2,
        "steps": [{"new_sqlite_classes": every[1:]}],
    }
    assert migration_from(v2) is None
    # an older copy (a rollback) brings the script to its own tag, never past it
    assert migration_from(None, v1) == {"new_tag": v1, "new_sqlite_classes": every[:1]}
    assert migration_from(None, None) is None and migration_from(v1, v1) is None
    for current, wanted in ((v2, v1), (v1, None)):
        with pytest.raises(MigrationBehind):
            migration_from(current, wanted)
    with pytest.raises(UnknownMigrationTag):
        migration_from("someone-else")


@pytest.mark.parametrize("old_migrations", [
    {"new_tag": "claw402-claims-v1", "new_sqlite_classes": ["PaymentClaims"]},  # before limits
    None,  # before any Durable Object
])  # fmt: skip
def test_a_rollback_past_a_migration_is_refused_before_any_upload(fake, registry, settings,
                                                                   old_migrations):  # fmt: skip
    """Sending a copy without the limits' classes over a script that has them would drop
    them: Cloudflare refuses that without a deletion migration, so the deploy says so first."""
    state = CloudflareState()
    fake.responder = state
    add_tenant(registry, "acme")
    target = Target("acc123", "prod-ns", api_token="tok", base_url=fake.base_url)
    plan = plan_dispatcher(registry, target, DispatcherOptions(dispatch_namespace="prod-ns"))
    execute(plan, History(settings.home))
    assert state.scripts[(None, "claw402-dispatcher")].migration_tag == "claw402-limits-v2"
    metadata = {k: v for k, v in plan.bundle.metadata.items() if k != "migrations"}
    if old_migrations is not None:
        metadata["migrations"] = old_migrations
    old = replace(plan, bundle=WorkerBundle(plan.bundle.script_name, plan.bundle.modules, metadata),
                  action="rollback")  # fmt: skip
    sent = len(fake.requests)
    with pytest.raises(DeployError, match="roll back to a copy built at 'claw402-limits-v2'"):
        without_applied_migration(old)
    assert [r.method for r in fake.requests[sent:]] == ["GET"]  # read the tag, upload nothing
