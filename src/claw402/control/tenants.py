"""Authorise and audit tenant changes (deploy, re-deploy, remove) around the registry.

The registry stays pure: the CLI asks `begin_change` before it deploys or removes (scope
`deploy`, and ownership of an existing tenant), then reports the outcome, which becomes audit
entries: one for the deploy or removal, one each for a changed plan, price or pay-to, and one
per custom host added (with the state it starts in: see `host_status`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from claw402.control import audit
from claw402.control.authz import Actor, authorize, require_owner
from claw402.control.keys import DEPLOY
from claw402.registry.models import HOST_APPROVED, HOST_OPEN, HOST_UNVERIFIED, Tenant

_WATCHED = (("plan", "plan"), ("price_atomic", "price"), ("pay_to", "pay_to"))


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
