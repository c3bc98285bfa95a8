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


def test_events_round_trip(registry):
    tenant = registry.deploy(_spec(), _version())
    registry.write_events(
        [
            {"type": "dispatch_start", "ts": 1.0, "requestId": "r1", "tenantId": tenant.tenant_id},
            {
                "type": "dispatch_success",
                "ts": 2.0,
                "requestId": "r1",
                "tenantId": tenant.tenant_id,
                "status": 200,
            },
            {"type": "dispatch_failure", "ts": 3.0, "requestId": "r2", "tenantId": None},
        ]
    )
    mine = registry.read_events(tenant_id=tenant.tenant_id)
    assert [e["type"] for e in mine] == ["dispatch_start", "dispatch_success"]
    assert mine[1]["status"] == 200
    assert [e["requestId"] for e in registry.read_events(limit=1)] == ["r2"]
    assert len(registry.read_events(kind="dispatch_failure")) == 1


def test_events_in_large_batches_keep_their_order_and_fields(registry):
    # SQLite gets multi-row INSERTs of 100: 250 events cross two chunk boundaries.
    batch = [
        {"type": "dispatch_start", "ts": float(i), "requestId": f"r{i}", "tenantId": "t1",
         "details": {"path": f"/v1/records/{i}"}}
        for i in range(250)
    ]  # fmt: skip
    registry.write_events(batch)
    stored = registry.read_events(limit=1000)
    assert [e["requestId"] for e in stored] == [f"r{i}" for i in range(250)]
    assert stored[137]["details"] == {"path": "/v1/records/137"}
    assert stored[249]["ts"] == 249.0


def test_an_event_reads_back_as_written_though_its_columns_are_not_stored_twice(registry):
    from claw402.dispatch.events import event
    from claw402.registry.schema import events

    tenant = registry.deploy(_spec(), _version())
    written = event("dispatch_start", "r1", tenant.route(), path="/v1/records")
    edge = {"type": "payment_settled", "ts": 5.0, "requestId": "r2", "tenantId": None,
            "source": "edge", "note": None}  # fmt: skip
    registry.write_events([written, edge])
    assert [{k: v for k, v in e.items() if k != "id"} for e in registry.read_events()] == [
        written,
        {**edge, "workerName": None, "limits": None, "status": None, "durationMs": None,
         "reason": None},
    ]  # fmt: skip
    with registry.engine.connect() as conn:
        data = conn.execute(events.select().order_by(events.c.id)).all()
    assert data[0].data == {"workerName": written["workerName"], "limits": written["limits"],
                            "details": {"path": "/v1/records"}}  # fmt: skip
    assert data[1].data == {"source": "edge", "note": None}  # a field of its own keeps its null


def test_events_stored_whole_by_an_earlier_release_read_back_the_same(registry):
    from claw402.registry.schema import events

    old = {
        "type": "dispatch_success", "ts": 2.0, "requestId": "r1", "tenantId": "t1",
        "workerName": "w", "limits": None, "status": 200, "durationMs": 1.5, "reason": None,
    }  # fmt: skip
    with registry.engine.begin() as conn:
        conn.execute(events.insert().values(ts=2.0, type="dispatch_success", request_id="r1",
                                            tenant_id="t1", data=old))  # fmt: skip
    (stored,) = registry.read_events()
    assert {k: v for k, v in stored.items() if k != "id"} == old
