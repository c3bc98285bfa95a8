"""Users and API keys: issued once, stored as a hash, scoped, rotatable, revocable.

A key looks like `c402_<id>_<secret>`: the prefix makes a leaked key recognisable (secret
scanners, logs), the id finds its row without a scan, and the secret is 32 random bytes.
Only SHA-256 of the whole key is stored. A slow password hash (bcrypt, argon2) defends
guessable human secrets; a 256-bit random secret cannot be guessed, so a fast hash loses
nothing and keeps every authenticated command quick. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from claw402.clock import aware, now
from claw402.control import audit
from claw402.control.errors import AuthError, ControlError
from claw402.control.schema import api_keys, users

PREFIX = "c402_"
READ, DEPLOY, WITHDRAW, ADMIN = "read", "deploy", "withdraw", "admin"
SCOPES = (READ, DEPLOY, WITHDRAW, ADMIN)
_KEY_RE = re.compile(r"^c402_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_USER_RE = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    user: str
    scopes: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None = None
    replaced_by: str | None = None

    @property
    def label(self) -> str:
        return f"{PREFIX}{self.key_id}"

    def to_json(self) -> dict[str, Any]:
        return {
            "keyId": self.label,
            "user": self.user,
            "scopes": sorted(self.scopes),
            "createdAt": self.created_at.isoformat(),
            "revokedAt": self.revoked_at.isoformat() if self.revoked_at else None,
            "replacedBy": f"{PREFIX}{self.replaced_by}" if self.replaced_by else None,
        }


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key: `secret` is the full key, shown once and never stored."""

    secret: str
    key: ApiKey


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key_id(text: str) -> str:
    """Accept `c402_<id>`, a whole key, or a bare id."""
    text = text.strip()
    match = _KEY_RE.match(text)
    if match:
        return match.group(1)
    bare = text.removeprefix(PREFIX)
    if not re.fullmatch(r"[0-9a-f]{12}", bare):
        raise ControlError(f"{text!r} is not an API key id (expected {PREFIX} followed by 12 hex)")
    return bare


def check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    wanted = frozenset(s.strip().lower() for s in scopes if s.strip())
    unknown = wanted - set(SCOPES)
    if unknown or not wanted:
        raise ControlError(
            f"scopes must be one or more of {', '.join(SCOPES)}; got {', '.join(sorted(wanted))}"
        )
    return wanted


def keys_exist(conn: Connection) -> bool:
    """True once any key was ever issued (revoking every key does not reopen the door)."""
    return conn.execute(select(api_keys.c.key_id).limit(1)).first() is not None


def create_user(engine: Engine, name: str, actor: str) -> str:
    if not _USER_RE.match(name):
        raise ControlError(f"invalid user name {name!r}: lowercase letters, digits, . _ @ -")
    try:
        with engine.begin() as conn:
            conn.execute(insert(users).values(name=name, created_at=now()))
            audit.append(conn, actor, "user.created", subject=f"user:{name}")
    except IntegrityError:
        raise ControlError(f"user {name!r} already exists") from None
    return name


def _issue(conn: Connection, user: str, scopes: frozenset[str]) -> IssuedKey:
    key_id = secrets.token_hex(6)
    secret = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    created = now()
    conn.execute(
        insert(api_keys).values(
            key_id=key_id,
            user_name=user,
            scopes=",".join(sorted(scopes)),
            key_hash=hash_key(secret),
            created_at=created,
        )
    )
    return IssuedKey(secret, ApiKey(key_id, user, scopes, created))


def create_key(engine: Engine, user: str, scopes: Iterable[str], actor: str) -> IssuedKey:
    wanted = check_scopes(scopes)
    with engine.begin() as conn:
        if conn.execute(select(users.c.name).where(users.c.name == user)).first() is None:
            raise ControlError(f"user {user!r} not found: `402claw auth create-user {user}` first")
        if not keys_exist(conn) and ADMIN not in wanted:
            raise ControlError(
                "the first API key must include the admin scope: once a key exists every "
                "mutating command needs one, and only admin can create more"
            )
        issued = _issue(conn, user, wanted)
        audit.append(
            conn,
            actor,
            "key.created",
            subject=f"user:{user}",
            details={"keyId": issued.key.label, "scopes": sorted(wanted)},
        )
    return issued


def get_key(conn: Connection, key_id: str) -> ApiKey | None:
    row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).mappings().first()
    return _key(row) if row else None


def _key(row: Any) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"],
        user=row["user_name"],
        scopes=frozenset(row["scopes"].split(",")),
        created_at=aware(row["created_at"]),
        revoked_at=aware(row["revoked_at"]) if row["revoked_at"] else None,
        replaced_by=row["replaced_by"],
    )


def _active(conn: Connection, key_id: str) -> ApiKey:
    found = get_key(conn, key_id)
    if found is None:
        raise ControlError(f"API key {PREFIX}{key_id} not found")
    if found.revoked_at is not None:
        raise ControlError(f"API key {PREFIX}{key_id} is already revoked")
    return found


def rotate_key(engine: Engine, key_id: str, actor: str) -> IssuedKey:
    """A new key with the same user and scopes; the old one stops working at once."""
    with engine.begin() as conn:
        old = _active(conn, key_id)
        issued = _issue(conn, old.user, old.scopes)
        conn.execute(
            update(api_keys)
            .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now(), replaced_by=issued.key.key_id)
        )
        audit.append(
            conn,
            actor,
            "key.rotated",
            subject=f"user:{old.user}",
            details={"old": old.label, "new": issued.key.label, "scopes": sorted(old.scopes)},
        )
    return issued


def revoke_key(engine: Engine, key_id: str, actor: str) -> ApiKey:
    with engine.begin() as conn:
        old = _active(conn, key_id)
        conn.execute(update(api_keys).where(api_keys.c.key_id == key_id).values(revoked_at=now()))
        audit.append(
            conn, actor, "key.revoked", subject=f"user:{old.user}", details={"keyId": old.label}
        )
        revoked = get_key(conn, key_id)
    assert revoked is not None
    return revoked


def list_keys(engine: Engine) -> list[ApiKey]:
    with engine.connect() as conn:
        rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at)).mappings().all()
    return [_key(r) for r in rows]


def authenticate(conn: Connection, secret: str) -> ApiKey:
    """The active key `secret` is, or `AuthError` (unknown and wrong secret look the same)."""
    secret = secret.strip()
    match = _KEY_RE.match(secret)
    if not match:
        raise AuthError(f"not an API key: 402claw keys look like {PREFIX}<id>_<secret>")
    row = conn.execute(select(api_keys).where(api_keys.c.key_id == match.group(1))).mappings()
    found = row.first()
    if found is None or not hmac.compare_digest(hash_key(secret), found["key_hash"]):
        raise AuthError("unknown API key")
    key = _key(found)
    if key.revoked_at is not None:
        raise AuthError(f"API key {key.label} was revoked", code="key_revoked")
    return key
