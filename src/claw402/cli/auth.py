"""`402claw auth ...` (users and API keys) and `402claw audit ...` (the hash-chained log).

`--api-key` (or `CLAW402_API_KEY`) is declared here once and shared by every command that
mutates state: see `claw402.control.authz` for the rules.

The control layer (and SQLAlchemy under it) is imported by the commands that run, not here:
every `402claw` invocation imports this module to build its command list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from claw402.cli.options import Home, Json, open_registry
from claw402.cli.output import console, emit_json, err_console, fail

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from claw402.control import keys
    from claw402.control.authz import Actor
    from claw402.control.tenants import TenantChange
    from claw402.registry.models import Tenant
    from claw402.registry.store import Registry

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


def actor_or_fail(engine: Engine, api_key: str | None, scope: str, json: bool) -> Actor:
    from claw402.control.authz import authorize
    from claw402.control.errors import ControlError

    try:
        return authorize(engine, api_key, scope)
    except ControlError as exc:
        fail(str(exc), as_json=json, code=exc.code)


def tenant_for(
    registry: Registry, slug: str, api_key: str | None, scope: str, json: bool
) -> tuple[Tenant, Actor]:
    """The tenant `slug` and the actor, if the key has `scope` and may act on that tenant."""
    from claw402.control.authz import require_owner
    from claw402.control.errors import ControlError

    actor = actor_or_fail(registry.engine, api_key, scope, json)
    tenant = registry.get(slug)
    if tenant is None:
        fail(f"tenant {slug!r} not found", as_json=json, code="tenant_not_found")
    try:
        require_owner(actor, tenant.owner, slug)
    except ControlError as exc:
        fail(str(exc), as_json=json, code=exc.code)
    return tenant, actor


def tenant_change(registry: Registry, slug: str, api_key: str | None, json: bool) -> TenantChange:
    """Authorise a deploy or removal of `slug`; report its outcome to audit it."""
    from claw402.control.errors import ControlError
    from claw402.control.tenants import begin_change

    try:
        return begin_change(registry.engine, api_key, slug, registry.get(slug))
    except ControlError as exc:
        fail(str(exc), as_json=json, code=exc.code)


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
    from claw402.control import keys
    from claw402.control.errors import ControlError

    _, registry = open_registry(home)
    actor = actor_or_fail(registry.engine, api_key, keys.ADMIN, json)
    try:
        keys.create_user(registry.engine, name, actor.label)
    except ControlError as exc:
        fail(str(exc), as_json=json, code=exc.code)
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
    from claw402.control import keys
    from claw402.control.errors import ControlError

    _, registry = open_registry(home)
    actor = actor_or_fail(registry.engine, api_key, keys.ADMIN, json)
    scopes = [part for item in scope for part in item.split(",")]
    try:
        issued = keys.create_key(registry.engine, user, scopes, actor.label)
    except ControlError as exc:
        fail(str(exc), as_json=json, code=exc.code)
    _show_issued(issued, json, "issued")


def _own_key_or_admin(engine: Engine, api_key: str | None, key_id: str, json: bool) -> Actor:
    """Admins manage every key; anyone may rotate or revoke their own."""
    from claw402.control import keys

    actor = actor_or_fail(engine, api_key, keys.READ, json)
    with engine.connect() as conn:
        target = keys.get_key(conn, key_id)
    if target is None:
        fail(f"API key {keys.PREFIX}{key_id} not found", as_json=json, code="key_not_found")
    if not actor.is_admin and target.user != actor.name:
        fail(
            f"only an admin key or {target.user}'s own key may change {target.label}",
            as_json=json,
            code="forbidden",
        )
    return actor


@auth_app.command("rotate-key")
def rotate_key_command(
    key_id: Annotated[str, typer.Argument(help="The key's id (c402_...) or the key itself.")],
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Replace a key with a new one (same user and scopes); the old one stops at once."""
    from claw402.control import keys
    from claw402.control.errors import ControlError

    _, registry = open_registry(home)
    try:
        kid = keys.parse_key_id(key_id)
        actor = _own_key_or_admin(registry.engine, api_key, kid, json)
        issued = keys.rotate_key(registry.engine, kid, actor.label)
    except ControlError as exc:
        fail(str(exc), as_json=json, code=exc.code)
    _show_issued(issued, json, "rotated: new key")


@auth_app.command("revoke-key")
def revoke_key_command(
    key_id: Annotated[str, typer.Argument(help="The key's id (c402_...) or the key itself.")],
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Revoke a key for good."""
    from claw402.control import keys
    from claw402.control.errors import ControlError

    _, registry = open_registry(home)
    try:
        kid = keys.parse_key_id(key_id)
        actor = _own_key_or_admin(registry.engine, api_key, kid, json)
        revoked = keys.revoke_key(registry.engine, kid, actor.label)
    except ControlError as exc:
        fail(str(exc), as_json=json, code=exc.code)
    if json:
        emit_json({"ok": True, **revoked.to_json()})
    else:
        console.print(f"[green]revoked[/] {revoked.label} ({revoked.user})")


@auth_app.command("list-keys")
def list_keys_command(api_key: ApiKey = None, home: Home = None, json: Json = False) -> None:
    """List API keys (ids, users, scopes, revocation); never the keys themselves."""
    from rich.table import Table

    from claw402.control import keys

    _, registry = open_registry(home)
    actor_or_fail(registry.engine, api_key, keys.ADMIN, json)
    found = keys.list_keys(registry.engine)
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

    from claw402.control import audit, keys

    _, registry = open_registry(home)
    actor_or_fail(registry.engine, api_key, keys.ADMIN, json)
    tenant_id = None
    if tenant is not None:
        found = registry.get(tenant)
        if found is None:
            fail(f"tenant {tenant!r} not found", as_json=json, code="tenant_not_found")
        tenant_id = found.tenant_id
    rows = audit.entries(registry.engine, limit=limit, tenant_id=tenant_id)
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
    from claw402.control import audit, keys

    _, registry = open_registry(home)
    actor_or_fail(registry.engine, api_key, keys.READ, json)
    report = audit.verify(registry.engine)
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
