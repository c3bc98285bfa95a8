"""`quarantine` / `unquarantine` through `claw402.control` (no CLI) on both backends: admin
only, audited in the same transaction, the plan restored, a creator cannot deploy their way
out; a running gateway applies the quarantine plan's rate within a second."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from gwlimits import open_gateway

from claw402.config import Settings
from claw402.control import access, audit, tenants
from claw402.control.errors import ControlError
from claw402.control.quarantine import quarantine, unquarantine
from claw402.limits.counters import MemoryCounters
from claw402.limits.limiter import Limiter
from claw402.registry.deploy import DeployRequest
from claw402.registry.store import Registry
from claw402.samples import CITIES


def test_quarantine_is_an_audited_admin_switch(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLAW402_API_KEY", raising=False)
    settings = Settings(home=tmp_path / "home", database_url=database_url)
    registry = Registry.open(settings)
    engine = registry.engine
    try:
        access.create_user(engine, None, "root")
        admin = access.create_key(engine, None, "root", ["admin"]).secret
        access.create_user(engine, admin, "alice")
        alice = access.create_key(engine, admin, "alice", ["deploy"]).secret
        request = DeployRequest(source=CITIES, slug="acme", price="0.01", plan="pro")
        tenants.deploy(registry, settings, alice, request)
        with pytest.raises(ControlError) as caught:
            quarantine(registry, alice, "acme")  # the owner is no admin
        assert caught.value.code == "missing_scope"
        with pytest.raises(ControlError) as caught:
            quarantine(registry, admin, "nope")
        assert caught.value.code == "tenant_not_found"
        generation = registry.generation()
        done = quarantine(registry, admin, "acme")
        assert done.changed and done.tenant.plan == "quarantine"
        assert done.tenant.controls.plan_before_quarantine == "pro"
        assert registry.generation() > generation  # every gateway's directory moves
        assert not quarantine(registry, admin, "acme").changed  # nothing twice, nor audited
        with pytest.raises(ControlError, match="quarantined"):  # no deploying out of it
            tenants.deploy(registry, settings, alice,
                           DeployRequest(source=CITIES, slug="acme", plan="business"))  # fmt: skip
        again = tenants.deploy(registry, settings, alice, DeployRequest(source=CITIES, slug="acme"))
        assert again.tenant.plan == "quarantine"  # a re-deploy naming no plan keeps it
        back = unquarantine(registry, admin, "acme")
        assert back.changed and back.tenant.plan == "pro"
        assert back.tenant.controls.plan_before_quarantine is None
        found = [(e.action, e.details) for e in audit.entries(engine, limit=100)
                 if e.action.startswith("tenant.") and "quarantined" in e.action]  # fmt: skip
        assert sorted(found, key=lambda f: f[0]) == [
            ("tenant.quarantined", {"from": "pro", "to": "quarantine"}),
            ("tenant.unquarantined", {"from": "quarantine", "to": "pro"}),
        ]
        assert audit.verify(engine).ok
    finally:
        registry.close()


def test_a_running_gateway_applies_the_quarantine_within_a_second(tmp_path: Path) -> None:
    with open_gateway(tmp_path) as (settings, registry, gateway, client):
        # A clock that stands still: the 1/s window cannot roll over on a slow machine.
        gateway.limiter = Limiter(MemoryCounters(clock=lambda: 1000.5), None)
        tenants.deploy(registry, settings, None,
                       DeployRequest(source=CITIES, slug="acme", price="0"))  # fmt: skip
        assert [client.get("/t/acme/v1/schema").status_code for _ in range(3)] == [200] * 3
        quarantine(registry, None, "acme")
        answer = _policy_within_a_second(client, '"rate";q=1;w=1')
        # This caller already made 3 calls this second: over the quarantine plan's 1/s at once.
        assert answer.status_code == 429
        unquarantine(registry, None, "acme")
        _policy_within_a_second(client, '"rate";q=300;w=1')


def _policy_within_a_second(client: httpx.Client, policy: str) -> httpx.Response:
    """The first answer with `policy`: the directory checks the generation every 10 ms."""
    changed = time.monotonic()
    while (answer := client.get("/t/acme/v1/schema")).headers["ratelimit-policy"] != policy:
        assert time.monotonic() - changed < 1, f"still not {policy} after a second"
    return answer
