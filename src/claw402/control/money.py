"""Money operations with who may perform them: balance, payout wallet, withdrawals, payouts,
reconciliation.

A tenant's balance needs any key of its owner (or an admin's); proving a payout wallet and
withdrawing need `withdraw` and ownership; paying withdrawals on chain, listing them and
reconciling the books need `admin`. The ledger and `wallets` audit what they change, under
the actor's label. The chain (and the treasury's key) is reached through a callable, called
only once the actor is allowed, so a refused caller costs no RPC connection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from claw402.control import wallets
from claw402.control.authz import authorize
from claw402.control.errors import ControlError
from claw402.control.keys import ADMIN, READ, WITHDRAW
from claw402.control.tenants import tenant_for

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from claw402.ledger.balances import Balance
    from claw402.ledger.payouts import PayoutReport
    from claw402.ledger.report import ReconcileReport
    from claw402.ledger.withdrawals import Withdrawal
    from claw402.registry.models import Tenant
    from claw402.registry.store import Registry


@dataclass(frozen=True, slots=True)
class Treasury:
    """What paying withdrawals needs: the chain, the treasury's key (`key_source` says where
    it came from, for messages) and, if given, the treasury address the key must be."""

    chain: Any
    key: str
    key_source: str
    address: str | None = None


def balance(registry: Registry, secret: str | None, slug: str) -> tuple[Tenant, Balance]:
    from claw402.ledger import balance as read_balance

    tenant, _ = tenant_for(registry, secret, slug, READ)
    return tenant, read_balance(registry.engine, tenant.tenant_id)


@dataclass(frozen=True, slots=True)
class WalletStep:
    """`challenge` to sign (nothing proven yet), or the `proved` wallet."""

    tenant: Tenant
    challenge: wallets.OwnershipChallenge
    proved: wallets.PayoutWallet | None = None


def verify_wallet(
    registry: Registry,
    secret: str | None,
    slug: str,
    address: str,
    *,
    signature: str | None = None,
    private_key: str | None = None,
) -> WalletStep:
    """Issue the challenge for (tenant, address); with a signature (or a key to sign with
    here) prove it, and the address receives the tenant's payouts from then on."""
    tenant, actor = tenant_for(registry, secret, slug, WITHDRAW)
    challenge = wallets.challenge(registry.engine, tenant.tenant_id, tenant.slug, address)
    if private_key:
        signature = wallets.sign(challenge.message, private_key)
    if signature is None:
        return WalletStep(tenant, challenge)
    proved = wallets.prove(
        registry.engine, tenant.tenant_id, challenge.address, signature, actor.label
    )
    return WalletStep(tenant, challenge, proved)


def withdraw(
    registry: Registry, secret: str | None, slug: str, amount: str
) -> tuple[Tenant, Withdrawal]:
    """Reserve `amount` (USD) of the available balance for a payout to the verified wallet."""
    from claw402.ledger import withdrawals
    from claw402.ledger.amounts import parse_usd

    tenant, actor = tenant_for(registry, secret, slug, WITHDRAW)
    address = wallets.payout_wallet(registry.engine, tenant.tenant_id)
    if address is None:
        raise ControlError(
            f"{tenant.slug} has no verified payout wallet: run `402claw wallet verify "
            f"--tenant {tenant.slug} --address 0x...` first",
            code="no_wallet",
        )
    try:
        return tenant, withdrawals.request(
            registry.engine, tenant.tenant_id, parse_usd(amount), address, actor.label
        )
    except ControlError:
        raise
    except ValueError as exc:
        raise ControlError(str(exc), code=getattr(exc, "code", "invalid_amount")) from None


def run_payouts(
    engine: Engine,
    secret: str | None,
    *,
    limit: int | None = None,
    dry_run: bool = False,
    treasury: Callable[[], Treasury] | None = None,
) -> PayoutReport:
    """Pay pending withdrawals in order (an admin key); `dry_run` only plans them."""
    from claw402.ledger.payouts import PayoutError, PayoutRunner, plan

    actor = authorize(engine, secret, ADMIN)
    if dry_run:
        return plan(engine, limit=limit)
    if treasury is None:
        raise ControlError(
            "paying withdrawals needs the chain and the treasury's key", code="chain_not_configured"
        )
    t = treasury()
    runner = PayoutRunner(engine, t.chain, t.key, actor=actor.label)
    if t.address and t.address.lower() != runner.treasury.lower():
        raise ControlError(
            f"{t.key_source} is the key of {runner.treasury}, not treasury {t.address}",
            code="wrong_treasury_key",
        )
    try:
        return runner.run(limit=limit)
    except PayoutError as exc:
        raise ControlError(str(exc), code="payouts_busy") from None


def list_withdrawals(
    engine: Engine, secret: str | None, *, status: str | None = None, limit: int = 100
) -> list[Withdrawal]:
    from claw402.ledger import withdrawals

    authorize(engine, secret, ADMIN)
    return withdrawals.listing(engine, status=status, limit=limit)


def reconcile(
    engine: Engine,
    secret: str | None,
    chain: Callable[[], tuple[Any, str]],
    *,
    from_block: int = 0,
    grace_seconds: float = 120.0,
) -> ReconcileReport:
    """Post what the books miss from the chain and compare (an admin key); `chain()` gives
    the token chain and the treasury address."""
    from claw402.ledger.reconcile import ChainReset
    from claw402.ledger.reconcile import reconcile as reconcile_books

    actor = authorize(engine, secret, ADMIN)
    token_chain, treasury = chain()
    try:
        return reconcile_books(
            engine,
            token_chain,
            treasury,
            from_block=from_block,
            grace_seconds=grace_seconds,
            actor=actor.label,
        )
    except ChainReset as exc:
        raise ControlError(str(exc), code="chain_reset") from None
