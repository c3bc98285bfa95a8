"""Execute and record uploads of the dispatch Worker and of tenant Workers.

`execute` makes a plan's calls (`claw402.cloudflare.plans` builds it), then appends the outcome
to the history (a failed call too, so the file tells what happened; only succeeded uploads are
ever rollback targets). Secret values are read from the environment at execute time, sent
inside the upload, and never stored.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from claw402.cloudflare import api
from claw402.cloudflare.bundle import WorkerBundle
from claw402.cloudflare.dispatcher import (
    MIGRATIONS,
    DispatcherOptions,
    MigrationBehind,
    UnknownMigrationTag,
    migration_from,
)
from claw402.cloudflare.history import History, new_id
from claw402.cloudflare.plans import (
    ACCOUNT_PLACEHOLDER,
    DeployError,
    DeployPlan,
    plan_dispatcher,
    plan_tenant,
)
from claw402.registry.store import Registry


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
        raise DeployError(
            f"secret(s) {', '.join(missing)} not set in the environment: export "
            "them before deploying (their values are never stored)"
        )
    return {n: env[n] for n in names}


def _checked_target(target: api.Target) -> None:
    if not target.account_id or target.account_id == ACCOUNT_PLACEHOLDER:
        raise DeployError(
            "an account id is required: pass --account-id or set CLOUDFLARE_ACCOUNT_ID"
        )


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
        history.append(
            {**_entry(plan), "status": "failed", "error": str(exc), "httpStatus": exc.status}
        )
        raise
    return history.append(
        {
            **_entry(plan),
            "status": "succeeded",
            "error": None,
            "result": {k: result[k] for k in ("id", "etag") if k in result},
        }
    )


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
