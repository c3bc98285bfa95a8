"""Reconcile's pass 1 on the claims a gateway left open (`claimed` or `pending`).

A claim decides alone whether it is still a gateway's business (`in_grace`) or dead and free
to release (`release_unused`), from the chain's word on its authorization; the books are not
involved, so this stays apart from the treasury matching in `ledger.reconcile`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update

from claw402.clock import aware, now
from claw402.ledger.chain import TokenChain
from claw402.ledger.claims import CLAIMED, PENDING, RELEASED, payment_claims


def open_claims(engine: Engine, network: str, token: str) -> list[dict[str, Any]]:
    """Claims still `claimed` or `pending` on this network for this token, oldest first."""
    c = payment_claims.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(payment_claims)
            .where(c.network == network, c.status.in_([CLAIMED, PENDING]))
            .order_by(c.id)
        ).mappings()
        token = token.lower()
        return [dict(r) for r in rows if str(r["asset"]).lower() == token]


def in_grace(claim: Any, cutoff: datetime) -> bool:
    """Claimed since `cutoff`: the gateway holding it may still settle it."""
    return claim["status"] == CLAIMED and aware(claim["updated_at"]) > cutoff


def release_unused(
    engine: Engine, chain: TokenChain, claim: Any, head: int, cutoff: datetime
) -> bool:
    """Free a claim whose authorization is unused on chain and past the gateway's hands:
    expired by the head block's time (no later block can include it), or not touched since
    `cutoff`. An authorization marked used without a log here (canceled) is kept."""
    if chain.authorization_state(claim["payer"], claim["nonce"]):
        return False
    valid_before = claim["valid_before"]
    expired = valid_before is not None and chain.block_time(head) >= valid_before
    if not expired and aware(claim["updated_at"]) > cutoff:
        return False
    c = payment_claims.c
    with engine.begin() as conn:
        freed = conn.execute(
            update(payment_claims)
            .where(c.id == claim["id"], c.status == claim["status"])
            .values(status=RELEASED, updated_at=now())
        )
    return freed.rowcount == 1
