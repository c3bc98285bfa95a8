"""Operations on users, API keys and the audit log, with who may perform them.

An admin key creates users and keys, lists keys and reads the audit log; anyone may rotate or
revoke their own key; any key may verify the log (it shows only hashes and counts). Before the
first key exists every operation is open to the single operator (`local`). The writes are
audited by `keys`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from claw402.control import audit, keys
from claw402.control.authz import Actor, authorize
from claw402.control.errors import ControlError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from claw402.registry.store import Registry


def create_user(engine: Engine, secret: str | None, name: str) -> str:
    actor = authorize(engine, secret, keys.ADMIN)
    return keys.create_user(engine, name, actor.label)


def create_key(
    engine: Engine, secret: str | None, user: str, scopes: Iterable[str]
) -> keys.IssuedKey:
    """Issue a key (printed once); `scopes` may hold comma-separated lists."""
    actor = authorize(engine, secret, keys.ADMIN)
    wanted = [part for item in scopes for part in item.split(",")]
    return keys.create_key(engine, user, wanted, actor.label)


def _own_key_or_admin(engine: Engine, secret: str | None, key_text: str) -> tuple[str, Actor]:
    """The key id `key_text` names, and the actor: an admin, or the key's own user."""
    key_id = keys.parse_key_id(key_text)
    actor = authorize(engine, secret, keys.READ)
    with engine.connect() as conn:
        target = keys.get_key(conn, key_id)
    if target is None:
        raise ControlError(f"API key {keys.PREFIX}{key_id} not found", code="key_not_found")
    if not actor.is_admin and target.user != actor.name:
        raise ControlError(
            f"only an admin key or {target.user}'s own key may change {target.label}",
            code="forbidden",
        )
    return key_id, actor


def rotate_key(engine: Engine, secret: str | None, key_text: str) -> keys.IssuedKey:
    """Replace a key with a new one (same user and scopes); the old one stops at once."""
    key_id, actor = _own_key_or_admin(engine, secret, key_text)
    return keys.rotate_key(engine, key_id, actor.label)


def revoke_key(engine: Engine, secret: str | None, key_text: str) -> keys.ApiKey:
    key_id, actor = _own_key_or_admin(engine, secret, key_text)
    return keys.revoke_key(engine, key_id, actor.label)


def list_keys(engine: Engine, secret: str | None) -> list[keys.ApiKey]:
    authorize(engine, secret, keys.ADMIN)
    return keys.list_keys(engine)


def audit_entries(
    registry: Registry, secret: str | None, *, limit: int = 50, slug: str | None = None
) -> list[audit.AuditEntry]:
    """The newest entries, oldest first, optionally of one tenant (an admin key)."""
    authorize(registry.engine, secret, keys.ADMIN)
    tenant_id = None
    if slug is not None:
        found = registry.get(slug)
        if found is None:
            raise ControlError(f"tenant {slug!r} not found", code="tenant_not_found")
        tenant_id = found.tenant_id
    return audit.entries(registry.engine, limit=limit, tenant_id=tenant_id)


def audit_verify(engine: Engine, secret: str | None) -> audit.AuditReport:
    authorize(engine, secret, keys.READ)
    return audit.verify(engine)
