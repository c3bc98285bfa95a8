"""Helpers for the edge tests: a registry in a temp home, tenants written straight into it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

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
