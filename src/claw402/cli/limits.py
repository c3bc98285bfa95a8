"""`402claw quarantine SLUG` / `unquarantine SLUG`: an admin's brake on a tenant."""

from __future__ import annotations

from typing import Annotated

import typer

from claw402.cli.auth import ApiKey
from claw402.cli.options import Home, Json, session
from claw402.cli.output import console, emit_json

SlugArg = Annotated[str, typer.Argument(help="The tenant's slug.")]


def quarantine_command(
    slug: SlugArg, api_key: ApiKey = None, home: Home = None, json: Json = False
) -> None:
    """Put a tenant on the quarantine plan now, on every gateway (admin; audited)."""
    _switch(slug, True, api_key, home, json)


def unquarantine_command(
    slug: SlugArg, api_key: ApiKey = None, home: Home = None, json: Json = False
) -> None:
    """Give a quarantined tenant back the plan it had (admin; audited)."""
    _switch(slug, False, api_key, home, json)


def _switch(slug: str, on: bool, api_key: str | None, home: str | None, json: bool) -> None:
    from claw402.control.quarantine import quarantine

    with session(home, json) as (_, registry):
        done = quarantine(registry, api_key, slug, on=on)
    tenant = done.tenant
    if json:
        emit_json({"ok": True, "changed": done.changed, "tenant": tenant.to_json()})
        return
    state = "quarantined" if on else "not quarantined"
    if done.changed:
        console.print(f"[green]{state}[/] [bold]{slug}[/]: now on the {tenant.plan} plan")
    else:
        console.print(f"{slug} was already {state} ({tenant.plan} plan)")
