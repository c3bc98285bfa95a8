"""Tenant commands: deploy, list, show, remove, events."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from claw402.cli.auth import ApiKey
from claw402.cli.cloudflare_deploy import show_published
from claw402.cli.cloudflare_options import CloudflareAccount
from claw402.cli.options import Home, Json, grouped, session
from claw402.cli.output import console, emit_json

if TYPE_CHECKING:
    from claw402.registry.models import Tenant

PROGRESS_FROM_BYTES = 8 * 1024 * 1024  # files smaller than this ingest too fast for a bar
Format = Literal["csv", "json", "ndjson", "parquet"]  # = claw402.datasets.ingest.FORMATS


@grouped
def deploy_command(
    path: Annotated[
        Path,
        typer.Argument(
            help="CSV (.csv, .tsv, .tab), JSON (.json), NDJSON (.ndjson, .jsonl) or Parquet "
            "(.parquet, .pq) file; any other name needs --format."
        ),
    ],
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant slug (a-z, 0-9, -).")],
    price: Annotated[
        str | None, typer.Option("--price", help="USD per paid call, e.g. 0.001 (0 = free).")
    ] = None,
    price_per_1k_rows: Annotated[
        str | None,
        typer.Option(
            "--price-per-1k-rows",
            help="USD per 1,000 rows returned, e.g. 0.01 (instead of --price): a 402 asks for "
            "a full page's price; a channel pays for the rows returned, exact the full page.",
        ),
    ] = None,
    plan: Annotated[
        str | None, typer.Option(help="free, pro, business, enterprise or quarantine.")
    ] = None,
    host: Annotated[
        list[str] | None, typer.Option("--host", help="Custom host for the tenant (repeat).")
    ] = None,
    pay_to: Annotated[
        str | None, typer.Option("--pay-to", help="Creator wallet paid directly.")
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="Column that identifies a record.")
    ] = None,
    cpu_ms: Annotated[
        int | None, typer.Option("--cpu-ms", help="Override the plan's CPU ms.")
    ] = None,
    subrequests: Annotated[
        int | None, typer.Option("--subrequests", help="Override the plan's subrequests.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    description: Annotated[str | None, typer.Option(help="What the data is.")] = None,
    data_format: Annotated[
        Format | None,
        typer.Option("--format", help="What the file is, when its extension does not say."),
    ] = None,
    allow_empty: Annotated[
        bool, typer.Option("--allow-empty", help="Deploy a dataset with no rows.")
    ] = False,
    schemes: Annotated[
        str | None,
        typer.Option(
            "--schemes",
            help="What callers may pay with: both (a batch-settlement channel or exact, the "
            "default), exact or batch. A re-deploy without it keeps the tenant's.",
        ),
    ] = None,
    rate: Annotated[
        str | None,
        typer.Option("--rate", help="Calls per caller, e.g. 10/s, 600/m, 5000/h (0: the plan's)."),
    ] = None,
    quota_day: Annotated[
        int | None, typer.Option("--quota-day", help="Served calls a UTC day (0: no quota).")
    ] = None,
    quota_month: Annotated[
        int | None, typer.Option("--quota-month", help="Served calls a UTC month (0: no quota).")
    ] = None,
    spend_cap_day: Annotated[
        str | None,
        typer.Option("--spend-cap-day", help="USD callers may pay a UTC day (0: no cap)."),
    ] = None,
    listed: Annotated[
        bool | None,
        typer.Option(
            "--listed/--unlisted",
            help="Show the tenant in the gateway's public catalogue (GET /) or keep it out. "
            "A new tenant is listed; a re-deploy without either keeps the tenant's choice.",
        ),
    ] = None,
    publish_edge: Annotated[
        bool, typer.Option("--publish", help="Also publish the tenant to Cloudflare (a plan).")
    ] = False,
    execute_plan: Annotated[
        bool, typer.Option("--execute", help="With --publish: make the Cloudflare API calls.")
    ] = False,
    account: CloudflareAccount = CloudflareAccount(),
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Create or update a tenant from a data file; a re-deploy switches versions atomically.

    With --publish the tenant's Worker and the dispatch Worker are then uploaded to Workers for
    Platforms (a dry-run plan unless --execute).
    """
    from claw402.control import edge, tenants
    from claw402.registry.deploy import DeployRequest

    request = DeployRequest(
        source=path,
        slug=tenant,
        price=price,
        price_per_1k_rows=price_per_1k_rows,
        plan=plan,
        hosts=host or None,
        pay_to=pay_to,
        key=key,
        cpu_ms=cpu_ms,
        sub_requests=subrequests,
        name=name,
        description=description,
        format=data_format,
        allow_empty=allow_empty,
        schemes=schemes,
        rate=rate,
        quota_day=quota_day,
        quota_month=quota_month,
        spend_cap_day=spend_cap_day,
        listed=listed,
    )
    publish = None
    if publish_edge:
        publish = edge.Publish(account.target(), execute_plan)
    with session(home, json) as (settings, registry):
        size = path.stat().st_size if path.is_file() else 0
        if json or size < PROGRESS_FROM_BYTES:
            done = tenants.deploy(registry, settings, api_key, request, publish=publish)
        else:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            with Progress(
                TextColumn("ingesting [bold]{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task(path.name, total=size)
                done = tenants.deploy(
                    registry,
                    settings,
                    api_key,
                    request,
                    progress=lambda n, total: bar.update(task, completed=n, total=total),
                    publish=publish,
                )
    result = done.tenant
    ds = result.dataset
    assert ds is not None
    if not json:
        console.print(
            f"[green]deployed[/] [bold]{result.slug}[/] v{ds.version}: {ds.rows:,} rows, "
            f"{len(ds.columns)} columns, {price_text(result)} ({result.plan} plan)"
        )
        console.print(f"  records: /t/{result.slug}/v1/records   docs: /t/{result.slug}/docs")
        for h, status in result.host_status:
            note = "" if h in result.routable_hosts else f"  ({status}: `402claw hosts list`)"
            console.print(f"  host:    http://{h}/v1/records{note}")
    if done.published is not None:
        show_published(done.published, execute_plan, json)
    if json:
        out: dict[str, object] = {"ok": True, "tenant": result.to_json()}
        if done.published is not None:
            out["publish"] = {"executed": execute_plan, "steps": done.published}
        emit_json(out)


def price_text(tenant: Tenant) -> str:
    """`$0.001 per call`, or `$0.01 per 1k rows (at most $0.001 a call)`."""
    rows = tenant.rows_price_usd
    if rows is None:
        return f"${tenant.price_usd} per call"
    return f"${rows} per 1k rows (at most ${tenant.price_usd} a call)"


def list_command(api_key: ApiKey = None, home: Home = None, json: Json = False) -> None:
    """List the tenants the key may see: a creator's own, or all for an admin."""
    from rich.table import Table

    from claw402.control import tenants as control

    with session(home, json) as (_, registry):
        tenants = control.visible(registry, api_key)
    if json:
        emit_json({"ok": True, "tenants": [t.to_json() for t in tenants]})
        return
    if not tenants:
        console.print("no tenants yet: `402claw deploy data.csv --tenant NAME --price 0.001`")
        return
    table = Table("slug", "plan", "price", "rows", "version", "hosts", "pay to")
    for t in tenants:
        ds = t.dataset
        table.add_row(
            t.slug,
            t.plan,
            price_text(t),
            f"{ds.rows:,}" if ds else "-",
            str(ds.version) if ds else "-",
            ", ".join(t.hosts) or "-",
            t.pay_to or "treasury",
        )
    console.print(table)


def show_command(slug: str, api_key: ApiKey = None, home: Home = None, json: Json = False) -> None:
    """Show one tenant: plan, limits, price, hosts and its dataset's schema."""
    from rich.table import Table

    from claw402.control import tenants

    with session(home, json) as (_, registry):
        tenant = tenants.show(registry, api_key, slug)
    if json:
        emit_json({"ok": True, "tenant": tenant.to_json()})
        return
    info = Table.grid(padding=(0, 2))
    data = tenant.to_json()
    for field in (
        "tenantId",
        "slug",
        "workerName",
        "plan",
        "price",
        "pricePer1kRows",
        "payTo",
        "name",
        "description",
    ):
        info.add_row(f"[bold]{field}", str(data[field] if data[field] is not None else "-"))
    info.add_row(
        "[bold]limits", f"cpuMs {tenant.limits.cpu_ms}, subRequests {tenant.limits.sub_requests}"
    )
    info.add_row("[bold]hosts", ", ".join(tenant.hosts) or "-")
    console.print(info)
    if tenant.dataset:
        ds = tenant.dataset
        console.print(
            f"\ndataset v{ds.version} ({ds.format}, {ds.rows:,} rows, {ds.bytes:,} bytes, "
            f"key {ds.key or '-'})"
        )
        schema = Table("column", "type")
        for col in ds.columns:
            schema.add_row(col["name"], col["type"])
        console.print(schema)


def remove_command(
    slug: str, api_key: ApiKey = None, home: Home = None, json: Json = False
) -> None:
    """Remove a tenant and its data; its routes answer 404 at once."""
    from claw402.control import tenants

    with session(home, json) as (settings, registry):
        tenant = tenants.remove(registry, settings, api_key, slug)
    if json:
        emit_json({"ok": True, "removed": tenant.slug, "tenantId": tenant.tenant_id})
    else:
        console.print(f"[green]removed[/] {tenant.slug}")


def events_command(
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only this tenant's events.")
    ] = None,
    kind: Annotated[str | None, typer.Option("--type", help="Only this event type.")] = None,
    request: Annotated[
        str | None,
        typer.Option(
            "--request",
            help="Only this request's: its x-request-id, or the "
            "x-correlation-id its caller sent (all the requests that share it).",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=10000, help="The newest N requests, each with all its events.")
    ] = 50,
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Read lifecycle events (dispatch and payment steps) from the durable sink: an admin's
    key reads every tenant's, a creator's only their own tenants'."""
    from rich.table import Table

    from claw402.control import tenants

    with session(home, json) as (_, registry):
        rows = tenants.events(
            registry, api_key, slug=tenant, kind=kind, request_id=request, limit=limit
        )
    if json:
        emit_json({"ok": True, "events": rows})
        return
    table = Table("id", "type", "request", "tenant", "status", "ms", "reason")
    for e in rows:
        table.add_row(
            str(e["id"]),
            e["type"],
            (e.get("requestId") or "-")[-12:],
            e.get("tenantId") or "-",
            str(e.get("status") or "-"),
            str(e.get("durationMs") or "-"),
            e.get("reason") or "",
        )
    console.print(table)
