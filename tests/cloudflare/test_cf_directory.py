"""The tenant directory export: both shapes, the entry fields, and the CLI command."""

from __future__ import annotations

import json

from cfhelpers import add_tenant, cli_app
from typer.testing import CliRunner

from claw402.cloudflare.directory import export_directory
from claw402.limits.policy import PLAN_RATES, policy_for
from claw402.registry.models import Controls

app = cli_app()


def test_maps_and_registry_shapes(registry):
    add_tenant(
        registry,
        "acme",
        plan="pro",
        hosts=("api.acme.com", "data.acme.com"),
        price_atomic=1500,
        pay_to="0x" + "ab" * 20,
    )
    add_tenant(registry, "beta", cpu_ms=75)
    tenants = registry.list_tenants()

    maps = export_directory(tenants)
    assert set(maps) == {"byHost", "bySlug"}
    assert list(maps["bySlug"]) == ["acme", "beta"]
    assert maps["byHost"]["api.acme.com"] is maps["bySlug"]["acme"]
    acme = maps["bySlug"]["acme"]
    assert acme == {
        "tenantId": tenants[0].tenant_id,
        "slug": "acme",
        "workerName": "tenant-acme-worker",
        "plan": "pro",
        "limits": {"cpuMs": 200, "subRequests": 50, "cpu_ms": 200, "subrequests": 50},
        "price": "0.0015",
        "priceAtomic": "1500",
        "pricePer1kRows": None,
        "pricePer1kRowsAtomic": None,
        "payTo": "0x" + "ab" * 20,
        "hosts": ["api.acme.com", "data.acme.com"],
        "controls": {
            "rate": {"limit": 1000, "window": 1, "text": "1000/s"},  # pro's default
            "policyHeader": '"rate";q=1000;w=1',
            "quotaDay": None,
            "quotaMonth": None,
            "spendCapDay": None,
            "priceAtomic": 1500,
            "books": False,
        },
    }
    assert maps["bySlug"]["beta"]["limits"]["cpuMs"] == 75  # override wins over the plan

    flat = export_directory(tenants, "registry")
    assert flat == {"tenants": [maps["bySlug"]["acme"], maps["bySlug"]["beta"]]}


def test_controls_are_the_gateway_policy(registry):
    """What the edge's limits step reads is `limits.policy.policy_for`, not a copy of it."""
    controls = Controls(rate="12/m", quota_day=5, quota_month=90, spend_cap_day=20_000)
    add_tenant(registry, "capped", price_atomic=2500, controls=controls)
    add_tenant(registry, "held", plan="quarantine", controls=Controls(rate="500/s"))
    (capped, held) = registry.list_tenants()
    entries = export_directory([capped, held])["bySlug"]
    policy = policy_for(capped)
    assert entries["capped"]["controls"] == {
        "rate": {"limit": 12, "window": 60, "text": "12/m"},
        "policyHeader": policy.policy_header.decode(),
        "quotaDay": 5,
        "quotaMonth": 90,
        "spendCapDay": 20_000,
        "priceAtomic": 2500,
        "books": True,
    }
    assert policy.policy_header == b'"rate";q=12;w=60'
    # the quarantine plan's rate holds whatever --rate says
    assert entries["held"]["controls"]["rate"] == {
        "limit": PLAN_RATES["quarantine"].limit,
        "window": 1,
        "text": "1/s",
    }


def test_empty_registry(registry):
    assert export_directory([]) == {"byHost": {}, "bySlug": {}}
    assert export_directory([], "registry") == {"tenants": []}


def test_cli_prints_or_writes(registry, settings, tmp_path):
    add_tenant(registry, "acme", hosts=("api.acme.com",))
    runner = CliRunner()
    printed = runner.invoke(app, ["export-tenant-directory", "--home", str(settings.home)])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output)["byHost"]["api.acme.com"]["slug"] == "acme"

    out = tmp_path / "dir" / "directory.json"
    written = runner.invoke(
        app,
        [
            "export-tenant-directory",
            "--home",
            str(settings.home),
            "--format",
            "registry",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert written.exit_code == 0, written.output
    assert json.loads(written.output) == {
        "ok": True,
        "path": str(out),
        "format": "registry",
        "tenants": 1,
    }
    assert json.loads(out.read_text())["tenants"][0]["slug"] == "acme"

    bad = runner.invoke(
        app, ["export-tenant-directory", "--home", str(settings.home), "--format", "yaml"]
    )
    assert bad.exit_code != 0


def test_by_host_holds_only_routable_hosts(registry):
    """A creator's unverified host must not reach the edge's `byHost`: it would route there
    before anyone proved the creator controls it."""
    from claw402.registry.models import HOST_APPROVED, HOST_UNVERIFIED

    add_tenant(registry, "acme", hosts=("api.acme.com",), host_status=HOST_UNVERIFIED)
    add_tenant(registry, "ops", hosts=("ops.example.com",))  # the operator's, before keys
    maps = export_directory(registry.list_tenants())
    assert list(maps["byHost"]) == ["ops.example.com"]
    assert maps["bySlug"]["acme"]["hosts"] == []
    assert export_directory(registry.list_tenants(), "registry")["tenants"][0]["hosts"] == []

    (claim,) = registry.host_claims(host="api.acme.com")
    with registry.engine.begin() as conn:
        assert registry.mark_host(conn, claim, HOST_APPROVED)
    maps = export_directory(registry.list_tenants())
    assert list(maps["byHost"]) == ["api.acme.com", "ops.example.com"]
    assert maps["byHost"]["api.acme.com"]["slug"] == "acme"
