"""Tenant operations with their rules: who may deploy, remove and read a tenant, and the audit.

`deploy`, `remove`, `visible`, `show` and `events` each authorise the actor behind an API key
(scope `deploy` to change, `read` to see; ownership of an existing tenant), act through the
registry, and write the audit entries: one for the deploy or removal, one each for a changed
plan, price, price per 1k rows or pay-to, and one per custom host added (with the state it
starts in: see `TenantChange.host_status`); a host refused is audited too, with nothing else
written.
`deploy` with `publish` also uploads the tenant to the edge (`control.edge.publish`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from claw402.control import audit
from claw402.control.authz import Actor, authorize, event_tenants, readable, require_owner
from claw402.control.errors import ControlError
from claw402.control.keys import DEPLOY, READ
from claw402.events.store import EventStore
from claw402.limits.notify import announce
from claw402.registry.models import HOST_APPROVED, HOST_OPEN, HOST_UNVERIFIED, Tenant

if TYPE_CHECKING:
    from claw402.config import Settings
    from claw402.control.edge import Publish
    from claw402.registry.deploy import DeployRequest
    from claw402.registry.store import Registry

_WATCHED = (
    ("plan", "plan"),
    ("price_atomic", "price"),
    ("price_per_1k_rows_atomic", "price_per_1k_rows"),
    ("pay_to", "pay_to"),
)


@dataclass(frozen=True)
class TenantChange:
    engine: Engine
    actor: Actor
    slug: str
    before: Tenant | None

    @property
    def owner(self) -> str | None:
        """The owner to deploy with: kept for an existing tenant, the actor's user if new."""
        return self.before.owner if self.before else self.actor.user

    @property
    def host_status(self) -> str:
        """What a host this deploy adds starts as: routable at once for the single operator
        (no keys yet) or an admin; `unverified` for a creator, until proven or approved."""
        if self.actor.key_id is None:
            return HOST_OPEN
        return HOST_APPROVED if self.actor.is_admin else HOST_UNVERIFIED

    def deployed(self, after: Tenant) -> None:
        with self.engine.begin() as conn:
            subject = f"tenant:{after.slug}"
            audit.append(
                conn,
                self.actor.label,
                "tenant.deployed",
                tenant_id=after.tenant_id,
                subject=subject,
                details=_deploy_details(after, self.before is None),
            )
            states = dict(after.host_status)
            for host in sorted(set(after.hosts) - set(self.before.hosts if self.before else ())):
                audit.append(
                    conn,
                    self.actor.label,
                    "host.claimed",
                    tenant_id=after.tenant_id,
                    subject=f"host:{host}",
                    details={"tenant": after.slug, "status": states.get(host)},
                )
            if self.before is None:
                return
            for attr, name in _WATCHED:
                old, new = getattr(self.before, attr), getattr(after, attr)
                if old != new:
                    audit.append(
                        conn,
                        self.actor.label,
                        f"tenant.{name}_changed",
                        tenant_id=after.tenant_id,
                        subject=subject,
                        details={"from": old, "to": new},
                    )

    def removed(self, tenant: Tenant) -> None:
        audit.record(
            self.engine,
            self.actor.label,
            "tenant.removed",
            tenant_id=tenant.tenant_id,
            subject=f"tenant:{tenant.slug}",
            details={"owner": tenant.owner, "plan": tenant.plan, "price": tenant.price_atomic},
        )


def _deploy_details(tenant: Tenant, created: bool) -> dict[str, Any]:
    ds = tenant.dataset
    return {
        "created": created,
        "owner": tenant.owner,
        "plan": tenant.plan,
        "price": tenant.price_atomic,
        "pricePer1kRows": tenant.price_per_1k_rows_atomic,
        "payTo": tenant.pay_to,
        "version": ds.version if ds else None,
        "rows": ds.rows if ds else None,
    }


def begin_change(
    engine: Engine, secret: str | None, slug: str, before: Tenant | None
) -> TenantChange:
    """Authorise a change to `slug` (`before` is the tenant now, None if new) or raise."""
    actor = authorize(engine, secret, DEPLOY)
    if before is not None:
        require_owner(actor, before.owner, slug)
    return TenantChange(engine, actor, slug, before)


def tenant_for(
    registry: Registry, secret: str | None, slug: str, scope: str = READ
) -> tuple[Tenant, Actor]:
    """The tenant `slug` and the actor, if the key has `scope` and may act on that tenant."""
    actor = authorize(registry.engine, secret, scope)
    tenant = registry.get(slug)
    if tenant is None:
        raise ControlError(f"tenant {slug!r} not found", code="tenant_not_found")
    require_owner(actor, tenant.owner, slug)
    return tenant, actor


def visible(registry: Registry, secret: str | None) -> list[Tenant]:
    """`list`: a creator's own tenants, or every tenant for an admin."""
    return readable(authorize(registry.engine, secret, READ), registry.list_tenants())


def show(registry: Registry, secret: str | None, slug: str) -> Tenant:
    """`show`: one tenant its owner (or an admin) may read."""
    return tenant_for(registry, secret, slug)[0]


def events(
    registry: Registry,
    secret: str | None,
    *,
    slug: str | None = None,
    kind: str | None = None,
    request_id: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Lifecycle events the key may read: one tenant's, else every tenant's for an admin
    (tenantless ones too) and a creator's own tenants' otherwise."""
    tenant_ids: list[str] | None
    if slug is not None:
        tenant_ids = [tenant_for(registry, secret, slug)[0].tenant_id]
    else:
        actor = authorize(registry.engine, secret, READ)
        tenant_ids = event_tenants(actor, registry.list_tenants())
    return EventStore(registry.engine).read_events(
        tenant_id=tenant_ids, kind=kind, request_id=request_id, limit=limit
    )


@dataclass(frozen=True)
class Deployed:
    tenant: Tenant
    published: list[dict[str, Any]] | None = None  # the edge plans, or the uploads made


def deploy(
    registry: Registry,
    settings: Settings,
    secret: str | None,
    request: DeployRequest,
    *,
    progress: Callable[[int, int], None] | None = None,
    publish: Publish | None = None,
) -> Deployed:
    """Create or update `request.slug` as the key's user (a new tenant is theirs; an existing
    one must be), audit it, then with `publish` upload it to the edge. A refused host or a
    file that cannot be ingested raises `ControlError` with nothing deployed."""
    from claw402.datasets.ingest import IngestError
    from claw402.registry.deploy import HostRefused
    from claw402.registry.deploy import deploy as deploy_version
    from claw402.registry.store import RegistryError

    change = begin_change(registry.engine, secret, request.slug, registry.get(request.slug))
    request = replace(request, owner=change.owner, host_status=change.host_status)
    try:
        after = deploy_version(registry, settings, request, progress=progress)
    except HostRefused as exc:
        from claw402.control.hosts import refused

        refused(registry.engine, change.actor, request.slug, [exc.host], str(exc))
        raise ControlError(str(exc), code="host_refused") from None
    except (RegistryError, IngestError) as exc:
        raise ControlError(str(exc), code="deploy_failed") from None
    change.deployed(after)
    announce(f"tenant:{after.slug}")  # every replica reloads now (Redis), not at its next check
    if publish is None:
        return Deployed(after)
    from claw402.control.edge import publish as publish_edge

    return Deployed(after, publish_edge(registry, settings, change.actor, after, publish))


def remove(registry: Registry, settings: Settings, secret: str | None, slug: str) -> Tenant:
    """Remove `slug` and its data (its owner or an admin), audited."""
    from claw402.registry.deploy import remove as remove_tenant
    from claw402.registry.store import RegistryError

    change = begin_change(registry.engine, secret, slug, registry.get(slug))
    try:
        tenant = remove_tenant(registry, settings, slug)
    except RegistryError as exc:
        raise ControlError(str(exc), code="tenant_not_found") from None
    change.removed(tenant)
    announce(f"tenant:{slug}")
    return tenant
