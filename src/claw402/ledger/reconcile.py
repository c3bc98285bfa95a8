"""Make the books agree with the chain: post what moved the treasury, or paid a creator at the
edge, that they miss.

Three passes, all idempotent (every posting is keyed), so `reconcile` can run any time:

1. Claims: each payment claim still `claimed` (older than the grace period, so the gateway
   that holds it has given up or died) or `pending` (settle timed out) is looked up on chain
   by its authorization (`AuthorizationUsed(payer, nonce)`). If it was used, the settlement
   is posted (custodial or direct, as at the gateway), and the claim and the `payments` row
   are completed in the same transaction. If it was not used and cannot have been by the
   gateway that held the claim (its `validBefore` is past by the head block's time, or the
   claim is older than the grace period), the claim is `released` (reported as such): the
   payer may present the same payment again, which settles that very authorization, or sign
   a new one. A released authorization that is used later still finds its claim in pass 2.
2. Treasury: every token Transfer into or out of the treasury since the last run is matched
   to the books: a settlement (via the AuthorizationUsed log beside it in its transaction),
   a payout (via the withdrawal's recorded tx hash: a `sending` one is completed here), or
   else booked against platform equity (mints, funding, other outflows). An authorization
   that no claim explains may have been settled at the edge (Cloudflare): if an edge
   `payment_settled` event agrees with the chain (see `ledger.edge`), its tenant is credited
   like a gateway settlement; else it is booked against `platform:unattributed` (where edge
   events are in use, only once the grace period has passed since its block, so an event
   still on its way counts; a rejected event is reported as a warning).
3. Creators' own wallets: an edge settlement paid straight to a tenant's `--pay-to` never
   touches the treasury, so it is found from its edge event and checked against its
   transaction's logs instead, then booked as a direct settlement (`ledger.edge_direct`).

Channels (batch-settlement) first: every `Claimed` log of the escrow for a channel with
vouchers not yet seen claimed is booked (`ledger.channels`), so the escrow's `settle`
transfer into the treasury (pass 2) finds the claimed money it pays out; and every channel's
claimed vouchers in the books must add up to the escrow's `totalClaimed`, else a problem.

Afterwards the ledger's treasury account equals `balanceOf(treasury)` at the scanned head,
unless a settlement is still inside its grace period (reported as deferred) or a problem is
reported. The first run starts at `from_block` and books the treasury's balance just before
it as the opening balance.

Pass 1's per-claim decisions are `ledger.open_claims`'s, booking an edge-attributed settlement
is `ledger.edge`'s and the report is `ledger.report`'s; this module walks the chain.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import Connection, Engine, insert, select, update
from x402.mechanisms.evm.batch_settlement.constants import BATCH_SETTLEMENT_ADDRESS

from claw402.clock import now
from claw402.control import audit
from claw402.events.store import EdgeSettlements
from claw402.ledger import accounts, edge, withdrawals
from claw402.ledger.balances import account_balance, check_books
from claw402.ledger.book import credit, debit, post
from claw402.ledger.chain import TokenChain, TokenLog
from claw402.ledger.channels import SETTLE, check_channels, settle_entries, sync_claims
from claw402.ledger.claims import SETTLED, payment_claims
from claw402.ledger.edge_direct import book_direct
from claw402.ledger.open_claims import in_grace, open_claims, release_unused
from claw402.ledger.report import ReconcileReport
from claw402.ledger.schema import ledger_sync, ledger_transactions
from claw402.ledger.schema import withdrawals as withdrawals_table
from claw402.ledger.settlements import settle_claim_from_chain, settlement_key
from claw402.ledger.vouchers import post_pending

ZERO_ADDRESS = "0x" + "0" * 40

DEFAULT_GRACE_SECONDS = 120.0  # longer than the paywall's settle timeout (60 s)


class ChainReset(RuntimeError):
    """The chain no longer has the block the last run ended on (a restarted dev chain)."""


def _posted(conn: Connection, key: str) -> bool:
    query = select(ledger_transactions.c.id).where(ledger_transactions.c.key == key)
    return conn.execute(query).first() is not None


def _log_posted(conn: Connection, network: str, log: TokenLog) -> bool:
    t = ledger_transactions.c
    query = select(t.id).where(
        t.network == network, t.tx_hash == log.tx_hash, t.log_index == log.log_index
    )
    return conn.execute(query).first() is not None


class Reconciler:
    def __init__(
        self,
        engine: Engine,
        chain: TokenChain,
        treasury: str,
        *,
        from_block: int = 0,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        actor: str = "reconcile",
    ) -> None:
        self.engine = engine
        self.chain = chain
        self.network = chain.network
        self.treasury = to_checksum_address(treasury)
        self.from_block = from_block
        self.grace_seconds = grace_seconds
        self.cutoff = now() - timedelta(seconds=grace_seconds)
        self.actor = actor
        self._receipts: dict[str, list[TokenLog]] = {}
        self._warnings: list[str] = []
        self._edge_in_use: bool | None = None
        self._edge_events = EdgeSettlements()  # read once a run, not once a transfer

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> ReconcileReport:
        post_pending(self.engine)  # vouchers a gateway recorded and had not posted yet
        start = self._start()
        head = self.chain.head()
        report = ReconcileReport(self.network, self.chain.token, self.treasury, start, head)
        self._claims(report, start, head)
        report.channel_claims = sync_claims(self.engine, self.chain.w3, self.network)
        report.problems += check_channels(self.engine, self.chain.w3, self.network)
        resume = self._treasury(report, start, head) if start <= head else start
        direct = book_direct(self.engine, self.chain, self.treasury, self.cutoff.timestamp())
        self._warnings += direct.count(report)
        report.warnings = list(dict.fromkeys(self._warnings))
        self._finish(report, resume, head)
        return report

    def _start(self) -> int:
        """Where to scan from; creates the sync row (and opening balance) on the first run."""
        s = ledger_sync.c
        where = (
            s.network == self.network,
            s.token == self.chain.token.lower(),
            s.treasury == self.treasury.lower(),
        )
        with self.engine.begin() as conn:
            row = conn.execute(select(ledger_sync).where(*where)).mappings().first()
            if row is None:
                self._open(conn)
                return self.from_block
            self.from_block = int(row["start_block"])
            resume = int(row["next_block"])
        if resume > self.from_block and row["last_block_hash"]:
            seen = self.chain.block_hash(resume - 1)
            if seen != row["last_block_hash"]:
                raise ChainReset(
                    f"block {resume - 1} of {self.network} is not the one the ledger last "
                    "reconciled (was the dev chain restarted?): these books belong to another "
                    "chain; use a fresh CLAW402_HOME or database"
                )
        return resume

    def _open(self, conn: Connection) -> None:
        opening = self.chain.balance(self.treasury, self.from_block - 1) if self.from_block else 0
        conn.execute(
            insert(ledger_sync).values(
                network=self.network,
                token=self.chain.token.lower(),
                treasury=self.treasury.lower(),
                start_block=self.from_block,
                next_block=self.from_block,
                updated_at=now(),
            )
        )
        if opening:
            post(
                conn,
                key=f"opening:{self.network}:{self.chain.token.lower()}:{self.treasury.lower()}",
                kind="opening_balance",
                entries=[
                    debit(accounts.treasury(self.treasury), opening),
                    credit(accounts.PLATFORM_EQUITY, opening),
                ],
                memo=f"treasury balance before block {self.from_block}",
            )

    def _finish(self, report: ReconcileReport, resume: int, head: int) -> None:
        s = ledger_sync.c
        last_hash = self.chain.block_hash(resume - 1) if resume > 0 else None
        report.chain_treasury = self.chain.balance(self.treasury, head)
        with self.engine.begin() as conn:
            conn.execute(
                update(ledger_sync)
                .where(
                    s.network == self.network,
                    s.token == self.chain.token.lower(),
                    s.treasury == self.treasury.lower(),
                )
                .values(next_block=resume, last_block_hash=last_hash, updated_at=now())
            )
            report.ledger_treasury = account_balance(conn, accounts.treasury(self.treasury))
            report.problems += check_books(conn)
            if report.posted or report.released:
                audit.append(
                    conn,
                    self.actor,
                    "ledger.reconciled",
                    subject=f"treasury:{self.treasury}",
                    details=report.to_json(),
                )

    # -- pass 1: claims --------------------------------------------------------------------

    def _claims(self, report: ReconcileReport, start: int, head: int) -> None:
        for claim in open_claims(self.engine, self.network, self.chain.token):
            key = settlement_key(self.network, claim["payer"], claim["nonce"])
            with self.engine.connect() as conn:
                if _posted(conn, key):
                    continue
            if in_grace(claim, self.cutoff):
                report.deferred += 1
                continue
            used = self.chain.authorization_used(
                claim["payer"], claim["nonce"], self.from_block, head
            )
            if used:
                if self._settle_claim(claim, used[0]):
                    report.settlements += 1
            elif release_unused(self.engine, self.chain, claim, head, self.cutoff):
                report.released += 1

    def _transfer_for(self, auth: TokenLog) -> TokenLog | None:
        """The Transfer that an AuthorizationUsed log authorised (next one from the payer)."""
        for log in self._receipt(auth.tx_hash):
            if (
                log.event == "Transfer"
                and log.log_index > auth.log_index
                and (log.sender.lower() == auth.sender.lower())
            ):
                return log
        return None

    def _settle_claim(self, claim: Any, auth: TokenLog) -> bool:
        transfer = self._transfer_for(auth)
        if transfer is None or transfer.to is None:
            return False
        with self.engine.begin() as conn:
            return settle_claim_from_chain(conn, self.network, claim, transfer)

    # -- pass 2: the treasury's transfers --------------------------------------------------

    def _receipt(self, tx_hash: str) -> list[TokenLog]:
        if tx_hash not in self._receipts:
            self._receipts[tx_hash] = self.chain.receipt_logs(tx_hash)
        return self._receipts[tx_hash]

    def _treasury(self, report: ReconcileReport, start: int, head: int) -> int:
        """Match every treasury Transfer in [start, head]; returns where the next run resumes."""
        inbound = self.chain.transfers(start, head, to=self.treasury)
        outbound = self.chain.transfers(start, head, sender=self.treasury)
        logs = {(log.tx_hash, log.log_index): log for log in inbound + outbound}
        resume = head + 1
        for log in sorted(logs.values(), key=lambda entry: (entry.block, entry.log_index)):
            if log.sender == log.to:
                continue  # to itself: moves nothing
            with self.engine.connect() as conn:
                if _log_posted(conn, self.network, log):
                    continue
            if log.to == self.treasury:
                if not self._inbound(report, log):
                    report.deferred += 1
                    resume = min(resume, log.block)
            else:
                self._outbound(report, log)
        return resume

    def _claim_for(self, payer: str, nonce: str) -> Any:
        c = payment_claims.c
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    select(payment_claims).where(
                        c.network == self.network, c.payer == payer.lower(), c.nonce == nonce
                    )
                )
                .mappings()
                .first()
            )

    def _inbound(self, report: ReconcileReport, log: TokenLog) -> bool:
        """Account for one Transfer in; False to retry it later (a claim still in grace)."""
        auth = next(
            (
                a
                for a in reversed(self._receipt(log.tx_hash))
                if a.event == "AuthorizationUsed"
                and a.log_index < log.log_index
                and a.sender == log.sender
            ),
            None,
        )
        if auth is not None and auth.nonce is not None:
            with self.engine.connect() as conn:
                if _posted(conn, settlement_key(self.network, auth.sender, auth.nonce)):
                    return True
            claim = self._claim_for(auth.sender, auth.nonce)
            if claim is not None:
                if claim["status"] != SETTLED and in_grace(claim, self.cutoff):
                    return False
                if self._settle_claim(claim, auth):
                    report.settlements += 1
                return True
            attributed = self._edge(auth, log)
            if attributed is not None:
                report.settlements += attributed
                report.edge_settlements += attributed
                return True
            if self._recent(log):
                return False
            kind, against = "unattributed", accounts.UNATTRIBUTED
            report.unattributed += 1
        elif log.sender.lower() == BATCH_SETTLEMENT_ADDRESS.lower():
            with self.engine.begin() as conn:
                self._post_log(conn, log, SETTLE, *settle_entries(self.treasury, log.value))
            report.channel_settles += 1
            return True
        elif log.sender == ZERO_ADDRESS:
            kind, against = "mint", accounts.PLATFORM_EQUITY
            report.deposits += 1
        else:
            kind, against = "deposit", accounts.PLATFORM_EQUITY
            report.deposits += 1
        with self.engine.begin() as conn:
            self._post_log(
                conn,
                log,
                kind,
                debit(accounts.treasury(self.treasury), log.value),
                credit(against, log.value),
            )
        return True

    def _recent(self, log: TokenLog) -> bool:
        """Mined within the grace period on a platform that settles at the edge: the edge
        event explaining it may still be on its way."""
        if self.grace_seconds <= 0:
            return False
        if self._edge_in_use is None:
            with self.engine.connect() as conn:
                self._edge_in_use = edge.in_use(conn)
        return self._edge_in_use and self.chain.block_time(log.block) > self.cutoff.timestamp()

    def _edge(self, auth: TokenLog, log: TokenLog) -> bool | None:
        """Book the settlement an edge event attributes: True if posted now, False if it was
        already, None if no edge event credits a tenant (reasons go to the warnings)."""
        assert auth.nonce is not None
        with self.engine.begin() as conn:
            found = edge.attribute(conn, self.network, log, auth, self._edge_events)
            if found.reason is not None:
                self._warnings.append(
                    f"{log.tx_hash}: {log.value} from {log.sender} not credited to a tenant: "
                    f"{found.reason}"
                )
            if found.tenant_id is None or log.to is None:
                return None
            return edge.book(conn, self.network, self.chain.token, log, auth, found)

    def _outbound(self, report: ReconcileReport, log: TokenLog) -> None:
        w = withdrawals_table.c
        with self.engine.begin() as conn:
            row = conn.execute(select(w.id, w.status).where(w.tx_hash == log.tx_hash)).first()
            if row is not None and row.status == withdrawals.SENDING:
                found = withdrawals.get(conn, row.id)
                if withdrawals.complete(
                    conn,
                    found,
                    treasury=self.treasury,
                    tx_hash=log.tx_hash,
                    log_index=log.log_index,
                    actor=self.actor,
                ):
                    report.payouts_completed += 1
                    return
            if row is not None and row.status == withdrawals.FAILED:
                report.problems.append(
                    f"withdrawal {row.id} is marked failed but its transfer {log.tx_hash} "
                    "was mined: booked as a platform outflow; recover it from the creator"
                )
            self._post_log(
                conn,
                log,
                "outflow",
                debit(accounts.PLATFORM_EQUITY, log.value),
                credit(accounts.treasury(self.treasury), log.value),
            )
            report.outflows += 1

    def _post_log(self, conn: Connection, log: TokenLog, kind: str, *entries: Any) -> None:
        post(
            conn,
            key=f"chain:{self.network}:{log.tx_hash}:{log.log_index}",
            kind=kind,
            entries=list(entries),
            network=self.network,
            tx_hash=log.tx_hash,
            log_index=log.log_index,
            payer=log.sender,
            gross=log.value,
            memo=f"{kind} {log.sender} -> {log.to}",
        )


def reconcile(
    engine: Engine,
    chain: TokenChain,
    treasury: str,
    *,
    from_block: int = 0,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    actor: str = "reconcile",
) -> ReconcileReport:
    """Bring the books in line with the chain; see the module docstring."""
    return Reconciler(
        engine, chain, treasury, from_block=from_block, grace_seconds=grace_seconds, actor=actor
    ).run()
