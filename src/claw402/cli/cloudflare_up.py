"""`402claw cloudflare up` and `cloudflare status`: the whole edge from the registry, and its
drift. The rules live in `claw402.control.edge_up` and `claw402.cloudflare.up`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    R2BucketMade,
    UploadSettings,
)
from claw402.cli.options import Home, Json, OptionGroup, grouped, session
from claw402.cli.output import console, emit_json

if TYPE_CHECKING:
    from claw402.cloudflare.up import UpOptions

ZoneId = Annotated[
    str | None,
    typer.Option(
        "--zone-id",
        envvar="CLOUDFLARE_ZONE_ID",
        show_default=False,
        help="The SaaS zone: a */* route to the dispatcher and one custom hostname per "
        "tenant host (else CLOUDFLARE_ZONE_ID; without it only workers.dev).",
    ),
]
Route = Annotated[str, typer.Option("--route", help="Route pattern on the zone.")]
WorkersDev = Annotated[
    bool,
    typer.Option(
        "--workers-dev/--no-workers-dev",
        help="Serve the dispatcher on the account's workers.dev subdomain.",
    ),
]


@dataclass(frozen=True)
class WantedEdge(OptionGroup):
    """The options `up` and `status` share beyond the account: what the edge should be."""

    zone_id: ZoneId = None
    route: Route = "*/*"
    workers_dev: WorkersDev = True
    script_name: DispatcherName = DEFAULT_SCRIPT_NAME
    events_url: EventsUrl = None
    upload_settings: UploadSettings = field(default_factory=UploadSettings)
    directory_format: DirectoryFormat = DirectoryShape.maps
    r2_bucket: R2BucketMade = None

    def options(self) -> UpOptions:
        from claw402.cloudflare.up import UpOptions

        return UpOptions(
            script_name=self.script_name,
            zone_id=self.zone_id,
            route=self.route,
            workers_dev=self.workers_dev,
            events_url=self.events_url,
            **self.upload_settings.arguments(),
            directory_format=self.directory_format.value,
            r2_bucket=self.r2_bucket,
        )


def _table(items: list[dict[str, Any]], title: str) -> None:
    from rich.table import Table

    table = Table("kind", "name", "live", "action", title=title)
    for item in items:
        action = item["action"] or "[green]in sync[/]"
        table.add_row(item["kind"], item["name"], item["live"], action)
    console.print(table)


def _after(items: list[dict[str, Any]]) -> None:
    """Where callers reach the deployment, and what the operator still has to do."""
    for item in items:
        if item["kind"] == "workers.dev" and item.get("url"):
            console.print(f"  dispatcher: {item['url']}/t/<slug>/v1/records")
        if item["kind"] == "hostname" and item.get("found"):
            found = item["found"]
            console.print(
                f"  {item['name']}: CNAME it to the zone's fallback origin; status "
                f"{found.get('status')}, certificate {found.get('sslStatus')}"
            )
            if found.get("verification"):
                v = found["verification"]
                console.print(
                    f"    ownership: {v.get('type')} record {v.get('name')} = {v.get('value')}"
                )


@grouped
def up_command(
    account: CloudflareAccount = CloudflareAccount(),
    wanted: WantedEdge = WantedEdge(),
    execute_plan: Execute = False,
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Registry -> reachable edge: namespace, changed tenant Workers, dispatcher, workers.dev,
    zone route, custom hostnames. Reads the live state first; changes only with --execute.

    Idempotent: a second run finds everything in sync. Needs an `admin` key (once keys exist).
    """
    from claw402.control import edge_up

    with session(home, json) as (settings, registry):
        report = edge_up.up(
            registry, settings, api_key, account.target(), wanted.options(), execute=execute_plan
        )
    if json:
        emit_json(
            {
                "ok": True,
                "executed": report.executed,
                "changed": report.changed,
                "items": report.items,
            }
        )
        return
    todo = sum(1 for i in report.items if i["action"])
    if not report.executed:
        _table(report.items, f"dry run: {todo} change(s) (add --execute to make them)")
        return
    _table(report.items, f"up: {report.changed} change(s) made")
    _after(report.items)


@grouped
def status_command(
    account: CloudflareAccount = CloudflareAccount(),
    wanted: WantedEdge = WantedEdge(),
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """What is live on Cloudflare against what the registry wants (drift); reads only.

    Pass the options `up` was run with (the wanted dispatcher depends on them). Exits 1 when
    anything drifted.
    """
    from claw402.control import edge_up

    with session(home, json) as (settings, registry):
        items = edge_up.status(registry, settings, api_key, account.target(), wanted.options())
    drift = [i for i in items if i["action"]]
    if json:
        emit_json({"ok": not drift, "inSync": not drift, "drift": len(drift), "items": items})
    else:
        _table(items, "in sync" if not drift else f"{len(drift)} item(s) drifted")
    if drift:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `up` and `status` to the `cloudflare` group (once, however often it is called)."""
    if not any(c.name == "up" for c in app.registered_commands):
        app.command("up")(up_command)
        app.command("status")(status_command)
