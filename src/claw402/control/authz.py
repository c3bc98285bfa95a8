"""Who is acting, and may they: scopes per command, ownership per tenant.

Until the first API key is issued the CLI is a local, single-operator tool and every command
is open (the actor is `local`). From then on every command needs a key with the right scope,
reads included (events name payers, amounts and transactions). `admin` implies every scope
and every tenant; any key may read (`read` exists for keys that should do nothing else). A
creator acts on, and sees, only tenants whose `owner` is their user name; a tenant with no
owner (deployed before keys existed) needs an admin key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from sqlalchemy import Connection, Engine

from claw402.control.errors import AuthError
from claw402.control.keys import ADMIN, PREFIX, READ, SCOPES, authenticate, keys_exist

API_KEY_ENV = "CLAW402_API_KEY"


class Owned(Protocol):
    @property
    def owner(self) -> str | None: ...

    @property
    def tenant_id(self) -> str: ...


T = TypeVar("T", bound=Owned)


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


def reader(db: Engine | Connection, secret: str | None) -> Actor:
    """The actor of a read command (`list`, `show`, `events`, `balance`): the `read` scope."""
    return authorize(db, secret, READ)


def may_read(actor: Actor, owner: str | None) -> bool:
    """Whether `actor` may see a tenant owned by `owner` (its data, money and events)."""
    return actor.is_admin or (owner is not None and owner == actor.name)


def readable(actor: Actor, tenants: Iterable[T]) -> list[T]:
    """The tenants `actor` may see: all for an admin (or the local operator), else their own."""
    return [t for t in tenants if may_read(actor, t.owner)]


def event_tenants(actor: Actor, tenants: Iterable[Owned]) -> list[str] | None:
    """Whose events `actor` may read: None means every event (tenantless ones too, for an
    admin), else only these tenants' ids."""
    return None if actor.is_admin else [t.tenant_id for t in readable(actor, tenants)]
