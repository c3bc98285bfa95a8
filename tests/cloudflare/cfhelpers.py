"""Helpers for the edge tests: a registry in a temp home, tenants written straight into it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer

from claw402.cloudflare.bundle import Module, WorkerBundle
from claw402.config import Settings
from claw402.registry.models import Tenant
from claw402.registry.store import NewVersion, Registry, TenantSpec


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'registry.sqlite3'}")


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    registry = Registry.open(settings)
    yield registry
    registry.close()


def add_tenant(registry: Registry, slug: str, **fields: object) -> Tenant:
    """A routable tenant without ingesting data (enough for directory and dispatcher tests)."""
    spec = TenantSpec(
        slug=slug,
        worker_name=str(fields.pop("worker_name", f"tenant-{slug}-worker")),
        plan=str(fields.pop("plan", "free")),
        price_atomic=int(fields.pop("price_atomic", 0)),  # type: ignore[call-overload]
        **fields,  # type: ignore[arg-type]
    )
    columns = [{"name": "id", "type": "BIGINT"}]
    version = NewVersion("/dev/null", "csv", 0, 0, columns, None, "/dev/null")
    return registry.deploy(spec, version)


def cli_app() -> typer.Typer:
    """The Cloudflare commands on their own app (independent of what else `402claw` loads)."""
    from claw402.cli.cloudflare import register

    app = typer.Typer(pretty_exceptions_enable=False)
    app.callback()(lambda: None)
    register(app)
    return app


def make_tenant(
    slug: str,
    *,
    plan: str = "free",
    hosts: tuple[str, ...] = (),
    price_atomic: int = 0,
    cpu_ms: int | None = None,
    sub_requests: int | None = None,
) -> Tenant:
    """A Tenant record as the registry returns it, for tests that need no database."""
    now = datetime.now(UTC)
    return Tenant(
        tenant_id=f"tnt_{slug.replace('-', '')}",
        slug=slug,
        worker_name=f"tenant-{slug}-worker",
        owner=None,
        plan=plan,
        price_atomic=price_atomic,
        pay_to=None,
        cpu_ms=cpu_ms,
        sub_requests=sub_requests,
        name=None,
        description=None,
        created_at=now,
        updated_at=now,
        hosts=hosts,
    )


def js_worker(script_name: str, source: str) -> WorkerBundle:
    """A one-module user Worker written by a test (to make a tenant throw, echo, ...)."""
    return WorkerBundle(
        script_name, (Module("worker.js", source.encode()),), {"main_module": "worker.js"}
    )


def wait_for(fetch: Callable[[], list[Any]], count: int, timeout: float = 5.0) -> list[Any]:
    """Poll until `fetch()` holds at least `count` items (events are sent after the answer)."""
    deadline = time.monotonic() + timeout
    while True:
        items = fetch()
        if len(items) >= count or time.monotonic() > deadline:
            return items
        time.sleep(0.02)
