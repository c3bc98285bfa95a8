"""Cloudflare commands: export the tenant directory, build the Workers, deploy, roll back.

Once any API key exists every one of them needs a key (`--api-key` or CLAW402_API_KEY): the
directory and the built Workers hold every tenant's pay-to, hosts and prices, so a creator's
key exports and builds only their own tenants and an admin's all of them; executing a deploy
needs `deploy` (and ownership of a tenant), a rollback `admin`; a dry run any valid key. The
rules and the audit entries live in `claw402.control.edge`.

The builders (`claw402.cloudflare.*`, payment settings, eth_utils) are imported by the commands
that run, not here: every `402claw` invocation imports this module to build its command list.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from claw402.cli.auth import ApiKey
from claw402.cli.options import Home, Json, session
from claw402.cli.output import console, emit_json

if TYPE_CHECKING:
    from claw402.cloudflare.deploy import DeployPlan
    from claw402.control.edge import Upload

# = claw402.cloudflare.dispatcher.DEFAULT_NAMESPACE, DEFAULT_SCRIPT_NAME (tests/cli check them)
DEFAULT_NAMESPACE = "claw402"
DEFAULT_SCRIPT_NAME = "claw402-dispatcher"


class DirectoryShape(enum.StrEnum):
    maps = "maps"
    registry = "registry"


DirectoryFormat = Annotated[
    DirectoryShape,
    typer.Option("--directory-format",
                 help="The dispatcher's directory: maps (byHost/bySlug) or registry (tenants[])."),
]


R2Bucket = Annotated[
    str | None,
    typer.Option("--r2-bucket", envvar="CLOUDFLARE_R2_BUCKET", show_default=False,
                 help="R2 bucket for datasets too large to embed in a Worker (else refused)."),
]


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
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Export the tenant directory the dispatch Worker routes with (a creator's key: only
    their tenants)."""
    from claw402.cloudflare.files import dump_json, write_atomic
    from claw402.control import edge

    with session(home, json) as (_, registry):
        directory = edge.directory(registry, api_key, format.value)
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
    directory_format: DirectoryFormat = DirectoryShape.maps,
    r2_bucket: R2Bucket = None,
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Write the dispatch Worker and one user Worker per tenant, each with its metadata.json.

    The edge paywall takes the gateway's payment settings (CLAW402_ENV, CLAW402_NETWORK, ...).
    A creator's key builds only their own tenants.
    """
    from claw402.control import edge

    with session(home, json) as (_, registry):
        result = edge.build(registry, api_key, out, dispatch_namespace=dispatch_namespace,
                            events_url=events_url, workers_plan=workers_plan.value,
                            directory_format=directory_format.value, r2_bucket=r2_bucket)
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
        for slug, data in sorted(result.stored.items()):
            console.print(f"  {slug}: rows in R2 bucket {data.bucket} ({len(data.objects)} "
                          f"chunk(s), {data.bytes:,} bytes, in {out / 'r2' / data.bucket})")
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
DispatcherName = Annotated[str, typer.Option("--script-name", help="The dispatch Worker's name.")]


def _show(upload: Upload, json: bool) -> None:
    """A dry run's plan, or the recorded entry of an executed upload."""
    if upload.plan is not None:
        _show_plan(upload.plan, json)
        return
    entry = upload.entry
    assert entry is not None
    if json:
        emit_json({"ok": True, "executed": True, "deploy": entry})
        return
    size = entry["size"]
    console.print(
        f"[green]uploaded[/] {entry['kind']} [bold]{entry['scriptName']}[/] "
        f"({size['bytes']:,} bytes, {size['gzipBytes']:,} gzip) as {entry['id']}"
    )
    console.print(f"  PUT {entry['call']['path']}")
    console.print(f"  recorded in {upload.history}")


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
        if call.get("why"):
            console.print(f"    [dim]{call['why']}[/]")
        for part in call.get("multipart", ()):  # a GET (the migration tag check) has none
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
    script_name: DispatcherName = DEFAULT_SCRIPT_NAME,
    events_url: Annotated[
        str | None, typer.Option("--events-url", help="Where the Worker posts lifecycle events.")
    ] = None,
    secret: Secrets = None,
    workers_plan: WorkersPlanOption = WorkersPlanName.paid,
    directory_format: DirectoryFormat = DirectoryShape.maps,
    execute_plan: Execute = False,
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Upload the dispatch Worker with the current tenant directory (dry run by default).

    The edge paywall takes the gateway's payment settings (CLAW402_ENV, CLAW402_NETWORK, ...);
    the facilitator API key, if any, is uploaded as a secret. Needs the `deploy` scope.
    """
    from claw402.control import edge

    with session(home, json) as (settings, registry):
        upload = edge.deploy_dispatcher(
            registry, settings, api_key, edge.target(account_id, api_token, dispatch_namespace),
            script_name=script_name, events_url=events_url, secrets=secret or (),
            workers_plan=workers_plan.value, execute=execute_plan,
            directory_format=directory_format.value)
    _show(upload, json)


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
    r2_bucket: R2Bucket = None,
    execute_plan: Execute = False,
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Upload one tenant's user Worker (its data API and dataset) to the dispatch namespace.

    Needs the `deploy` scope and ownership of the tenant (or an admin key).
    """
    from claw402.control import edge

    with session(home, json) as (settings, registry):
        upload = edge.deploy_tenant(
            registry, settings, api_key, slug,
            edge.target(account_id, api_token, dispatch_namespace), script_name=script_name,
            secrets=secret or (), workers_plan=workers_plan.value, execute=execute_plan,
            r2_bucket=r2_bucket)
    _show(upload, json)


RollbackTo = Annotated[
    str | None,
    typer.Option("--to", help="History id to restore (default: the previous good one; run "
                 "again to keep moving back)."),
]  # fmt: skip


def rollback_dispatcher_command(
    to: RollbackTo = None,
    account_id: AccountId = None,
    api_token: ApiToken = None,
    dispatch_namespace: Namespace = DEFAULT_NAMESPACE,
    script_name: DispatcherName = DEFAULT_SCRIPT_NAME,
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
    from claw402.control import edge

    with session(home, json) as (settings, registry):
        upload = edge.rollback_dispatcher(
            registry, settings, api_key, edge.target(account_id, api_token, dispatch_namespace),
            script_name=script_name, entry_id=to, secrets=secret or (),
            workers_plan=workers_plan.value, execute=execute_plan)
    _show(upload, json)


def rollback_tenant_command(
    slug: Annotated[str, typer.Argument(help="Tenant slug.")],
    to: RollbackTo = None,
    account_id: AccountId = None,
    api_token: ApiToken = None,
    dispatch_namespace: Namespace = DEFAULT_NAMESPACE,
    secret: Secrets = None,
    workers_plan: WorkersPlanOption = WorkersPlanName.paid,
    execute_plan: Execute = False,
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Re-upload an earlier copy of one tenant's Worker from the history (dry run by default).

    Needs the `deploy` scope and ownership of the tenant (or an admin key).
    """
    from claw402.control import edge

    with session(home, json) as (settings, registry):
        upload = edge.rollback_tenant(
            registry, settings, api_key, slug,
            edge.target(account_id, api_token, dispatch_namespace), entry_id=to,
            secrets=secret or (), workers_plan=workers_plan.value, execute=execute_plan)
    _show(upload, json)


def register(app: typer.Typer) -> None:
    """Add the Cloudflare commands to the `402claw` app."""
    app.command("export-tenant-directory")(export_tenant_directory_command)
    app.add_typer(cloudflare_app, name="cloudflare")
    app.command("cloudflare-deploy-dispatcher")(deploy_dispatcher_command)
    app.command("cloudflare-deploy-tenant")(deploy_tenant_command)
    app.command("cloudflare-rollback-dispatcher")(rollback_dispatcher_command)
    app.command("cloudflare-rollback-tenant")(rollback_tenant_command)
    from claw402.cli import cloudflare_up  # beside this module: it reuses the options above

    cloudflare_up.register(cloudflare_app)


def show_published(steps: list[dict[str, Any]], execute_plan: bool, json: bool) -> None:
    """The edge half of `deploy --publish`, for people (`--json` carries the steps)."""
    if json:
        return
    verb = "uploaded" if execute_plan else "would upload (dry run; add --execute)"
    for item in steps:
        console.print(f"  cloudflare: {verb} {item['kind']} [bold]{item['scriptName']}[/]")
