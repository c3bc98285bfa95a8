"""Settlements made at the edge: which tenant earned them, from the dispatch Worker's events.

The Cloudflare paywall keeps its claims in a Durable Object, so no `payment_claims` row
explains its settlements. It reports each one as a `payment_settled` event, which the
gateway's `POST /_claw402/events` stores through `claw402.events.edge.ingest` with
`"source": "edge"`; its details name the transaction, payer, nonce, amount, payTo and network,
and its `tenantId` the tenant. This module reads them through `claw402.events.store`.

The event is a hint, the chain is the truth: a tenant is credited only if an edge event names
the transaction, agrees with the chain's Transfer and AuthorizationUsed logs on payer, nonce
(when the event carries one: Workers built before it did not), amount, payee and network,
and names a tenant that exists. Events that disagree with each other attribute nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from claw402.events.store import EdgeSettlements, any_edge_settlement
from claw402.ledger.chain import TokenLog
from claw402.ledger.settlements import Settlement, book_chain_payment
from claw402.registry.schema import tenants


@dataclass(frozen=True, slots=True)
class EdgeAttribution:
    """The tenant an edge event credits, or why none (`reason`); both None: no edge event."""

    tenant_id: str | None = None
    request_id: str | None = None
    resource: str | None = None
    reason: str | None = None


def in_use(conn: Connection) -> bool:
    """Is this platform settling at the edge (has the edge reported any settlement)?"""
    return any_edge_settlement(conn)


def _text(value: object) -> str:
    return str(value).lower() if value is not None else ""


def mismatch(event: dict[str, Any], network: str, transfer: TokenLog, auth: TokenLog) -> str | None:
    """Why `event` does not describe this settlement on chain, or None if it does."""
    details = event.get("details")
    if not isinstance(details, dict):
        return "has no details"
    expected = {
        "payer": auth.sender.lower(),
        "amount": str(transfer.value),
        "payTo": _text(transfer.to),
    }
    if details.get("nonce") is not None:
        expected["nonce"] = _text(auth.nonce)
    if details.get("network") is not None:
        expected["network"] = network.lower()
    for name, want in expected.items():
        if _text(details.get(name)) != want:
            return f"says {name} {details.get(name)!r}, the chain says {want!r}"
    if not isinstance(event.get("tenantId"), str):
        return "names no tenant"
    return None


def attribute(
    conn: Connection,
    network: str,
    transfer: TokenLog,
    auth: TokenLog,
    settlements: EdgeSettlements | None = None,
) -> EdgeAttribution:
    """Which tenant earned the treasury `transfer` authorised by `auth`, per the edge events
    (read through `settlements`, a run's index of them)."""
    found = (settlements or EdgeSettlements()).of(conn, transfer.tx_hash)
    if not found:
        return EdgeAttribution()
    problems: list[str] = []
    good: list[dict[str, Any]] = []
    for event in found:
        why = mismatch(event, network, transfer, auth)
        if why is None:
            good.append(event)
        else:
            problems.append(f"event of request {event.get('requestId')!r} {why}")
    named = {str(event["tenantId"]) for event in good}
    if len(named) > 1:
        return EdgeAttribution(reason=f"edge events name several tenants: {sorted(named)}")
    if not named:
        return EdgeAttribution(reason="; ".join(problems))
    tenant_id = named.pop()
    exists = conn.execute(select(tenants.c.tenant_id).where(tenants.c.tenant_id == tenant_id))
    if exists.first() is None:
        return EdgeAttribution(reason=f"edge event names unknown tenant {tenant_id!r}")
    event = good[0]
    details = event["details"]
    resource = details.get("resource")
    return EdgeAttribution(
        tenant_id=tenant_id,
        request_id=str(event.get("requestId") or "")[:64] or None,
        resource=str(resource) if resource else None,
    )


def book(
    conn: Connection,
    network: str,
    token: str,
    transfer: TokenLog,
    auth: TokenLog,
    found: EdgeAttribution,
) -> bool:
    """Post the settlement `found` credits to its tenant, and its `payments` row, as the
    gateway would have; True if posted now, False if it was already (both are keyed)."""
    assert auth.nonce is not None and found.tenant_id is not None and transfer.to is not None
    settlement = Settlement(
        network=network,
        payer=auth.sender.lower(),
        nonce=auth.nonce,
        tenant_id=found.tenant_id,
        amount=transfer.value,
        pay_to=transfer.to,
        tx_hash=transfer.tx_hash,
        log_index=transfer.log_index,
    )
    return book_chain_payment(
        conn,
        settlement,
        asset=token,
        request_id=found.request_id or "(edge)",
        resource=found.resource or "(settled at the edge)",
    )
