"""Who may bring the whole edge to what the registry wants (`up`) or read its drift
(`status`), and what is audited.

Both cover every tenant and the dispatcher, so both need an `admin` key (once keys exist);
both read the live state first, so both need the account and the token even for a dry run.
Each executed upload is audited as `claw402.control.edge` audits one, and each other change
(namespace, route, workers.dev, custom hostname) as `cloudflare.configured`. The edge itself
(`wanted`, `observe`, `apply`) lives in `claw402.cloudflare.up`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from claw402.control import audit
from claw402.control.authz import authorize
from claw402.control.edge import audit_upload
from claw402.control.errors import ControlError
from claw402.control.keys import ADMIN

if TYPE_CHECKING:
    from claw402.cloudflare.api import Target
    from claw402.cloudflare.history import History
    from claw402.cloudflare.up import Item, UpOptions
    from claw402.config import Settings
    from claw402.registry.store import Registry


@dataclass(frozen=True, slots=True)
class UpReport:
    """`up`'s items (what is live, what it did or would do) and whether it executed."""

    items: list[dict[str, Any]]
    executed: bool
    changed: int
    history: Path


def _edge_state(
    registry: Registry, settings: Settings, to: Target, options: UpOptions
) -> tuple[History, list[Item]]:
    from claw402.cloudflare.history import History
    from claw402.cloudflare.up import observe, wanted

    history = History(settings.home)
    return history, observe(history, to, wanted(registry, to, options), options)


def up(
    registry: Registry,
    settings: Settings,
    secret: str | None,
    to: Target,
    options: UpOptions,
    *,
    execute: bool = False,
) -> UpReport:
    """Bring the edge to what the registry wants (`admin`: it covers every tenant and the
    dispatcher); a dry run reads the live state and lists the calls it would make."""
    from claw402.cloudflare.api import CloudflareApiError
    from claw402.cloudflare.history import HistoryError
    from claw402.cloudflare.plans import DeployError
    from claw402.cloudflare.sizes import ScriptTooLarge
    from claw402.cloudflare.up import UpRefused, apply, refusals

    actor = authorize(registry.engine, secret, ADMIN)

    def changed(item: Item, entry: dict[str, Any] | None) -> None:
        if entry is not None:
            tenant = entry.get("tenant") or {}
            audit_upload(registry, actor, entry, tenant.get("tenantId"))
            return
        audit.record(
            registry.engine,
            actor.label,
            "cloudflare.configured",
            subject=f"{item.kind}:{item.name}",
            details={
                "action": item.action,
                "accountId": to.account_id,
                "zoneId": options.zone_id,
                "was": item.live,
            },
        )

    history = None
    try:
        _checked(to)
        history, items = _edge_state(registry, settings, to, options)
        if not execute:
            if refusals(items):
                raise UpRefused("up would refuse: " + "; ".join(refusals(items)))
            return UpReport([i.to_json() for i in items], False, 0, history.path)
        done = apply(items, history, to, options, changed)
    except (DeployError, UpRefused, HistoryError, ScriptTooLarge, ValueError) as exc:
        raise ControlError(str(exc), code="up_refused") from None
    except CloudflareApiError as exc:
        where = f" (uploads are recorded in {history.path})" if history else ""
        raise ControlError(
            f"{exc}{where}; run `cloudflare up` again to finish", code="cloudflare_api_error"
        ) from None
    return UpReport([i.to_json() for i in items], True, len(done), history.path)


def status(
    registry: Registry, settings: Settings, secret: str | None, to: Target, options: UpOptions
) -> list[dict[str, Any]]:
    """What is live against what the registry wants (GETs only; `admin`, like `up`)."""
    from claw402.cloudflare.api import CloudflareApiError
    from claw402.cloudflare.plans import DeployError
    from claw402.cloudflare.sizes import ScriptTooLarge

    authorize(registry.engine, secret, ADMIN)
    try:
        _checked(to)
        return [i.to_json() for i in _edge_state(registry, settings, to, options)[1]]
    except (DeployError, ScriptTooLarge, ValueError) as exc:
        raise ControlError(str(exc), code="status_refused") from None
    except CloudflareApiError as exc:
        raise ControlError(str(exc), code="cloudflare_api_error") from None


def _checked(to: Target) -> None:
    """`up` and `status` read the live state first: they need the account and the token."""
    from claw402.cloudflare.plans import ACCOUNT_PLACEHOLDER, DeployError

    if to.account_id == ACCOUNT_PLACEHOLDER:
        raise DeployError(
            "an account id is required: pass --account-id or set CLOUDFLARE_ACCOUNT_ID"
        )
    try:
        to.token()
    except RuntimeError as exc:
        raise DeployError(f"{exc} (the live state is read before anything is planned)") from None
