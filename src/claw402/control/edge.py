"""Who may see and change the edge (Cloudflare Workers for Platforms), and what is audited.

Each function is one control-plane operation: it authorises the actor behind an API key,
acts through `claw402.cloudflare`, and audits what was executed, so any front door (the CLI
today) only parses and prints. The rules:

- the tenant directory and the built Workers hold every tenant's pay-to, hosts and prices:
  any key may export or build, but only an admin's (or the single operator's, before keys
  exist) covers every tenant; a creator's covers their own tenants;
- a dry run (a plan) needs any valid key, plus ownership for a tenant's Worker; executing
  needs `deploy` (and ownership), and a dispatcher rollback `admin`, since the restored
  directory routes every tenant;
- every executed upload is audited (what and where, never a secret's value).

`up` and `status`, which cover the whole edge at once, are in `claw402.control.edge_up`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from claw402.control import audit
from claw402.control.authz import Actor, authorize, readable
from claw402.control.errors import ControlError
from claw402.control.keys import ADMIN, DEPLOY, READ
from claw402.control.tenants import tenant_for

if TYPE_CHECKING:
    from claw402.cloudflare.api import Target
    from claw402.cloudflare.build import BuildResult
    from claw402.cloudflare.history import History
    from claw402.cloudflare.plans import DeployPlan
    from claw402.config import Settings
    from claw402.registry.models import Tenant
    from claw402.registry.store import Registry


@dataclass(frozen=True, slots=True)
class Upload:
    """A dry run's `plan`, or an executed upload's history `entry` (recorded in `history`)."""

    plan: DeployPlan | None
    entry: dict[str, Any] | None
    history: Path


@dataclass(frozen=True, slots=True)
class Publish:
    """Where `deploy --publish` uploads the tenant's Worker and the dispatcher, and whether
    it really does (else it returns the two plans)."""

    target: Target
    execute: bool = False


def target(account_id: str | None, api_token: str | None, namespace: str) -> Target:
    """Where uploads go; without an account id a plan names a placeholder."""
    from claw402.cloudflare.api import Target
    from claw402.cloudflare.plans import ACCOUNT_PLACEHOLDER

    return Target(
        account_id=account_id or ACCOUNT_PLACEHOLDER,
        dispatch_namespace=namespace,
        api_token=api_token,
    )


def visible_tenants(registry: Registry, secret: str | None) -> list[Tenant]:
    """The tenants the key may see at the edge: all for an admin, else the creator's own."""
    actor = authorize(registry.engine, secret, READ)
    return readable(actor, registry.list_tenants())


def directory(registry: Registry, secret: str | None, shape: str = "maps") -> dict[str, Any]:
    """The tenant directory the dispatch Worker routes with, of the tenants the key may see."""
    from claw402.cloudflare.directory import export_directory

    return export_directory(visible_tenants(registry, secret), shape)  # type: ignore[arg-type]


def build(
    registry: Registry,
    secret: str | None,
    out: Path,
    *,
    dispatch_namespace: str,
    events_url: str | None = None,
    workers_plan: str = "paid",
    directory_format: str = "maps",
    r2_bucket: str | None = None,
) -> BuildResult:
    """Write the dispatcher and a Worker per visible tenant into `out` (see cloudflare.build)."""
    from claw402.cloudflare.build import build_all
    from claw402.cloudflare.directory import FORMATS
    from claw402.cloudflare.dispatcher import DispatcherOptions
    from claw402.cloudflare.sizes import ScriptTooLarge
    from claw402.payments.config import PaymentConfigError, payment_config_from_env

    tenants = visible_tenants(registry, secret)
    try:
        if directory_format not in FORMATS:
            raise ValueError(
                f"unknown directory format {directory_format!r}: choose {' or '.join(FORMATS)}"
            )
        options = DispatcherOptions(
            dispatch_namespace=dispatch_namespace,
            events_url=events_url,
            payment=payment_config_from_env(),
            directory_format=directory_format,
        )  # type: ignore[arg-type]
        return build_all(tenants, out, options, workers_plan=workers_plan, r2_bucket=r2_bucket)
    except (ScriptTooLarge, PaymentConfigError, ValueError) as exc:
        raise ControlError(str(exc), code="build_failed") from None


def _scope(execute: bool, scope: str = DEPLOY) -> str:
    """What an upload needs: `scope` to act, any valid key (`read`) to plan."""
    return scope if execute else READ


def audit_upload(
    registry: Registry, actor: Actor, entry: dict[str, Any], tenant_id: str | None = None
) -> None:
    """Audit an executed upload (what and where, never a secret's value)."""
    rollback = entry.get("action") == "rollback"
    details = {
        "deployId": entry["id"],
        "kind": entry["kind"],
        "rollbackOf": entry.get("rollbackOf"),
        "accountId": entry.get("accountId"),
        "dispatchNamespace": entry.get("dispatchNamespace"),
        "sizeBytes": entry.get("size", {}).get("bytes"),
        "secrets": entry.get("secrets", []),
    }
    audit.record(
        registry.engine,
        actor.label,
        "cloudflare.rolled_back" if rollback else "cloudflare.deployed",
        tenant_id=tenant_id,
        subject=f"worker:{entry['scriptName']}",
        details=details,
    )


def _upload(
    registry: Registry,
    history: History,
    plan_fn: Callable[[], DeployPlan],
    execute: bool,
    actor: Actor,
    tenant_id: str | None = None,
) -> Upload:
    """Build the plan; return it (dry run), or execute it and audit the upload."""
    from claw402.cloudflare.api import CloudflareApiError
    from claw402.cloudflare.deploy import execute as run_plan
    from claw402.cloudflare.history import HistoryError
    from claw402.cloudflare.plans import DeployError
    from claw402.cloudflare.sizes import ScriptTooLarge

    try:
        plan = plan_fn()
        if not execute:
            return Upload(plan, None, history.path)
        entry = run_plan(plan, history)
    except (DeployError, HistoryError, ScriptTooLarge, ValueError) as exc:
        raise ControlError(str(exc), code="deploy_refused") from None
    except CloudflareApiError as exc:
        raise ControlError(
            f"{exc} (recorded in {history.path})", code="cloudflare_api_error"
        ) from None
    audit_upload(registry, actor, entry, tenant_id)
    return Upload(None, entry, history.path)


def deploy_dispatcher(
    registry: Registry,
    settings: Settings,
    secret: str | None,
    to: Target,
    *,
    script_name: str,
    events_url: str | None = None,
    secrets: Sequence[str] = (),
    workers_plan: str = "paid",
    execute: bool = False,
    directory_format: str = "maps",
) -> Upload:
    """Upload the dispatch Worker with the current tenant directory (a plan unless `execute`);
    the edge paywall takes the gateway's payment settings from the environment."""
    from claw402.cloudflare.dispatcher import DispatcherOptions
    from claw402.cloudflare.history import History
    from claw402.cloudflare.plans import plan_dispatcher
    from claw402.payments.config import payment_config_from_env

    actor = authorize(registry.engine, secret, _scope(execute))

    def plan() -> DeployPlan:
        options = DispatcherOptions(
            script_name=script_name,
            dispatch_namespace=to.dispatch_namespace,
            events_url=events_url,
            payment=payment_config_from_env(),
            secrets=tuple(secrets),
            directory_format=directory_format,
        )  # type: ignore[arg-type]
        return plan_dispatcher(registry, to, options, workers_plan=workers_plan)

    return _upload(registry, History(settings.home), plan, execute, actor)


def deploy_tenant(
    registry: Registry,
    settings: Settings,
    secret: str | None,
    slug: str,
    to: Target,
    *,
    script_name: str | None = None,
    secrets: Sequence[str] = (),
    workers_plan: str = "paid",
    execute: bool = False,
    r2_bucket: str | None = None,
) -> Upload:
    """Upload one tenant's Worker (its owner's or an admin's key; a plan unless `execute`)."""
    from claw402.cloudflare.history import History
    from claw402.cloudflare.plans import plan_tenant

    tenant, actor = tenant_for(registry, secret, slug, _scope(execute))
    return _upload(
        registry,
        History(settings.home),
        lambda: plan_tenant(
            registry,
            slug,
            to,
            script_name=script_name,
            secrets=tuple(secrets),
            workers_plan=workers_plan,
            r2_bucket=r2_bucket,
        ),
        execute,
        actor,
        tenant.tenant_id,
    )


def rollback_dispatcher(
    registry: Registry,
    settings: Settings,
    secret: str | None,
    to: Target,
    *,
    script_name: str,
    entry_id: str | None = None,
    secrets: Sequence[str] = (),
    workers_plan: str = "paid",
    execute: bool = False,
) -> Upload:
    """Re-upload an earlier dispatch Worker from the history (`admin` to execute)."""
    from claw402.cloudflare.history import History
    from claw402.cloudflare.plans import plan_rollback

    actor = authorize(registry.engine, secret, _scope(execute, ADMIN))
    history = History(settings.home)
    return _upload(
        registry,
        history,
        lambda: plan_rollback(
            history, to, script_name, to=entry_id, secrets=tuple(secrets), workers_plan=workers_plan
        ),
        execute,
        actor,
    )


def rollback_tenant(
    registry: Registry,
    settings: Settings,
    secret: str | None,
    slug: str,
    to: Target,
    *,
    entry_id: str | None = None,
    secrets: Sequence[str] = (),
    workers_plan: str = "paid",
    execute: bool = False,
) -> Upload:
    """Re-upload an earlier copy of one tenant's Worker (its owner's `deploy` key or an
    admin's): it serves only that tenant, unlike the dispatcher's directory."""
    from claw402.cloudflare.history import History
    from claw402.cloudflare.plans import plan_rollback

    tenant, actor = tenant_for(registry, secret, slug, _scope(execute))
    history = History(settings.home)
    return _upload(
        registry,
        history,
        lambda: plan_rollback(
            history,
            to,
            tenant.worker_name,
            kind="tenant",
            to=entry_id,
            secrets=tuple(secrets),
            workers_plan=workers_plan,
            details={"tenant": {"slug": tenant.slug, "tenantId": tenant.tenant_id}},
        ),
        execute,
        actor,
        tenant.tenant_id,
    )


def publish(
    registry: Registry, settings: Settings, actor: Actor, tenant: Tenant, where: Publish
) -> list[dict[str, Any]]:
    """The edge half of `deploy --publish`, for an actor already allowed to deploy `tenant`:
    the tenant's Worker, then the dispatcher; both plans are built (and sizes checked) before
    anything is uploaded, and each upload is audited as it succeeds."""
    from claw402.cloudflare.api import CloudflareApiError
    from claw402.cloudflare.deploy import publish_tenant
    from claw402.cloudflare.history import History, HistoryError
    from claw402.cloudflare.plans import DeployError
    from claw402.cloudflare.sizes import ScriptTooLarge

    history = History(settings.home)

    def audited(entry: dict[str, Any]) -> None:
        tenant_id = tenant.tenant_id if entry["kind"] != "dispatcher" else None
        audit_upload(registry, actor, entry, tenant_id)

    deployed = f"{tenant.slug} is deployed, but publishing it failed"
    try:
        return publish_tenant(
            registry,
            history,
            tenant.slug,
            where.target,
            execute_plan=where.execute,
            on_upload=audited,
        )
    except (DeployError, HistoryError, ScriptTooLarge, ValueError) as exc:
        raise ControlError(f"{deployed}: {exc}", code="publish_refused") from None
    except CloudflareApiError as exc:
        raise ControlError(
            f"{deployed}: {exc} (recorded in {history.path})", code="cloudflare_api_error"
        ) from None
