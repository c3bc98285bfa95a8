"""The registry on both backends: writes are atomic, conflicts are refused, state is visible."""

import pytest

from claw402.registry.db import make_engine, migrate
from claw402.registry.store import NewVersion, Registry, RegistryError, TenantSpec


@pytest.fixture
def registry(database_url):
    engine = make_engine(database_url)
    migrate(engine)
    reg = Registry(engine)
    yield reg
    reg.close()


def _spec(slug="acme", **kw):
    base = dict(slug=slug, worker_name=f"tenant-{slug}-worker", plan="free", price_atomic=1000)
    base.update(kw)
    return TenantSpec(**base)


def _version(rows=3, path="/data/v.duckdb"):
    return NewVersion(
        source_path="/src/data.csv",
        format="csv",
        rows=rows,
        bytes=42,
        columns=[{"name": "id", "type": "integer"}],
        key="id",
        data_path=path,
    )


def test_migrate_is_idempotent(database_url):
    engine = make_engine(database_url)
    migrate(engine)
    migrate(engine)
    assert Registry(engine).generation() == 0


def test_create_then_redeploy_switches_version(registry):
    tenant = registry.deploy(_spec(hosts=("api.acme.com",)), _version(rows=3))
    assert tenant.dataset.version == 1 and tenant.dataset.rows == 3
    assert tenant.hosts == ("api.acme.com",)
    assert tenant.tenant_id.startswith("tnt_")
    gen = registry.generation()

    again = registry.deploy(_spec(price_atomic=2000, plan="pro"), _version(rows=5, path="/v2"))
    assert again.tenant_id == tenant.tenant_id
    assert again.dataset.version == 2 and again.dataset.rows == 5
    assert again.price_atomic == 2000 and again.limits.cpu_ms == 200
    assert again.hosts == ()
    assert registry.generation() > gen
    assert [v.version for v in registry.versions("acme")] == [1, 2]


def test_host_taken_by_another_tenant_changes_nothing(registry):
    registry.deploy(_spec("acme", hosts=("api.acme.com",)), _version())
    registry.deploy(_spec("beta"), _version())
    gen = registry.generation()
    with pytest.raises(RegistryError, match=r"api\.acme\.com"):
        registry.check_hosts("beta", ["api.acme.com"])
    with pytest.raises(RegistryError):
        registry.deploy(_spec("beta", hosts=("api.acme.com",), price_atomic=5), _version(rows=9))
    beta = registry.get("beta")
    assert beta.price_atomic == 1000 and beta.dataset.version == 1 and beta.hosts == ()
    assert registry.generation() == gen


def test_remove_and_prune(registry):
    for rows in (1, 2, 3):
        registry.deploy(_spec(), _version(rows=rows, path=f"/v{rows}"))
    pruned = registry.prune_versions("acme", 2)
    assert [v.version for v in pruned] == [1]
    assert [v.version for v in registry.versions("acme")] == [2, 3]
    removed = registry.remove("acme")
    assert removed.slug == "acme" and registry.get("acme") is None
    assert registry.list_tenants() == []
    with pytest.raises(RegistryError):
        registry.remove("acme")


def test_update_without_dataset_needs_existing_tenant(registry):
    with pytest.raises(RegistryError, match="does not exist"):
        registry.deploy(_spec("ghost"), None)
