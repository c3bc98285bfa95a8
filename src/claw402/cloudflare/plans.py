"""Deploy plans: everything an upload of the dispatch Worker or a tenant Worker would do.

A plan (the API calls, the script, its size, its bindings, secrets by name) is built from the
registry or the history without credentials, so the CLI can print it as a dry run;
`claw402.cloudflare.deploy` executes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from claw402.cloudflare import api
from claw402.cloudflare.bundle import WorkerBundle
from claw402.cloudflare.dispatcher import (
    DispatcherOptions,
    build_dispatcher,
    check_secret_names,
    require_payments,
)
from claw402.cloudflare.history import History, redact
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
                {
                    "name": "files",
                    "filename": m.name,
                    "contentType": m.content_type,
                    "bytes": len(m.content),
                }
                for m in self.bundle.modules
            ]
            + [{"name": "metadata", "contentType": "application/json"}],
            "metadata": self.sent_metadata(),
        }
        if self.stored is not None:
            path = api.object_path(self.target.account_id, self.stored.bucket, "<key>")
            objects = {
                "method": "PUT",
                "url": self.target.api_base + path,
                "path": path,
                "sdk": "client.r2.buckets.objects.upload",
                "objects": len(self.stored.objects),
                "bytes": self.stored.bytes,
                "why": "the dataset's chunks, before the Worker that reads them",
            }
            return [objects, put]
        if not self.migrates:
            return [put]
        path = api.scripts_path(self.target.account_id)
        get = {
            "method": "GET",
            "url": self.target.api_base + path,
            "path": path,
            "sdk": "client.workers.scripts.list",
            "why": "read the script's Durable Object migration tag; the PUT carries "
            "`migrations` only if it is not applied yet",
        }
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
    return {
        "network": p.network,
        "asset": p.asset,
        "facilitator": p.facilitator_url,
        "treasury": p.treasury,
        "environment": p.environment,
    }


def plan_dispatcher(
    registry: Registry,
    target: api.Target,
    options: DispatcherOptions | None = None,
    *,
    workers_plan: str = "paid",
) -> DeployPlan:
    if options is None:  # what the CLI does: the gateway's payment settings, if any
        options = DispatcherOptions(
            dispatch_namespace=target.dispatch_namespace, payment=payment_config_from_env()
        )
    if options.dispatch_namespace != target.dispatch_namespace:
        raise DeployError("the dispatcher's namespace binding must name the target namespace")
    tenants = registry.list_tenants()
    require_payments(tenants, options.payment)
    bundle = build_dispatcher(tenants, options)
    return DeployPlan(
        "dispatcher",
        target,
        bundle,
        check_size(bundle, workers_plan),
        secrets=tuple(options.all_secrets),
        details={
            "payments": _payment_facts(options),
            "directory": {"tenants": len(tenants), "hosts": sum(len(t.hosts) for t in tenants)},
        },
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
        bindings = [
            *bundle.metadata.get("bindings", []),
            *({"type": "secret_text", "name": n} for n in names),
        ]
        bundle = WorkerBundle(
            bundle.script_name, bundle.modules, {**bundle.metadata, "bindings": bindings}
        )
    dataset = tenant.dataset
    return DeployPlan(
        "tenant",
        target,
        bundle,
        check_size(bundle, workers_plan),
        secrets=names,
        details={
            "tenant": {
                "slug": tenant.slug,
                "tenantId": tenant.tenant_id,
                "datasetVersion": dataset.version if dataset else None,
                "rows": dataset.rows if dataset else None,
                "r2": (
                    {"bucket": stored.bucket, "objects": len(stored.objects), "bytes": stored.bytes}
                    if stored
                    else None
                ),
            }
        },
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
    entry = history.rollback_target(kind, script_name, target.account_id, to, namespace=namespace)
    bundle = history.bundle(entry)
    return DeployPlan(
        kind,
        target,
        bundle,
        check_size(bundle, workers_plan),
        secrets=tuple(check_secret_names(secrets)),
        action="rollback",
        rollback_of=entry["id"],
        details={**(details or {}), "restores": {"id": entry["id"], "at": entry["at"]}},
    )
