"""Who is acting, and may they: scopes per command, ownership per tenant.

Until the first API key is issued the CLI is a local, single-operator tool and every command
is open (the actor is `local`). From then on every mutating command needs a key with the
right scope. `admin` implies every scope and every tenant; any key may read (`read` exists
for keys that should do nothing else). A creator acts only on tenants whose `owner` is their
user name; a tenant with no owner (deployed before keys existed) needs an admin key.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine

from claw402.control.errors import AuthError
from claw402.control.keys import ADMIN, PREFIX, READ, SCOPES, authenticate, keys_exist

API_KEY_ENV = "CLAW402_API_KEY"


@dataclass(frozen=True, slots=True)
class Actor:
    name: str  # a user name, or "local" before any key exists
    key_id: str | None
    scopes: frozenset[str]

    @property
    def label(self) -> str:
        """How the audit log names the actor: `alice (c402_0123456789ab)` or `local`."""
        return f"{self.name} ({PREFIX}{self.key_id})" if self.key_id else self.name

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.scopes

    @property
    def user(self) -> str | None:
        """The user a new tenant is owned by (None for the local operator)."""
        return self.name if self.key_id else None


LOCAL = Actor("local", None, frozenset(SCOPES))


def authorize(db: Engine | Connection, secret: str | None, scope: str) -> Actor:
    """The actor behind `secret`, if it may use `scope`; else `AuthError` saying what to do."""
    if isinstance(db, Engine):
        with db.connect() as conn:
            return authorize(conn, secret, scope)
    if not secret and not keys_exist(db):
        return LOCAL
    if not secret:
        raise AuthError(
            f"this command needs an API key with the {scope!r} scope: pass --api-key or set "
            f"{API_KEY_ENV} (API keys exist, so commands are no longer open)",
            code="api_key_required",
        )
    key = authenticate(db, secret)
    if scope != READ and scope not in key.scopes and ADMIN not in key.scopes:
        raise AuthError(
            f"API key {key.label} (user {key.user}) lacks the {scope!r} scope "
            f"(it has: {', '.join(sorted(key.scopes))})",
            code="missing_scope",
        )
    return Actor(key.user, key.key_id, key.scopes)


def require_owner(actor: Actor, owner: str | None, slug: str) -> None:
    """Refuse unless `actor` may act on the tenant `slug` owned by `owner`."""
    if actor.is_admin or owner == actor.name:
        return
    why = f"it is owned by {owner!r}" if owner else "it has no owner: only an admin key may act"
    raise AuthError(
        f"user {actor.name!r} does not own tenant {slug!r} ({why})", code="not_tenant_owner"
    )
