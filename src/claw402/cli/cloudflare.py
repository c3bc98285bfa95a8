"""Cloudflare commands: export the tenant directory, build the Workers, deploy, roll back.

Once any API key exists, deploy and rollback need one (`--api-key` or CLAW402_API_KEY):
executing a deploy needs the `deploy` scope (a tenant's Worker, also ownership of the tenant),
executing a rollback needs `admin` (it restores an older tenant directory, so it can change
every tenant's routing). A dry run needs any valid key (the `read` level, plus ownership for a
tenant): the plan shows the account, the bindings and the tenant directory, which are not
for anyone without a key. Every executed upload is added to the audit log.

The builders (`claw402.cloudflare.*`, payment settings, eth_utils) are imported by the commands
that run, not here: every `402claw` invocation imports this module to build its command list.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from claw402.cli.auth import ApiKey, actor_or_fail, tenant_for
from claw402.cli.options import Home, Json, open_registry
from claw402.cli.output import console, emit_json, fail

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import Engine

    from claw402.cloudflare.api import Target
    from claw402.cloudflare.deploy import DeployPlan
    from claw402.cloudflare.history import History
    from claw402.control.authz import Actor

# = claw402.cloudflare.dispatcher.DEFAULT_NAMESPACE, DEFAULT_SCRIPT_NAME (tests/cli check them)
DEFAULT_NAMESPACE = "claw402"
DEFAULT_SCRIPT_NAME = "claw402-dispatcher"


class DirectoryShape(enum.StrEnum):
    maps = "maps"
    registry = "registry"


class WorkersPlanName(enum.StrEnum):
    paid = "paid"
    free = "free"


def export_tenant_directory_command(
    format: Annotated[
        DirectoryShape, typer.Option("--format", help="maps (byHost/bySlug) or registry (a list).")
    ] = DirectoryShape.maps,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file (else print it).")
    ] = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Export the tenant directory the dispatch Worker routes with."""
    from claw402.cloudflare.directory import export_directory
    from claw402.cloudflare.files import dump_json, write_atomic

    _, registry = open_registry(home)
    directory = export_directory(registry.list_tenants(), format.value)
    count = len(directory.get("tenants", directory.get("bySlug", ())))
    if out is None:
        emit_json(directory)
        return
    write_atomic(out, dump_json(directory))
    if json:
        emit_json({"ok": True, "path": str(out), "format": format.value, "tenants": count})
    else:
        console.print(f"[green]wrote[/] {count} tenant(s) to {out} ({format.value} format)")


# -- build ------------------------------------------------------------------------------------

cloudflare_app = typer.Typer(help="Cloudflare Workers for Platforms: build the edge Workers.",
                             no_args_is_help=True)


@cloudflare_app.command("build")
def build_command(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the Workers into.")],
    dispatch_namespace: Annotated[
        str, typer.Option("--dispatch-namespace", envvar="CLOUDFLARE_DISPATCH_NAMESPACE",
                          help="Namespace the dispatcher's DISPATCHER binding names."),
    ] = DEFAULT_NAMESPACE,
    events_url: Annotated[
        str | None, typer.Option("--events-url", help="Where the Worker posts lifecycle events.")
    ] = None,
    workers_plan: Annotated[
        WorkersPlanName, typer.Option("--workers-plan", help="Size limits to check against.")
    ] = WorkersPlanName.paid,
    home: Home = None,
    json: Json = False,
) -> None:
    """Write the dispatch Worker and one user Worker per tenant, each with its metadata.json.

    The edge paywall takes the gateway's payment settings (CLAW402_ENV, CLAW402_NETWORK, ...).
    """
    from claw402.cloudflare.build import build_all
    from claw402.cloudflare.dispatcher import DispatcherOptions
    from claw402.cloudflare.sizes import ScriptTooLarge
    from claw402.payments.config import PaymentConfigError, payment_config_from_env

    _, registry = open_registry(home)
    try:
        options = DispatcherOptions(dispatch_namespace=dispatch_namespace, events_url=events_url,
                                    payment=payment_config_from_env())
        result = build_all(registry.list_tenants(), out, options,
                           workers_plan=workers_plan.value)
    except (ScriptTooLarge, PaymentConfigError, ValueError) as exc:
        fail(str(exc), as_json=json, code="build_failed")
    if json:
        emit_json({"ok": not result.refused, **result.to_json()})
    else:
        d = result.dispatcher
        console.print(f"[green]built[/] dispatcher {d.script_name} ({d.raw_size:,} bytes) and "
                      f"{len(result.tenants)} user Worker(s) in {out} "
                      f"({result.seconds * 1000:.0f} ms)")
        for slug, bundle in sorted(result.tenants.items()):
            console.print(f"  {slug}: {bundle.script_name} ({bundle.raw_size:,} bytes, "
                          f"{bundle.gzip_size:,} gzip)")
        for slug, reason in sorted(result.refused.items()):
            console.print(f"  [red]refused[/] {slug}: {reason}", highlight=False)
    if result.refused:
        raise typer.Exit(1)


# -- deploy, rollback -------------------------------------------------------------------------

AccountId = Annotated[
    str | None,
    typer.Option("--account-id", envvar="CLOUDFLARE_ACCOUNT_ID",
                 help="Cloudflare account id (else CLOUDFLARE_ACCOUNT_ID).", show_default=False),
]
ApiToken = Annotated[
    str | None,
    typer.Option("--api-token", help="API token (else CLOUDFLARE_API_TOKEN); never stored.",
                 show_default=False),
]
Namespace = Annotated[
    str,
    typer.Option("--dispatch-namespace", envvar="CLOUDFLARE_DISPATCH_NAMESPACE",
                 help="Workers for Platforms dispatch namespace."),
]
Secrets = Annotated[
    list[str] | None,
    typer.Option("--secret", help="Upload this environment variable as a Worker secret (repeat).",
                 show_default=False),
]
Execute = Annotated[
    bool, typer.Option("--execute", help="Make the API calls (default: print the plan).")
]
WorkersPlanOption = Annotated[
    WorkersPlanName, typer.Option("--workers-plan", help="Size limits to check against.")
]


def _target(account_id: str | None, api_token: str | None, namespace: str) -> Target:
    from claw402.cloudflare.api import Target
    from claw402.cloudflare.deploy import ACCOUNT_PLACEHOLDER

    return Target(account_id=account_id or ACCOUNT_PLACEHOLDER, dispatch_namespace=namespace,
                  api_token=api_token)


def _scope(execute_plan: bool, scope: str | None = None) -> str:
    """The scope a command needs: `scope` (else `deploy`) to act, `read` (any key) to plan."""
    from claw402.control import keys

    if not execute_plan:
        return keys.READ
    return scope or keys.DEPLOY


def _audited(engine: Engine, actor: Actor, entry: dict[str, Any],
             tenant_id: str | None = None) -> None:
    """Add an executed upload to the audit log (what and where; never a secret's value)."""
    from claw402.control import audit

    rollback = entry.get("action") == "rollback"
    action = "cloudflare.rolled_back" if rollback else "cloudflare.deployed"
    details = {
        "deployId": entry["id"],
        "kind": entry["kind"],
        "rollbackOf": entry.get("rollbackOf"),
        "accountId": entry.get("accountId"),
        "dispatchNamespace": entry.get("dispatchNamespace"),
        "sizeBytes": entry.get("size", {}).get("bytes"),
        "secrets": entry.get("secrets", []),
    }
    with engine.begin() as conn:
        audit.append(conn, actor.label, action, tenant_id=tenant_id,
                     subject=f"worker:{entry['scriptName']}", details=details)


def _run(plan_fn: Callable[[], DeployPlan], history: History, execute_plan: bool,
         json: bool, *, engine: Engine, actor: Actor, tenant_id: str | None = None) -> None:
    """Build the plan; print it (dry run) or execute it, audit it, print the recorded entry."""
    from claw402.cloudflare.api import CloudflareApiError
    from claw402.cloudflare.deploy import DeployError, execute
    from claw402.cloudflare.history import HistoryError
    from claw402.cloudflare.sizes import ScriptTooLarge

    try:
        plan = plan_fn()
        if not execute_plan:
            _show_plan(plan, json)
            return
        entry = execute(plan, history)
        _audited(engine, actor, entry, tenant_id)
    except (DeployError, HistoryError, ScriptTooLarge, ValueError) as exc:
        fail(str(exc), as_json=json, code="deploy_refused")
    except CloudflareApiError as exc:
        fail(f"{exc} (recorded in {history.path})", as_json=json, code="cloudflare_api_error")
    if json:
        emit_json({"ok": True, "executed": True, "deploy": entry})
        return
    size = entry["size"]
    console.print(
        f"[green]uploaded[/] {entry['kind']} [bold]{entry['scriptName']}[/] "
        f"({size['bytes']:,} bytes, {size['gzipBytes']:,} gzip) as {entry['id']}"
    )
    console.print(f"  PUT {entry['call']['path']}")
    console.print(f"  recorded in {history.path}")


def _show_plan(plan: DeployPlan, json: bool) -> None:
    from rich.table import Table

    data = plan.to_json()
    if json:
        emit_json({"ok": True, "executed": False, "plan": data})
        return
    verb = "roll back" if plan.action == "rollback" else "deploy"
    console.print(f"[bold]dry run[/]: {verb} {plan.kind} [bold]{plan.bundle.script_name}[/] "
                  "(add --execute to make these calls)")
    for call in data["calls"]:
        console.print(f"  {call['method']} {call['url']}   [dim]{call['sdk']}[/]")
        for part in call["multipart"]:
            extra = f", {part['bytes']:,} bytes" if "bytes" in part else ""
            console.print(f"    part {part.get('filename', part['name'])} ({part['contentType']}"
                          f"{extra})")
    size = data["size"]
    console.print(f"  size: {size['bytes']:,} bytes, {size['gzipBytes']:,} gzip "
                  f"(limit {size['limitGzipBytes']:,} gzip on Workers {size['workersPlan']})")
    bindings = Table("binding", "type", "value")
    for b in data["bindings"]:
        value = b.get("namespace") or b.get("text") or ("(secret, from the environment)"
                                                         if b["type"] == "secret_text" else "")
        bindings.add_row(b["name"], b["type"], value)
    console.print(bindings)
    if plan.rollback_of:
        console.print(f"  restores deploy {plan.rollback_of}")


def deploy_dispatcher_command(
    account_id: AccountId = None,
    api_token: ApiToken = None,
    dispatch_namespace: Namespace = DEFAULT_NAMESPACE,
    script_name: Annotated[str, typer.Option("--script-name", help="The dispatch Worker's name.")]
    = DEFAULT_SCRIPT_NAME,
    events_url: Annotated[
        str | None, typer.Option("--events-url", help="Where the Worker posts lifecycle events.")
    ] = None,
    secret: Secrets = None,
    workers_plan: WorkersPlanOption = WorkersPlanName.paid,
    execute_plan: Execute = False,
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Upload the dispatch Worker with the current tenant directory (dry run by default).

    The edge paywall takes the gateway's payment settings (CLAW402_ENV, CLAW402_NETWORK, ...);
    the facilitator API key, if any, is uploaded as a secret. Needs the `deploy` scope.
    """
    from claw402.cloudflare.deploy import plan_dispatcher
    from claw402.cloudflare.dispatcher import DispatcherOptions
    from claw402.cloudflare.history import History
    from claw402.payments.config import payment_config_from_env

    settings, registry = open_registry(home)
    actor = actor_or_fail(registry.engine, api_key, _scope(execute_plan), json)
    target = _target(account_id, api_token, dispatch_namespace)

    def plan() -> DeployPlan:
        options = DispatcherOptions(script_name=script_name, dispatch_namespace=dispatch_namespace,
                                    events_url=events_url, payment=payment_config_from_env(),
                                    secrets=tuple(secret or ()))
        return plan_dispatcher(registry, target, options, workers_plan=workers_plan.value)

    _run(plan, History(settings.home), execute_plan, json, engine=registry.engine, actor=actor)


def deploy_tenant_command(
    slug: Annotated[str, typer.Argument(help="Tenant slug.")],
    account_id: AccountId = None,
    api_token: ApiToken = None,
    dispatch_namespace: Namespace = DEFAULT_NAMESPACE,
    script_name: Annotated[
        str | None, typer.Option("--script-name", help="Defaults to the tenant's workerName.")
    ] = None,
    secret: Secrets = None,
    workers_plan: WorkersPlanOption = WorkersPlanName.paid,
    execute_plan: Execute = False,
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Upload one tenant's user Worker (its data API and dataset) to the dispatch namespace.

    Needs the `deploy` scope and ownership of the tenant (or an admin key).
    """
    from claw402.cloudflare.deploy import plan_tenant
    from claw402.cloudflare.history import History

    settings, registry = open_registry(home)
    tenant, actor = tenant_for(registry, slug, api_key, _scope(execute_plan), json)
    target = _target(account_id, api_token, dispatch_namespace)
    _run(lambda: plan_tenant(registry, slug, target, script_name=script_name,
                             secrets=tuple(secret or ()), workers_plan=workers_plan.value),
         History(settings.home), execute_plan, json, engine=registry.engine, actor=actor,
         tenant_id=tenant.tenant_id)


def rollback_dispatcher_command(
    to: Annotated[
        str | None, typer.Option("--to", help="History id to restore (default: the previous).")
    ] = None,
    account_id: AccountId = None,
    api_token: ApiToken = None,
    dispatch_namespace: Namespace = DEFAULT_NAMESPACE,
    script_name: Annotated[str, typer.Option("--script-name", help="The dispatch Worker's name.")]
    = DEFAULT_SCRIPT_NAME,
    secret: Secrets = None,
    workers_plan: WorkersPlanOption = WorkersPlanName.paid,
    execute_plan: Execute = False,
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Re-upload an earlier dispatch Worker from the history (dry run by default).

    Needs an `admin` key: the restored copy routes every tenant with an older directory.
    """
    from claw402.cloudflare.deploy import plan_rollback
    from claw402.cloudflare.history import History
    from claw402.control import keys

    settings, registry = open_registry(home)
    actor = actor_or_fail(registry.engine, api_key, _scope(execute_plan, keys.ADMIN), json)
    history = History(settings.home)
    target = _target(account_id, api_token, dispatch_namespace)
    _run(lambda: plan_rollback(history, target, script_name, to=to, secrets=tuple(secret or ()),
                               workers_plan=workers_plan.value),
         history, execute_plan, json, engine=registry.engine, actor=actor)


def register(app: typer.Typer) -> None:
    """Add the Cloudflare commands to the `402claw` app."""
    app.command("export-tenant-directory")(export_tenant_directory_command)
    app.add_typer(cloudflare_app, name="cloudflare")
    app.command("cloudflare-deploy-dispatcher")(deploy_dispatcher_command)
    app.command("cloudflare-deploy-tenant")(deploy_tenant_command)
    app.command("cloudflare-rollback-dispatcher")(rollback_dispatcher_command)


def publish(
    home: str | None,
    slug: str,
    *,
    account_id: str | None,
    api_token: str | None,
    dispatch_namespace: str,
    execute_plan: bool,
    json: bool,
    api_key: str | None,
) -> list[dict[str, Any]]:
    """`deploy --publish`: the tenant's Worker, then the dispatcher (a plan unless executed).

    Same keys as `cloudflare-deploy-tenant`; both plans are built (and sizes checked) before
    anything is uploaded, and each upload is audited as it succeeds.
    """
    from claw402.cloudflare.api import CloudflareApiError
    from claw402.cloudflare.deploy import DeployError, execute, plan_dispatcher, plan_tenant
    from claw402.cloudflare.dispatcher import DispatcherOptions
    from claw402.cloudflare.history import History, HistoryError
    from claw402.cloudflare.sizes import ScriptTooLarge
    from claw402.payments.config import PaymentConfigError, payment_config_from_env

    settings, registry = open_registry(home)
    tenant, actor = tenant_for(registry, slug, api_key, _scope(execute_plan), json)
    target = _target(account_id, api_token, dispatch_namespace)
    history = History(settings.home)
    results: list[dict[str, Any]] = []
    try:
        options = DispatcherOptions(
            dispatch_namespace=dispatch_namespace, payment=payment_config_from_env()
        )
        plans = [plan_tenant(registry, slug, target), plan_dispatcher(registry, target, options)]
        if not execute_plan:
            return _published([p.to_json() for p in plans], execute_plan, json)
        for plan in plans:
            entry = execute(plan, history)
            _audited(registry.engine, actor, entry,
                     tenant.tenant_id if plan.kind != "dispatcher" else None)
            results.append(entry)
    except (DeployError, HistoryError, ScriptTooLarge, ValueError, PaymentConfigError) as exc:
        fail(str(exc), as_json=json, code="publish_refused")
    except CloudflareApiError as exc:
        fail(f"{exc} (recorded in {history.path})", as_json=json, code="cloudflare_api_error")
    return _published(results, execute_plan, json)


def _published(results: list[dict[str, Any]], execute_plan: bool,
               json: bool) -> list[dict[str, Any]]:
    if not json:
        verb = "uploaded" if execute_plan else "would upload (dry run; add --execute)"
        for item in results:
            console.print(f"  cloudflare: {verb} {item['kind']} [bold]{item['scriptName']}[/]")
    return results
