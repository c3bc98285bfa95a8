"""Authorise and audit tenant changes (deploy, re-deploy, remove) around the registry.

The registry stays pure: the CLI asks `begin_change` before it deploys or removes (scope
`deploy`, and ownership of an existing tenant), then reports the outcome, which becomes audit
entries: one for the deploy or removal, and one each for a changed plan, price or pay-to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from claw402.control import audit
from claw402.control.authz import Actor, authorize, require_owner
from claw402.control.keys import DEPLOY
from claw402.registry.models import Tenant

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
