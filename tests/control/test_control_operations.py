"""Every control-plane operation performed through `claw402.control`, with no CLI: the same
refusals (codes) and the same audit entries tests/control/test_control_cli.py sees through
the CLI, so a second front door gets the rules by calling these functions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from claw402.chain.wallet import Wallet
from claw402.config import Settings
from claw402.control import access, audit, edge, hosts, money, tenants
from claw402.control.errors import ControlError
from claw402.registry.deploy import DeployRequest
from claw402.registry.store import Registry
from claw402.samples import CITIES

# What the gated walk-through (here and through the CLI in test_control_cli.py) leaves in
# the audit log, in order.
GATED_ACTIONS = [
    "tenant.deployed",  # legacy, by local
    "user.created",
    "key.created",
    "user.created",
    "user.created",
    "key.created",
    "key.created",
    "key.created",
    "tenant.deployed",  # acme by alice
    "tenant.deployed",
    "tenant.plan_changed",
    "tenant.price_changed",
    "wallet.verified",
    "key.rotated",
    "tenant.removed",
]


@pytest.fixture
def home(tmp_path: Path, database_url: str) -> Iterator[tuple[Settings, Registry]]:
    settings = Settings(home=tmp_path / "home", database_url=database_url)
    registry = Registry.open(settings)
    yield settings, registry
    registry.close()


def refused(code: str, operation, *args, **kwargs) -> ControlError:
    with pytest.raises(ControlError) as caught:
        operation(*args, **kwargs)
    assert caught.value.code == code, str(caught.value)
    return caught.value


def actions(registry: Registry) -> list[str]:
    return [e.action for e in audit.entries(registry.engine, limit=1000)]


def test_mutating_operations_refuse_and_audit_as_the_cli_does(home, monkeypatch):
    monkeypatch.delenv("CLAW402_API_KEY", raising=False)
    settings, registry = home
    engine = registry.engine

    def deploy(slug: str, key: str | None, **fields) -> tenants.Deployed:
        request = DeployRequest(
            source=CITIES, slug=slug, price=fields.pop("price", "0.01"), **fields
        )
        return tenants.deploy(registry, settings, key, request)

    deploy("legacy", None)  # before any key: open, owned by nobody
    access.create_user(engine, None, "root")
    admin = access.create_key(engine, None, "root", ["admin"]).secret
    access.create_user(engine, admin, "alice")
    access.create_user(engine, admin, "bob")
    alice = access.create_key(engine, admin, "alice", ["deploy,withdraw"]).secret
    bob_read = access.create_key(engine, admin, "bob", ["read"]).secret
    bob = access.create_key(engine, admin, "bob", ["deploy"]).secret

    missing = refused("api_key_required", deploy, "acme", None)
    assert "--api-key" in str(missing)
    assert "lacks the 'deploy' scope" in str(refused("missing_scope", deploy, "acme", bob_read))
    refused("missing_scope", access.create_user, engine, alice, "eve")

    assert deploy("acme", alice).tenant.owner == "alice"
    assert "owned by 'alice'" in str(refused("not_tenant_owner", deploy, "acme", bob))
    refused("not_tenant_owner", tenants.remove, registry, settings, bob, "acme")
    refused("not_tenant_owner", deploy, "legacy", alice)
    deploy("acme", alice, plan="pro", price="0.02")
    refused("not_tenant_owner", money.balance, registry, bob, "acme")
    assert money.balance(registry, alice, "acme")[1].available == 0

    wallet = Wallet.create()
    refused("no_wallet", money.withdraw, registry, alice, "acme", "1")
    step = money.verify_wallet(registry, alice, "acme", wallet.address)
    assert step.proved is None and wallet.address in step.challenge.message
    proved = money.verify_wallet(
        registry, alice, "acme", wallet.address, private_key=wallet.private_key
    ).proved
    assert proved is not None and proved.address == wallet.address
    refused("insufficient_funds", money.withdraw, registry, alice, "acme", "1")
    refused("missing_scope", money.run_payouts, engine, alice, dry_run=True)

    rotated = access.rotate_key(engine, alice, alice[:17]).secret
    refused("key_revoked", deploy, "acme", alice)
    refused("forbidden", access.revoke_key, engine, bob, rotated[:17])
    tenants.remove(registry, settings, rotated, "acme")

    assert actions(registry) == GATED_ACTIONS
    refused("missing_scope", access.audit_entries, registry, rotated)
    refused("missing_scope", access.list_keys, engine, bob)
    refused("missing_scope", money.list_withdrawals, engine, bob)
    refused("tenant_not_found", access.audit_entries, registry, admin, slug="gone")
    report = access.audit_verify(engine, bob_read)
    assert report.ok and report.entries == len(actions(registry))


def test_refused_hosts_are_audited_and_change_nothing(home):
    settings, registry = home
    request = DeployRequest(source=CITIES, slug="acme", price="0", hosts=["127.0.0.1"])
    refused("host_refused", tenants.deploy, registry, settings, None, request)
    assert registry.get("acme") is None
    (entry,) = audit.entries(registry.engine)
    assert entry.action == "host.refused" and entry.details["hosts"] == ["127.0.0.1"]
    bad = DeployRequest(source=CITIES, slug="Not A Slug", price="0")
    refused("deploy_failed", tenants.deploy, registry, settings, None, bad)
    refused("tenant_not_found", tenants.remove, registry, settings, None, "nobody")
    assert len(audit.entries(registry.engine)) == 1


def test_reads_show_a_creator_only_their_tenants(home, tmp_path, monkeypatch):
    for name in ("CLAW402_ENV", "CLAW402_NETWORK", "CLAW402_ASSET", "CLAW402_FACILITATOR_URL"):
        monkeypatch.delenv(name, raising=False)  # the build's edge paywall reads them
    # A priced tenant is built for the edge only with payment settings (Base Sepolia here).
    monkeypatch.setenv("CLAW402_ENV", "test")
    monkeypatch.setenv("CLAW402_TREASURY", "0x" + "7" * 40)
    settings, registry = home
    engine = registry.engine
    tenants.deploy(
        registry, settings, None, DeployRequest(source=CITIES, slug="legacy", price="0.01")
    )
    access.create_user(engine, None, "root")
    admin = access.create_key(engine, None, "root", ["admin"]).secret
    access.create_user(engine, admin, "alice")
    alice = access.create_key(engine, admin, "alice", ["deploy"]).secret
    tenants.deploy(
        registry,
        settings,
        alice,
        DeployRequest(source=CITIES, slug="acme", price="0.01", hosts=["api.acme.example"]),
    )

    for operation in (
        lambda key: tenants.visible(registry, key),
        lambda key: tenants.events(registry, key),
        lambda key: hosts.listing(registry, key),
        lambda key: edge.directory(registry, key),
        lambda key: edge.build(registry, key, tmp_path / "none", dispatch_namespace="ns"),
    ):
        refused("api_key_required", operation, None)
    assert [t.slug for t in tenants.visible(registry, alice)] == ["acme"]
    assert sorted(t.slug for t in tenants.visible(registry, admin)) == ["acme", "legacy"]
    assert tenants.show(registry, alice, "acme").owner == "alice"
    refused("not_tenant_owner", tenants.show, registry, alice, "legacy")
    refused("not_tenant_owner", tenants.events, registry, alice, slug="legacy")
    refused("tenant_not_found", tenants.show, registry, admin, "nobody")
    assert [c.host for c in hosts.listing(registry, alice)] == ["api.acme.example"]

    assert list(edge.directory(registry, alice)["bySlug"]) == ["acme"]
    assert list(edge.directory(registry, admin, "maps")["bySlug"]) == ["acme", "legacy"]
    assert [e["slug"] for e in edge.directory(registry, alice, "registry")["tenants"]] == ["acme"]
    built = edge.build(registry, alice, tmp_path / "edge", dispatch_namespace="ns")
    assert sorted(built.tenants) == ["acme"]
    assert sorted(
        edge.build(registry, admin, tmp_path / "all", dispatch_namespace="ns").tenants
    ) == ["acme", "legacy"]


def test_switching_to_pricing_by_rows_is_audited(home):
    settings, registry = home
    request = DeployRequest(source=CITIES, slug="rowed", price="0.01")
    tenants.deploy(registry, settings, None, request)
    rows = DeployRequest(source=CITIES, slug="rowed", price_per_1k_rows="0.05")
    after = tenants.deploy(registry, settings, None, rows).tenant
    assert (after.price_atomic, after.price_per_1k_rows_atomic) == (0, 50_000)
    changes = {
        e.action: e.details
        for e in audit.entries(registry.engine, limit=100)
        if e.action.endswith("_changed")
    }
    assert changes == {
        "tenant.price_changed": {"from": 10_000, "to": 0},
        "tenant.price_per_1k_rows_changed": {"from": None, "to": 50_000},
    }
    refused(
        "deploy_failed",
        tenants.deploy,
        registry,
        settings,
        None,
        DeployRequest(source=CITIES, slug="rowed", price="0.01", price_per_1k_rows="0.05"),
    )
    assert registry.get("rowed").price_per_1k_rows_atomic == 50_000  # nothing changed
