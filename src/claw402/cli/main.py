"""The `402claw` command line: thin commands over the layers.

Help is click's plain layout (`rich_markup_mode=None`): Typer's Rich layout prints `<bool>`
beside every flag, as if a flag took a value.
"""

from __future__ import annotations

from importlib.metadata import version as installed_version
from typing import Annotated

import typer

from claw402.cli import (
    auth,
    channels,
    cloudflare,
    facilitator,
    hosts,
    limits,
    mcp_stdio,
    money,
    pay,
    serve,
    stack,
    tenants,
)
from claw402.cli.options import Home, Json

app = typer.Typer(
    name="402claw",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"402claw {installed_version('claw402')}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ] = False,
    home: Home = None,
    json: Json = False,
) -> None:
    """Deploy your data, get a paid API. One command.

    --home and --json given here hold for the command that follows (its own win).
    """


app.command("deploy")(tenants.deploy_command)
app.command("list")(tenants.list_command)
app.command("show")(tenants.show_command)
app.command("remove")(tenants.remove_command)
app.command("events")(tenants.events_command)
app.command("quarantine")(limits.quarantine_command)
app.command("unquarantine")(limits.unquarantine_command)
app.command("serve")(serve.serve_command)
app.command("dev")(stack.dev_command)
app.command("demo")(stack.demo_command)
app.command("call")(pay.call_command)
app.command("mcp")(mcp_stdio.mcp_command)
app.add_typer(facilitator.app, name="facilitator")
app.add_typer(hosts.app, name="hosts")
app.add_typer(channels.app, name="channels")
cloudflare.register(app)
money.register(app)
auth.register(app)


def main() -> None:
    app()
