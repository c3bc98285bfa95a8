"""`quarantine` / `unquarantine`: an admin puts a tenant on the quarantine plan at once (the
plan's smallest limits and rate) and back to the plan it had, audited in the same
transaction. Every gateway sharing the registry sees the change at its next generation check,
and at once with Redis (`claw402.limits.notify`); the edge gets it on the next publish."""

from __future__ import annotations

from dataclasses import dataclass

from claw402.control import audit
from claw402.control.authz import authorize
from claw402.control.errors import ControlError
from claw402.control.keys import ADMIN
from claw402.registry.models import Tenant
from claw402.registry.store import Registry, RegistryError


@dataclass(frozen=True)
class QuarantineChange:
    tenant: Tenant
    changed: bool  # False: it already was (or was not) quarantined


def quarantine(
    registry: Registry, secret: str | None, slug: str, *, on: bool = True
) -> QuarantineChange:
    actor = authorize(registry.engine, secret, ADMIN)
    try:
        with registry.engine.begin() as conn:
            moved = Registry.set_quarantine(conn, slug, on)
            if moved is not None:
                tenant_id, before, after = moved
                audit.append(conn, actor.label,
                             "tenant.quarantined" if on else "tenant.unquarantined",
                             tenant_id=tenant_id, subject=f"tenant:{slug}",
                             details={"from": before, "to": after})  # fmt: skip
    except RegistryError as exc:
        raise ControlError(str(exc), code="tenant_not_found") from None
    tenant = registry.get(slug)
    assert tenant is not None
    if moved is not None:
        from claw402.limits.notify import announce

        announce(f"tenant:{slug}")
    return QuarantineChange(tenant, moved is not None)


def unquarantine(registry: Registry, secret: str | None, slug: str) -> QuarantineChange:
    return quarantine(registry, secret, slug, on=False)
