"""Plan, execute and record uploads of the dispatch Worker and of tenant Workers.

A plan is everything an upload would do (the API call, the script, its size, its bindings,
secrets by name), built without credentials: the CLI prints it as a dry run. `execute` makes
the call, then appends the outcome to the history (a failed call too, so the file tells what
happened; only succeeded uploads are ever rollback targets). Secret values are read from the
environment at execute time, sent inside the upload, and never stored.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from claw402.cloudflare import api
from claw402.cloudflare.bundle import WorkerBundle
from claw402.cloudflare.dispatcher import (
    MIGRATIONS,
    DispatcherOptions,
    MigrationBehind,
    UnknownMigrationTag,
    build_dispatcher,
    check_secret_names,
    migration_from,
    require_payments,
)
from claw402.cloudflare.history import History, new_id, redact
from claw402.cloudflare.sizes import ScriptSize, check_size
from claw402.payments.config import payment_config_from_env
from claw402.registry.models import Tenant
from claw402.registry.store import Registry

if TYPE_CHECKING:
    from claw402.cloudflare.storage import StoredData

Kind = Literal["dispatcher", "tenant"]
ACCOUNT_PLACEHOLDER = "<account-id>"


class DeployError(ValueError):
    """A deploy that cannot be planned or run as asked; nothing was uploaded."""


@dataclass(frozen=True)
class DeployPlan:
    kind: Kind
    target: api.Target
    bundle: WorkerBundle
    size: ScriptSize
    secrets: tuple[str, ...] = ()
    action: Literal["deploy", "rollback"] = "deploy"
    rollback_of: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # tenant / directory facts
    stored: StoredData | None = None  # a tenant's rows in R2, uploaded before its Worker

    @property
    def path(self) -> str:
        t = self.target
        if self.kind == "dispatcher":
            return api.dispatcher_path(t.account_id, self.bundle.script_name)
        return api.tenant_path(t.account_id, t.dispatch_namespace, self.bundle.script_name)

    @property
    def sdk_method(self) -> str:
        if self.kind == "dispatcher":
            return "client.workers.scripts.update"
        return "client.workers_for_platforms.dispatch.namespaces.scripts.update"

    def sent_metadata(self) -> dict[str, Any]:
        """The metadata part as it will be sent, secrets by name only."""
        return redact(api.upload_metadata(self.bundle, dict.fromkeys(self.secrets, "")))

    @property
    def migrates(self) -> bool:
        """A dispatcher's upload reads the live migration tag first (even an old copy without
        Durable Objects: it must not be sent over a script that has some)."""
        return self.kind == "dispatcher"

    def calls(self) -> list[dict[str, Any]]:
        put = {
            "method": "PUT",
            "url": self.target.api_base + self.path,
            "path": self.path,
            "sdk": self.sdk_method,
            "multipart": [
                {"name": "files", "filename": m.name, "contentType": m.content_type,
                 "bytes": len(m.content)}
                for m in self.bundle.modules
            ] + [{"name": "metadata", "contentType": "application/json"}],
            "metadata": self.sent_metadata(),
        }
        if self.stored is not None:
            path = api.object_path(self.target.account_id, self.stored.bucket, "<key>")
            objects = {"method": "PUT", "url": self.target.api_base + path, "path": path,
                       "sdk": "client.r2.buckets.objects.upload",
                       "objects": len(self.stored.objects), "bytes": self.stored.bytes,
                       "why": "the dataset's chunks, before the Worker that reads them"}
            return [objects, put]
        if not self.migrates:
            return [put]
        path = api.scripts_path(self.target.account_id)
        get = {"method": "GET", "url": self.target.api_base + path, "path": path,
               "sdk": "client.workers.scripts.list",
               "why": "read the script's Durable Object migration tag; the PUT carries "
                      "`migrations` only if it is not applied yet"}
        return [get, put]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "action": self.action,
            "rollbackOf": self.rollback_of,
            "scriptName": self.bundle.script_name,
            "accountId": self.target.account_id,
            "dispatchNamespace": self.target.dispatch_namespace,
            "calls": self.calls(),
            "size": self.size.to_json(),
            "bindings": [
                {k: v for k, v in b.items() if k != "text" or b["type"] == "plain_text"}
                for b in self.sent_metadata()["bindings"]
            ],
            "secrets": list(self.secrets),
            "timeoutSeconds": self.target.timeout,
            "maxRetries": self.target.max_retries,
            **self.details,
        }


def _payment_facts(options: DispatcherOptions) -> dict[str, Any] | None:
    p = options.payment
    if p is None:
        return None
    return {"network": p.network, "asset": p.asset, "facilitator": p.facilitator_url,
            "treasury": p.treasury, "environment": p.environment}


def without_applied_migration(plan: DeployPlan) -> DeployPlan:
    """The plan as it must be sent: the Durable Object `migrations` the live script still needs
    (`dispatcher.migration_from` its tag up to the bundle's): all of them for a new script, the
    steps after an older 402claw tag, none once it carries the bundle's. A bundle older than the
    live tag (a rollback past a migration) is refused before any upload."""
    if not plan.migrates:
        return plan
    name = plan.bundle.script_name
    built = plan.bundle.metadata.get("migrations")
    own = built["new_tag"] if built else None
    current = api.current_migration_tag(plan.target, name)
    known = [tag for tag, _ in MIGRATIONS]
    try:
        needed = migration_from(current, own)
    except UnknownMigrationTag as exc:
        raise DeployError(f"{name} carries Durable Object migration tag {current!r} (or this "
                          f"copy {own!r}), not one of {known!r}: it was deployed by something "
                          f"else ({exc})") from None  # fmt: skip
    except MigrationBehind:
        raise DeployError(f"{name} carries Durable Object migration tag {current!r}; this copy "
                          f"was built at {own!r} and lacks classes the script has (Cloudflare "
                          "refuses to drop them without a deletion migration): roll back to a "
                          f"copy built at {current!r}") from None  # fmt: skip
    if needed == built:
        return plan
    metadata = {k: v for k, v in plan.bundle.metadata.items() if k != "migrations"}
    if needed is not None:
        metadata["migrations"] = needed
    bundle = WorkerBundle(name, plan.bundle.modules, metadata)
    return replace(plan, bundle=bundle)


def read_secrets(names: Sequence[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    missing = [n for n in names if not env.get(n)]
    if missing:
        raise DeployError(f"secret(s) {', '.join(missing)} not set in the environment: export "
                          "them before deploying (their values are never stored)")
    return {n: env[n] for n in names}


def _checked_target(target: api.Target) -> None:
    if not target.account_id or target.account_id == ACCOUNT_PLACEHOLDER:
        raise DeployError("an account id is required: pass --account-id or set "
                          "CLOUDFLARE_ACCOUNT_ID")


# -- plans -----------------------------------------------------------------------------------


def plan_dispatcher(
    registry: Registry,
    target: api.Target,
    options: DispatcherOptions | None = None,
    *,
    workers_plan: str = "paid",
) -> DeployPlan:
    if options is None:  # what the CLI does: the gateway's payment settings, if any
        options = DispatcherOptions(dispatch_namespace=target.dispatch_namespace,
                                    payment=payment_config_from_env())
    if options.dispatch_namespace != target.dispatch_namespace:
        raise DeployError("the dispatcher's namespace binding must name the target namespace")
    tenants = registry.list_tenants()
    require_payments(tenants, options.payment)
    bundle = build_dispatcher(tenants, options)
    return DeployPlan(
        "dispatcher", target, bundle, check_size(bundle, workers_plan),
        secrets=tuple(options.all_secrets),
        details={"payments": _payment_facts(options), "directory": {"tenants": len(tenants),
                               "hosts": sum(len(t.hosts) for t in tenants)}},
    )


def plan_tenant(
    registry: Registry,
    slug: str,
    target: api.Target,
    *,
    script_name: str | None = None,
    secrets: Sequence[str] = (),
    workers_plan: str = "paid",
    build: Callable[[Tenant], WorkerBundle] | None = None,
    r2_bucket: str | None = None,
) -> DeployPlan:
    """One tenant's Worker; rows too large to embed go to `r2_bucket` (else it is refused)."""
    tenant = registry.get(slug)
    if tenant is None:
        raise DeployError(f"tenant {slug!r} not found")
    if script_name is not None and script_name != tenant.worker_name:
        raise DeployError(
            f"tenant {slug!r} is routed to the Worker {tenant.worker_name!r}; uploading it as "
            f"{script_name!r} would leave the dispatcher pointing elsewhere"
        )
    require_payments([tenant], payment_config_from_env())
    stored = None
    if build is None:
        from claw402.cloudflare.storage import edge_tenant

        bundle, stored = edge_tenant(tenant, r2_bucket)
    else:
        bundle = build(tenant)
    names = tuple(check_secret_names(secrets))
    if names:  # declared in the bundle so the Worker cannot run without them
        bindings = [*bundle.metadata.get("bindings", []),
                    *({"type": "secret_text", "name": n} for n in names)]
        bundle = WorkerBundle(bundle.script_name, bundle.modules,
                              {**bundle.metadata, "bindings": bindings})
    dataset = tenant.dataset
    return DeployPlan(
        "tenant", target, bundle, check_size(bundle, workers_plan), secrets=names,
        details={"tenant": {"slug": tenant.slug, "tenantId": tenant.tenant_id,
                            "datasetVersion": dataset.version if dataset else None,
                            "rows": dataset.rows if dataset else None,
                            "r2": ({"bucket": stored.bucket, "objects": len(stored.objects),
                                    "bytes": stored.bytes} if stored else None)}},
        stored=stored,
    )


def plan_rollback(
    history: History,
    target: api.Target,
    script_name: str,
    *,
    kind: Kind = "dispatcher",
    to: str | None = None,
    secrets: Sequence[str] = (),
    workers_plan: str = "paid",
    details: dict[str, Any] | None = None,
) -> DeployPlan:
    """Re-upload an earlier succeeded upload of the script (`to`, else the previous good one:
    see `History.rollback_target`)."""
    namespace = target.dispatch_namespace if kind == "tenant" else None
    entry = history.rollback_target(kind, script_name, target.account_id, to,
                                    namespace=namespace)
    bundle = history.bundle(entry)
    return DeployPlan(
        kind, target, bundle, check_size(bundle, workers_plan),
        secrets=tuple(check_secret_names(secrets)), action="rollback", rollback_of=entry["id"],
        details={**(details or {}), "restores": {"id": entry["id"], "at": entry["at"]}},
    )


# -- execution -------------------------------------------------------------------------------


def _entry(plan: DeployPlan) -> dict[str, Any]:
    return {
        "id": new_id(plan.kind),
        "kind": plan.kind,
        "action": plan.action,
        "rollbackOf": plan.rollback_of,
        "scriptName": plan.bundle.script_name,
        "accountId": plan.target.account_id,
        "dispatchNamespace": plan.target.dispatch_namespace,
        "apiBase": plan.target.api_base,
        "call": {"method": "PUT", "path": plan.path, "sdk": plan.sdk_method},
        "at": datetime.now(UTC).isoformat(),
        "bundle": {**plan.bundle.describe(), "metadata": plan.bundle.metadata},
        "digest": plan.bundle.content_digest,
        "metadata": plan.sent_metadata(),
        "secrets": list(plan.secrets),
        "size": plan.size.to_json(),
        **plan.details,
    }


def execute(
    plan: DeployPlan,
    history: History,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Upload, then record the outcome. A refusal before any call (no account, token or secret
    value) is a `DeployError` and records nothing; a failed call (the migration-tag read or
    the upload) raises `CloudflareApiError` and is recorded as a failed entry."""
    _checked_target(plan.target)
    values = read_secrets(plan.secrets, environ)
    try:
        plan.target.token()
    except api.CloudflareApiError as exc:
        raise DeployError(f"{exc}; nothing was uploaded or recorded") from None
    history.store_modules(plan.bundle)
    upload = api.upload_dispatcher if plan.kind == "dispatcher" else api.upload_tenant
    try:
        if plan.stored is not None:
            from claw402.cloudflare.resources import upload_objects

            upload_objects(plan.target, plan.stored.bucket, plan.stored.objects)
        plan = without_applied_migration(plan)
        result = upload(plan.target, plan.bundle, values)
    except api.CloudflareApiError as exc:
        history.append({**_entry(plan), "status": "failed", "error": str(exc),
                        "httpStatus": exc.status})
        raise
    return history.append({**_entry(plan), "status": "succeeded", "error": None,
                           "result": {k: result[k] for k in ("id", "etag") if k in result}})


def publish_tenant(
    registry: Registry,
    history: History,
    slug: str,
    target: api.Target,
    *,
    dispatcher: DispatcherOptions | None = None,
    tenant_secrets: Sequence[str] = (),
    workers_plan: str = "paid",
    execute_plan: bool = True,
    environ: Mapping[str, str] | None = None,
    on_upload: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """`deploy --publish`: upload the tenant's Worker, then the dispatcher that routes to it.

    Both plans are built (and sizes checked) before anything is uploaded; `on_upload` sees
    each history entry as its upload succeeds (so a failed second upload still leaves the
    first one accounted for). Returns the history entries, or with `execute_plan=False` the
    two plans as JSON (a dry run).
    """
    plans = [
        plan_tenant(registry, slug, target, secrets=tenant_secrets, workers_plan=workers_plan),
        plan_dispatcher(registry, target, dispatcher, workers_plan=workers_plan),
    ]
    if not execute_plan:
        return [p.to_json() for p in plans]
    entries = []
    for plan in plans:
        entries.append(execute(plan, history, environ))
        if on_upload is not None:
            on_upload(entries[-1])
    return entries
