"""`402claw auth ...` (users and API keys) and `402claw audit ...` (the hash-chained log).

`--api-key` (or `CLAW402_API_KEY`) is declared here once and shared by every command that
needs a key; the rules (scopes, ownership, what is audited) live in `claw402.control`.

The control layer (and SQLAlchemy under it) is imported by the commands that run, not here:
every `402claw` invocation imports this module to build its command list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from claw402.cli.options import Home, Json, session
from claw402.cli.output import console, emit_json, err_console

if TYPE_CHECKING:
    from claw402.control import keys

API_KEY_ENV = "CLAW402_API_KEY"  # = claw402.control.authz.API_KEY_ENV (tests/cli check it)

ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar=API_KEY_ENV,
        help=f"API key (else {API_KEY_ENV}); required once any key exists.",
        show_default=False,
        show_envvar=False,
    ),
]

auth_app = typer.Typer(help="Users and API keys.", no_args_is_help=True)
audit_app = typer.Typer(help="The append-only, hash-chained audit log.", no_args_is_help=True)


def _show_issued(issued: keys.IssuedKey, json: bool, verb: str) -> None:
    if json:
        emit_json({"ok": True, "key": issued.secret, **issued.key.to_json()})
        return
    console.print(
        f"[green]{verb}[/] {issued.key.label} for [bold]{issued.key.user}[/] "
        f"(scopes: {', '.join(sorted(issued.key.scopes))})"
    )
    console.print(issued.secret, highlight=False, soft_wrap=True)
    err_console.print("this key is shown once and only its hash is stored: keep it now")


@auth_app.command("create-user")
def create_user_command(
    name: Annotated[str, typer.Argument(help="User name (lowercase), e.g. alice.")],
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Create a user; tenants they deploy with their key are theirs."""
    from claw402.control import access

    with session(home, json) as (_, registry):
        access.create_user(registry.engine, api_key, name)
    if json:
        emit_json({"ok": True, "user": name})
    else:
        console.print(f"[green]created user[/] {name}")


@auth_app.command("create-key")
def create_key_command(
    user: Annotated[str, typer.Option("--user", help="Whose key it is.")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", help="deploy, withdraw, admin or read (repeat, or a,b)."),
    ],
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Issue an API key; it is printed once. The first key must include admin."""
    from claw402.control import access

    with session(home, json) as (_, registry):
        issued = access.create_key(registry.engine, api_key, user, scope)
    _show_issued(issued, json, "issued")


@auth_app.command("rotate-key")
def rotate_key_command(
    key_id: Annotated[str, typer.Argument(help="The key's id (c402_...) or the key itself.")],
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Replace a key with a new one (same user and scopes); the old one stops at once."""
    from claw402.control import access

    with session(home, json) as (_, registry):
        issued = access.rotate_key(registry.engine, api_key, key_id)
    _show_issued(issued, json, "rotated: new key")


@auth_app.command("revoke-key")
def revoke_key_command(
    key_id: Annotated[str, typer.Argument(help="The key's id (c402_...) or the key itself.")],
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Revoke a key for good."""
    from claw402.control import access

    with session(home, json) as (_, registry):
        revoked = access.revoke_key(registry.engine, api_key, key_id)
    if json:
        emit_json({"ok": True, **revoked.to_json()})
    else:
        console.print(f"[green]revoked[/] {revoked.label} ({revoked.user})")


@auth_app.command("list-keys")
def list_keys_command(api_key: ApiKey = None, home: Home = None, json: Json = False) -> None:
    """List API keys (ids, users, scopes, revocation); never the keys themselves."""
    from rich.table import Table

    from claw402.control import access

    with session(home, json) as (_, registry):
        found = access.list_keys(registry.engine, api_key)
    if json:
        emit_json({"ok": True, "keys": [k.to_json() for k in found]})
        return
    table = Table("key", "user", "scopes", "created", "revoked")
    for k in found:
        table.add_row(
            k.label,
            k.user,
            ",".join(sorted(k.scopes)),
            k.created_at.isoformat(timespec="seconds"),
            k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else "-",
        )
    console.print(table)


@audit_app.command("list")
def audit_list_command(
    limit: Annotated[
        int, typer.Option(min=1, max=100_000, help="How many of the newest entries.")
    ] = 50,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None,
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Show the newest audit entries, oldest first."""
    from rich.table import Table

    from claw402.control import access

    with session(home, json) as (_, registry):
        rows = access.audit_entries(registry, api_key, limit=limit, slug=tenant)
    if json:
        emit_json({"ok": True, "entries": [e.to_json() for e in rows]})
        return
    table = Table("seq", "time", "actor", "action", "subject", "details")
    for e in rows:
        details = ", ".join(f"{k}={v}" for k, v in e.details.items())
        table.add_row(str(e.seq), e.ts[:19], e.actor, e.action, e.subject or "-", details[:80])
    console.print(table)


@audit_app.command("verify")
def audit_verify_command(api_key: ApiKey = None, home: Home = None, json: Json = False) -> None:
    """Check the whole chain; exits 1 and names every edited or deleted entry."""
    from claw402.control import access

    with session(home, json) as (_, registry):
        report = access.audit_verify(registry.engine, api_key)
    if json:
        emit_json(
            {
                "ok": report.ok,
                "entries": report.entries,
                "headSeq": report.head_seq,
                "headHash": report.head_hash,
                "problems": report.problems,
            }
        )
    elif report.ok:
        console.print(
            f"[green]audit log intact[/]: {report.entries} entries, head {report.head_seq} "
            f"{report.head_hash}"
        )
    else:
        for problem in report.problems:
            err_console.print(f"[bold red]tampered:[/] {problem}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(auth_app, name="auth")
    app.add_typer(audit_app, name="audit")
