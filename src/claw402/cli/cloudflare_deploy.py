"""Upload the edge Workers one at a time, or restore one from the history: the dispatcher and
a tenant's Worker, each a dry run (its plan printed) unless --execute.

Executing a deploy needs `deploy` (and ownership of a tenant), a dispatcher rollback `admin`,
a dry run any valid key; the rules and the audit entries live in `claw402.control.edge`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from claw402.cli.auth import ApiKey
from claw402.cli.cloudflare_options import (
    DEFAULT_SCRIPT_NAME,
    CloudflareAccount,
    DirectoryFormat,
    DirectoryShape,
    DispatcherName,
    EventsUrl,
    Execute,
    R2Bucket,
    UploadSettings,
)
from claw402.cli.options import Home, Json, grouped, session
from claw402.cli.output import console, emit_json

if TYPE_CHECKING:
    from claw402.cloudflare.plans import DeployPlan
    from claw402.control.edge import Upload


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
    console.print(
        f"[bold]dry run[/]: {verb} {plan.kind} [bold]{plan.bundle.script_name}[/] "
        "(add --execute to make these calls)"
    )
    for call in data["calls"]:
        console.print(f"  {call['method']} {call['url']}   [dim]{call['sdk']}[/]")
        if call.get("why"):
            console.print(f"    [dim]{call['why']}[/]")
        for part in call.get("multipart", ()):  # a GET (the migration tag check) has none
            extra = f", {part['bytes']:,} bytes" if "bytes" in part else ""
            console.print(
                f"    part {part.get('filename', part['name'])} ({part['contentType']}{extra})"
            )
    size = data["size"]
    console.print(
        f"  size: {size['bytes']:,} bytes, {size['gzipBytes']:,} gzip "
        f"(limit {size['limitGzipBytes']:,} gzip on Workers {size['workersPlan']})"
    )
    bindings = Table("binding", "type", "value")
    for b in data["bindings"]:
        value = (
            b.get("namespace")
            or b.get("text")
            or ("(secret, from the environment)" if b["type"] == "secret_text" else "")
        )
        bindings.add_row(b["name"], b["type"], value)
    console.print(bindings)
    if plan.rollback_of:
        console.print(f"  restores deploy {plan.rollback_of}")


@grouped
def deploy_dispatcher_command(
    account: CloudflareAccount = CloudflareAccount(),
    script_name: DispatcherName = DEFAULT_SCRIPT_NAME,
    events_url: EventsUrl = None,
    upload_settings: UploadSettings = UploadSettings(),
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
            registry,
            settings,
            api_key,
            account.target(),
            script_name=script_name,
            events_url=events_url,
            **upload_settings.arguments(),
            execute=execute_plan,
            directory_format=directory_format.value,
        )
    _show(upload, json)


@grouped
def deploy_tenant_command(
    slug: Annotated[str, typer.Argument(help="Tenant slug.")],
    account: CloudflareAccount = CloudflareAccount(),
    script_name: Annotated[
        str | None, typer.Option("--script-name", help="Defaults to the tenant's workerName.")
    ] = None,
    upload_settings: UploadSettings = UploadSettings(),
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
            registry,
            settings,
            api_key,
            slug,
            account.target(),
            script_name=script_name,
            **upload_settings.arguments(),
            execute=execute_plan,
            r2_bucket=r2_bucket,
        )
    _show(upload, json)


RollbackTo = Annotated[
    str | None,
    typer.Option("--to", help="History id to restore (default: the previous good one; run "
                 "again to keep moving back)."),
]  # fmt: skip


@grouped
def rollback_dispatcher_command(
    to: RollbackTo = None,
    account: CloudflareAccount = CloudflareAccount(),
    script_name: DispatcherName = DEFAULT_SCRIPT_NAME,
    upload_settings: UploadSettings = UploadSettings(),
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
            registry,
            settings,
            api_key,
            account.target(),
            script_name=script_name,
            entry_id=to,
            **upload_settings.arguments(),
            execute=execute_plan,
        )
    _show(upload, json)


@grouped
def rollback_tenant_command(
    slug: Annotated[str, typer.Argument(help="Tenant slug.")],
    to: RollbackTo = None,
    account: CloudflareAccount = CloudflareAccount(),
    upload_settings: UploadSettings = UploadSettings(),
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
            registry,
            settings,
            api_key,
            slug,
            account.target(),
            entry_id=to,
            **upload_settings.arguments(),
            execute=execute_plan,
        )
    _show(upload, json)


def show_published(steps: list[dict[str, Any]], execute_plan: bool, json: bool) -> None:
    """The edge half of `deploy --publish`, for people (`--json` carries the steps)."""
    if json:
        return
    verb = "uploaded" if execute_plan else "would upload (dry run; add --execute)"
    for item in steps:
        console.print(f"  cloudflare: {verb} {item['kind']} [bold]{item['scriptName']}[/]")
