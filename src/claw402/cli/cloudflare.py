"""Cloudflare commands: export the tenant directory, build the Workers; `register` adds them
with the uploads (`cloudflare_deploy`: deploy, roll back) and `cloudflare up`/`status`
(`cloudflare_up`); the options they share are in `cloudflare_options`.

Once any API key exists every one of them needs a key (`--api-key` or CLAW402_API_KEY): the
directory and the built Workers hold every tenant's pay-to, hosts and prices, so a creator's
key exports and builds only their own tenants and an admin's all of them; executing a deploy
needs `deploy` (and ownership of a tenant), a rollback `admin`; a dry run any valid key. The
rules and the audit entries live in `claw402.control.edge`.

The builders (`claw402.cloudflare.*`, payment settings, eth_utils) are imported by the commands
that run, not here: every `402claw` invocation imports these modules to build its command list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from claw402.cli import cloudflare_deploy, cloudflare_up
from claw402.cli.auth import ApiKey
from claw402.cli.cloudflare_options import (
    DEFAULT_NAMESPACE,
    DEFAULT_SCRIPT_NAME,
    DirectoryFormat,
    DirectoryShape,
    EventsUrl,
    R2Bucket,
    WorkersPlanName,
    WorkersPlanOption,
)
from claw402.cli.options import Home, Json, session
from claw402.cli.output import console, emit_json

__all__ = ["DEFAULT_NAMESPACE", "DEFAULT_SCRIPT_NAME", "cloudflare_app", "register"]


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

cloudflare_app = typer.Typer(
    help="Cloudflare Workers for Platforms: build the edge Workers.", no_args_is_help=True
)


@cloudflare_app.command("build")
def build_command(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the Workers into.")],
    dispatch_namespace: Annotated[
        str,
        typer.Option(
            "--dispatch-namespace",
            envvar="CLOUDFLARE_DISPATCH_NAMESPACE",
            help="Namespace the dispatcher's DISPATCHER binding names.",
        ),
    ] = DEFAULT_NAMESPACE,
    events_url: EventsUrl = None,
    workers_plan: WorkersPlanOption = WorkersPlanName.paid,
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
        result = edge.build(
            registry,
            api_key,
            out,
            dispatch_namespace=dispatch_namespace,
            events_url=events_url,
            workers_plan=workers_plan.value,
            directory_format=directory_format.value,
            r2_bucket=r2_bucket,
        )
    if json:
        emit_json({"ok": not result.refused, **result.to_json()})
    else:
        d = result.dispatcher
        console.print(
            f"[green]built[/] dispatcher {d.script_name} ({d.raw_size:,} bytes) and "
            f"{len(result.tenants)} user Worker(s) in {out} "
            f"({result.seconds * 1000:.0f} ms)"
        )
        for slug, bundle in sorted(result.tenants.items()):
            console.print(
                f"  {slug}: {bundle.script_name} ({bundle.raw_size:,} bytes, "
                f"{bundle.gzip_size:,} gzip)"
            )
        for slug, data in sorted(result.stored.items()):
            console.print(
                f"  {slug}: rows in R2 bucket {data.bucket} ({len(data.objects)} "
                f"chunk(s), {data.bytes:,} bytes, in {out / 'r2' / data.bucket})"
            )
        for slug, reason in sorted(result.refused.items()):
            console.print(f"  [red]refused[/] {slug}: {reason}", highlight=False)
    if result.refused:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the Cloudflare commands to the `402claw` app."""
    app.command("export-tenant-directory")(export_tenant_directory_command)
    app.add_typer(cloudflare_app, name="cloudflare")
    app.command("cloudflare-deploy-dispatcher")(cloudflare_deploy.deploy_dispatcher_command)
    app.command("cloudflare-deploy-tenant")(cloudflare_deploy.deploy_tenant_command)
    app.command("cloudflare-rollback-dispatcher")(cloudflare_deploy.rollback_dispatcher_command)
    app.command("cloudflare-rollback-tenant")(cloudflare_deploy.rollback_tenant_command)
    cloudflare_up.register(cloudflare_app)
