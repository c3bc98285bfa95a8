"""Users and keys: shown once, stored as a hash, scoped, rotated and revoked."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from claw402.control import keys
from claw402.control.authz import LOCAL, authorize, require_owner
from claw402.control.errors import AuthError, ControlError


@pytest.fixture
def admin(engine) -> str:
    keys.create_user(engine, "root", "local")
    return keys.create_key(engine, "root", ["admin"], "local").secret


def test_open_until_the_first_key_then_closed(engine):
    assert authorize(engine, None, "deploy") is LOCAL
    keys.create_user(engine, "root", "local")
    with pytest.raises(ControlError, match="first API key must include the admin scope"):
        keys.create_key(engine, "root", ["deploy"], "local")
    secret = keys.create_key(engine, "root", ["admin"], "local").secret
    with pytest.raises(AuthError, match="needs an API key with the 'deploy' scope") as refused:
        authorize(engine, None, "deploy")
    assert refused.value.code == "api_key_required"
    actor = authorize(engine, secret, "deploy")  # admin implies every scope
    assert actor.name == "root" and actor.is_admin and actor.label.startswith("root (c402_")


def test_a_key_is_stored_only_as_its_hash(engine, admin):
    assert admin.startswith("c402_") and len(admin) == 5 + 12 + 1 + 43
    with engine.connect() as conn:
        dump = " ".join(
            str(v) for row in conn.execute(sa.text("SELECT * FROM api_keys")) for v in row
        )
    secret = admin.split("_", 2)[2]  # base64url: the secret itself may contain "_"
    assert admin not in dump and secret not in dump
    assert keys.hash_key(admin) in dump


def test_scopes_and_ownership_are_enforced_with_clear_errors(engine, admin):
    keys.create_user(engine, "alice", "root")
    alice = keys.create_key(engine, "alice", ["deploy"], "root").secret
    with pytest.raises(AuthError, match=r"lacks the 'withdraw' scope \(it has: deploy\)") as e:
        authorize(engine, alice, "withdraw")
    assert e.value.code == "missing_scope"
    actor = authorize(engine, alice, "deploy")
    require_owner(actor, "alice", "acme")
    with pytest.raises(AuthError, match=r"does not own tenant 'other'.*owned by 'bob'"):
        require_owner(actor, "bob", "other")
    with pytest.raises(AuthError, match="no owner: only an admin key"):
        require_owner(actor, None, "legacy")
    require_owner(authorize(engine, admin, "deploy"), "bob", "other")  # admin may
    assert authorize(engine, alice, "read").name == "alice"  # any key may read
    for bad in ("c402_nothex_x", "sk_live_123", admin[:-1] + ("A" if admin[-1] != "A" else "B")):
        with pytest.raises(AuthError, match="API key"):
            authorize(engine, bad, "read")


def test_rotate_and_revoke(engine, admin):
    keys.create_user(engine, "alice", "root")
    old = keys.create_key(engine, "alice", ["withdraw", "deploy"], "root")
    new = keys.rotate_key(engine, old.key.key_id, "root")
    assert new.key.scopes == {"withdraw", "deploy"} and new.secret != old.secret
    with pytest.raises(AuthError, match="revoked") as e:
        authorize(engine, old.secret, "withdraw")
    assert e.value.code == "key_revoked"
    assert authorize(engine, new.secret, "withdraw").name == "alice"
    keys.revoke_key(engine, keys.parse_key_id(new.key.label), "root")
    with pytest.raises(AuthError, match="revoked"):
        authorize(engine, new.secret, "withdraw")
    with pytest.raises(ControlError, match="already revoked"):
        keys.revoke_key(engine, new.key.key_id, "root")
    # Revoking every key never reopens the door.
    keys.revoke_key(engine, keys.parse_key_id(admin), "root")
    with pytest.raises(AuthError, match="needs an API key"):
        authorize(engine, None, "read")
