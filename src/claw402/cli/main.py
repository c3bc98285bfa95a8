"""The `402claw` command line: thin commands over the layers."""

from __future__ import annotations

import typer

from claw402.cli import auth, cloudflare, facilitator, hosts, money, pay, serve, stack, tenants

app = typer.Typer(
    name="402claw",
    help="Deploy your data, get a paid API. One command.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("deploy")(tenants.deploy_command)
app.command("list")(tenants.list_command)
app.command("show")(tenants.show_command)
app.command("remove")(tenants.remove_command)
app.command("events")(tenants.events_command)
app.command("serve")(serve.serve_command)
app.command("dev")(stack.dev_command)
app.command("demo")(stack.demo_command)
app.command("call")(pay.call_command)
app.add_typer(facilitator.app, name="facilitator")
app.add_typer(hosts.app, name="hosts")
cloudflare.register(app)
money.register(app)
auth.register(app)


def main() -> None:
    app()
