"""Edge settlements paid straight to a creator's own wallet (a tenant deployed `--pay-to`).

Such a payment never touches the treasury, so `reconcile`'s walk of the treasury's transfers
never meets it: the dispatch Worker's `payment_settled` event is the only pointer to it. This
pass starts from those events instead: every edge event naming a payTo other than the
treasury, whose transaction is not yet booked as a direct settlement, is checked against its
transaction's logs (an `AuthorizationUsed` by the payer and the Transfer it authorised, from
the payer to that payTo, for that amount, nonce and network: `ledger.edge.attribute`, the
same check as for treasury payments). If the chain agrees and the payTo is the tenant's own
wallet, it is booked as the gateway books a direct payment: only the fee, owed by the creator
(`settlements.is_direct`). The booking is keyed on the authorization, so a replayed event, a
second run or the same payment booked by the gateway posts nothing more. An event the chain
contradicts books nothing and is reported in the run's warnings (on every run until the
event is dealt with: nothing records it as rejected); one naming a transaction the chain does
not have is waited for during the grace period, as a claim would be.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, exists, func, select
from web3.exceptions import TransactionNotFound

from claw402.events.kinds import PAYMENT_SETTLED
from claw402.events.rows import event_record
from claw402.events.schema import events
from claw402.events.store import EDGE
from claw402.ledger import edge
from claw402.ledger.chain import TokenChain, TokenLog
from claw402.ledger.report import ReconcileReport
from claw402.ledger.schema import ledger_transactions
from claw402.ledger.settlements import SETTLEMENT_DIRECT, is_direct

TX_HASH = re.compile(r"0x[0-9a-f]{64}")


@dataclass
class DirectRun:
    """What the pass did: booked now, waited for, and why others were not booked."""

    booked: int = 0
    deferred: int = 0
    warnings: list[str] = field(default_factory=list)

    def count(self, report: ReconcileReport) -> list[str]:
        """Add this pass to `report` (its bookings are edge settlements); returns the warnings."""
        report.settlements += self.booked
        report.edge_settlements += self.booked
        report.edge_direct += self.booked
        report.deferred += self.deferred
        return self.warnings


def unbooked_events(conn: Connection, treasury: str) -> list[dict[str, Any]]:
    """The edge's `payment_settled` events paying someone other than `treasury` whose
    transaction has no direct settlement on the books (a scan of that kind's rows, which the
    partial index `ix_events_settled` holds)."""
    c, t = events.c, ledger_transactions.c
    named = func.lower(c.data[("details", "transaction")].as_string())
    pay_to = func.lower(c.data[("details", "payTo")].as_string())
    booked = exists().where(t.tx_hash == named, t.kind == SETTLEMENT_DIRECT)
    rows = conn.execute(
        select(c.type, c.ts, c.request_id, c.tenant_id, c.data)
        .where(
            c.type == PAYMENT_SETTLED,
            c.data["source"].as_string() == EDGE,
            pay_to != treasury.lower(),
            ~booked,
        )
        .order_by(c.id)
    ).all()
    return [event_record(*row) for row in rows if isinstance(row.data, dict)]


def _details(event: dict[str, Any]) -> dict[str, Any]:
    details = event.get("details")
    return details if isinstance(details, dict) else {}


def _text(value: object) -> str:
    return str(value).lower() if value is not None else ""


def paid(logs: list[TokenLog], payer: str, pay_to: str) -> tuple[TokenLog, TokenLog] | None:
    """The (AuthorizationUsed, Transfer) pair in a transaction's `logs` by which `payer`
    paid `pay_to`, or None: the Transfer is the payer's next one after the authorization."""
    for auth in logs:
        if auth.event != "AuthorizationUsed" or auth.sender.lower() != payer:
            continue
        transfer = next(
            (
                log
                for log in logs
                if log.event == "Transfer"
                and log.log_index > auth.log_index
                and log.sender.lower() == payer
            ),
            None,
        )
        if transfer is not None and _text(transfer.to) == pay_to:
            return auth, transfer
    return None


def book_direct(engine: Engine, chain: TokenChain, treasury: str, cutoff: float) -> DirectRun:
    """Book every edge settlement to a creator's own wallet the chain confirms; `cutoff`
    (seconds since the epoch): an event newer than it naming an unknown transaction waits."""
    run = DirectRun()
    network = chain.network  # as the gateway keys its settlements: compared lowercased
    with engine.connect() as conn:
        found = unbooked_events(conn, treasury)
    seen: set[tuple[str, str, str]] = set()  # a forged twin must not hide the real event
    for event in found:
        details = _details(event)
        tx_hash = _text(details.get("transaction"))
        payer, pay_to = _text(details.get("payer")), _text(details.get("payTo"))
        elsewhere = _text(details.get("network") or network) != network.lower()
        if elsewhere or (tx_hash, payer, pay_to) in seen:
            continue
        seen.add((tx_hash, payer, pay_to))
        where = f"{tx_hash or '(no transaction)'}: edge event of request {event.get('requestId')!r}"
        if not TX_HASH.fullmatch(tx_hash):
            run.warnings.append(f"{where} names no transaction hash: nothing booked")
            continue
        try:
            logs = chain.receipt_logs(tx_hash)
        except TransactionNotFound:  # not mined (yet), or never sent
            if float(event.get("ts") or 0) > cutoff:
                run.deferred += 1
            else:
                run.warnings.append(f"{where} names a transaction the chain does not have")
            continue
        pair = paid(logs, payer, pay_to)
        if pair is None and paid(logs, payer, treasury.lower()) is not None:
            continue  # it paid the treasury: the treasury pass judges (and reports) its events
        if pair is None:
            run.warnings.append(
                f"{where} says {payer} paid {pay_to}, but its transaction moved no tokens "
                "from the one to the other by authorization: nothing booked"
            )
            continue
        auth, transfer = pair
        with engine.begin() as conn:
            attributed = edge.attribute(conn, network, transfer, auth)
            if attributed.reason is not None or attributed.tenant_id is None:
                run.warnings.append(f"{where} not booked: {attributed.reason}")
                continue
            if not is_direct(conn, attributed.tenant_id, pay_to):
                run.warnings.append(
                    f"{where} not booked: {pay_to} is neither the treasury nor the wallet of "
                    f"tenant {attributed.tenant_id!r}"
                )
                continue
            if edge.book(conn, network, chain.token, transfer, auth, attributed):
                run.booked += 1
    return run
