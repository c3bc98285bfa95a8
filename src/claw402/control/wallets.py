"""Proof that a creator controls a payout address: an EIP-191 signed challenge.

`challenge` issues (or re-issues, while unused and unexpired) a message naming the tenant,
the address and a random nonce; the creator signs it with the wallet (`personal_sign`);
`prove` recovers the signer, and only if it is the address does that address become the
tenant's payout wallet. A challenge is single-use and expires, so a signature cannot be
replayed later or for another tenant. Every change of address is audited with old and new.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, insert, select, update

from claw402.clock import aware, now
from claw402.control import audit
from claw402.control.errors import ControlError
from claw402.control.schema import tenant_wallets, wallet_challenges

CHALLENGE_TTL = timedelta(hours=1)
_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")


@dataclass(frozen=True, slots=True)
class OwnershipChallenge:
    """A message the owner of `address` signs to prove it (not an x402 payment challenge)."""

    id: int
    tenant_id: str
    address: str
    message: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class PayoutWallet:
    """A tenant's verified payout address (not a key: `chain.wallet.Wallet` holds keys)."""

    tenant_id: str
    address: str
    verified_at: datetime
    previous: str | None = None


def checksum(address: str) -> str:
    from eth_utils import to_checksum_address

    if not _ADDRESS_RE.match(address):
        raise ControlError(f"invalid address {address!r}: expected 0x and 40 hex digits")
    return to_checksum_address(address)


def _message(slug: str, tenant_id: str, address: str, nonce: str, expires: datetime) -> str:
    return (
        "402claw payout wallet verification\n"
        f"tenant: {slug} ({tenant_id})\n"
        f"address: {address}\n"
        f"nonce: {nonce}\n"
        f"expires: {expires.isoformat(timespec='seconds')}\n"
        "Signing this proves you control this address. It costs nothing and moves no funds."
    )


def _open_challenge(conn: Connection, tenant_id: str, address: str) -> Row[Any] | None:
    """The latest unused challenge for (tenant, address), expired or not."""
    c = wallet_challenges.c
    return conn.execute(
        select(c.id, c.message, c.expires_at)
        .where(c.tenant_id == tenant_id, c.address == address, c.used_at.is_(None))
        .order_by(c.id.desc())
    ).first()


def challenge(engine: Engine, tenant_id: str, slug: str, address: str) -> OwnershipChallenge:
    """The open challenge for (tenant, address), or a fresh one."""
    address = checksum(address)
    moment = now()
    c = wallet_challenges.c
    with engine.begin() as conn:
        row = _open_challenge(conn, tenant_id, address)
        if row is not None and aware(row.expires_at) > moment + timedelta(minutes=5):
            expires_at = aware(row.expires_at)
            return OwnershipChallenge(row.id, tenant_id, address, row.message, expires_at)
        nonce = secrets.token_hex(16)
        expires = moment + CHALLENGE_TTL
        message = _message(slug, tenant_id, address, nonce, expires)
        new_id = conn.execute(
            insert(wallet_challenges)
            .values(
                tenant_id=tenant_id,
                address=address,
                nonce=nonce,
                message=message,
                created_at=moment,
                expires_at=expires,
            )
            .returning(c.id)
        ).scalar_one()
    return OwnershipChallenge(new_id, tenant_id, address, message, expires)


def sign(message: str, private_key: str) -> str:
    """An EIP-191 `personal_sign` signature, for local use (`--private-key-env`)."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    signed = Account.sign_message(encode_defunct(text=message), private_key=private_key)
    return "0x" + bytes(signed.signature).hex()


def recover(message: str, signature: str) -> str:
    from eth_account import Account
    from eth_account.messages import encode_defunct

    try:
        return Account.recover_message(encode_defunct(text=message), signature=signature)
    except Exception as exc:  # eth-account raises several types for a malformed signature
        raise ControlError(f"unreadable signature: {exc}", code="bad_signature") from None


def prove(engine: Engine, tenant_id: str, address: str, signature: str, actor: str) -> PayoutWallet:
    """Check the signature on the open challenge; on success the address receives payouts."""
    address = checksum(address)
    c = wallet_challenges.c
    moment = now()
    with engine.begin() as conn:
        row = _open_challenge(conn, tenant_id, address)
        if row is None or aware(row.expires_at) <= moment:
            raise ControlError(
                "no open challenge for this tenant and address: run `402claw wallet verify` "
                "without --signature to get one",
                code="no_challenge",
            )
        signer = recover(row.message, signature)
        if signer.lower() != address.lower():
            raise ControlError(
                f"the signature was made by {signer}, not {address}", code="bad_signature"
            )
        used = conn.execute(
            update(wallet_challenges)
            .where(c.id == row.id, c.used_at.is_(None))
            .values(used_at=moment)
        ).rowcount
        if used != 1:
            raise ControlError(
                "this challenge was just used; request a new one", code="no_challenge"
            )
        previous = _set_wallet(conn, tenant_id, address, row.id, moment)
        audit.append(
            conn,
            actor,
            "wallet.changed" if previous and previous != address else "wallet.verified",
            tenant_id=tenant_id,
            subject=f"wallet:{tenant_id}",
            details={"address": address, "previous": previous, "challenge": row.id},
        )
    return PayoutWallet(tenant_id, address, moment, previous)


def _set_wallet(
    conn: Connection, tenant_id: str, address: str, challenge_id: int, moment: datetime
) -> str | None:
    w = tenant_wallets.c
    previous = conn.execute(select(w.address).where(w.tenant_id == tenant_id)).scalar()
    values = {"address": address, "verified_at": moment, "challenge_id": challenge_id}
    if previous is None:
        conn.execute(insert(tenant_wallets).values(tenant_id=tenant_id, **values))
    else:
        conn.execute(update(tenant_wallets).where(w.tenant_id == tenant_id).values(**values))
    return previous


def payout_wallet(db: Engine | Connection, tenant_id: str) -> str | None:
    """The verified address payouts go to, or None."""
    query = select(tenant_wallets.c.address).where(tenant_wallets.c.tenant_id == tenant_id)
    if isinstance(db, Engine):
        with db.connect() as conn:
            return conn.execute(query).scalar()
    return db.execute(query).scalar()
