"""`402claw hosts ...`: custom hosts, their state, and how to prove them.

Once API keys exist a creator's `deploy --host` is stored unverified: it routes after
`hosts verify` finds its token in DNS, or an admin runs `hosts approve`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from claw402.cli.auth import ApiKey
from claw402.cli.options import Home, Json, session
from claw402.cli.output import console, emit_json

app = typer.Typer(help="Custom hosts: list, verify by DNS, approve.", no_args_is_help=True)

HostArg = Annotated[str, typer.Argument(help="The custom host, e.g. api.example.com.")]


@app.command("list")
def list_command(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's.")] = None,
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Every custom host the key may see: tenant, state, and the TXT record that proves it."""
    from rich.table import Table

    from claw402.control import hosts

    with session(home, json) as (_, registry):
        claims = hosts.listing(registry, api_key, tenant)
    if json:
        emit_json({"ok": True, "hosts": [c.to_json() for c in claims]})
        return
    if not claims:
        console.print("no custom hosts: `402claw deploy data.csv --tenant NAME --host HOST`")
        return
    table = Table("host", "tenant", "status")
    for c in claims:
        table.add_row(c.host, c.slug, c.status)
    console.print(table)
    for c in claims:
        if not c.routable:  # whole lines, to copy: the token must not wrap
            console.print(
                f"to verify {c.host}: publish TXT _402claw.{c.host} = {c.token}, then "
                f"`402claw hosts verify {c.host}`",
                highlight=False,
                soft_wrap=True,
            )


def _run(action: str, host: str, api_key: str | None, home: str | None, json: bool) -> None:
    from claw402.control import hosts

    with session(home, json) as (_, registry):
        if action == "verify":
            outcome = hosts.verify(registry, api_key, host)
        else:
            outcome = hosts.approve(registry, api_key, host)
    claim = outcome.claim
    if json:
        emit_json({"ok": True, "changed": outcome.changed, "host": claim.to_json()})
    elif outcome.changed:
        console.print(f"[green]{claim.status}[/] {claim.host}: routes to [bold]{claim.slug}[/]")
    else:
        console.print(f"{claim.host} was already {claim.status} (tenant {claim.slug})")


@app.command("verify")
def verify_command(
    host: HostArg, api_key: ApiKey = None, home: Home = None, json: Json = False
) -> None:
    """Route HOST once DNS holds its token: TXT `_402claw.HOST` (see `hosts list`)."""
    _run("verify", host, api_key, home, json)


@app.command("approve")
def approve_command(
    host: HostArg, api_key: ApiKey = None, home: Home = None, json: Json = False
) -> None:
    """Route HOST without DNS proof (an admin key)."""
    _run("approve", host, api_key, home, json)
