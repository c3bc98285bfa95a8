"""Pay pending withdrawals with USDC transfers from the treasury, safely across crashes.

For each withdrawal, oldest first: sign the transfer (its hash is known before it is sent),
record it as `sending` with that hash and the raw signed bytes, broadcast, wait for the
receipt, then record `completed` (or `failed` if it reverted) and post the payout. A crash
anywhere leaves a row `pending` (nothing signed was kept: pay it normally) or `sending`
(resolved first on the next run, by its hash: mined -> completed; unknown -> the very same
signed bytes are broadcast again, so a second payment cannot be made; and only once the
treasury's nonce has moved past it without it, so it can never be mined, is it `failed` and
its funds released).

One runner at a time, each transfer waited for before the next is signed, so treasury
nonces never collide. The lease row names its holder (`host:pid:random`) and is renewed
before each transfer; a restarted runner takes over at once from a holder that is dead on
this host, and from any other holder once its lease expires.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from eth_account import Account
from sqlalchemy import Engine, select, update
from web3.exceptions import TimeExhausted, TransactionNotFound

from claw402.clock import now
from claw402.ledger import withdrawals
from claw402.ledger.chain import TokenChain, decode, hexstr
from claw402.ledger.db import insert_ignore
from claw402.ledger.schema import ledger_leases
from claw402.ledger.withdrawals import Withdrawal

TRANSFER_GAS = 100_000  # an ERC-20 transfer costs ~35-55k
LEASE = timedelta(minutes=2)
_TRANSFER_SELECTOR = "a9059cbb"  # transfer(address,uint256)


class PayoutError(RuntimeError):
    """The run stopped; every withdrawal is in a state a later run resolves."""


def _dead_here(holder: str) -> bool:
    """True if `holder` ran on this host and its process no longer exists."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname()[:40] or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _noop(_: Withdrawal) -> None:
    return None


@dataclass(frozen=True)
class Hooks:
    """Called after each durable step (tests kill the process here to prove recovery)."""

    recorded: Callable[[Withdrawal], None] = _noop
    broadcast: Callable[[Withdrawal], None] = _noop


@dataclass(frozen=True, slots=True)
class PayoutResult:
    withdrawal_id: int
    tenant_id: str
    amount: int
    address: str
    status: str
    tx_hash: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.withdrawal_id,
            "tenantId": self.tenant_id,
            "amountAtomic": str(self.amount),
            "address": self.address,
            "status": self.status,
            "txHash": self.tx_hash,
            "reason": self.reason,
        }


@dataclass
class PayoutReport:
    dry_run: bool
    results: list[PayoutResult] = field(default_factory=list)
    stopped: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "dryRun": self.dry_run,
            "results": [r.to_json() for r in self.results],
            "stopped": self.stopped,
        }


def _result(w: Withdrawal, status: str, reason: str | None = None) -> PayoutResult:
    return PayoutResult(w.id, w.tenant_id, w.amount, w.address, status, w.tx_hash, reason)


def plan(engine: Engine, *, limit: int | None = None) -> PayoutReport:
    """What a run would do, from the database alone (`--dry-run`: no chain, no key)."""
    report = PayoutReport(dry_run=True)
    for w in withdrawals.listing(engine, status=withdrawals.SENDING):
        report.results.append(_result(w, "would_resolve"))
    for w in withdrawals.listing(engine, status=withdrawals.PENDING, limit=limit):
        report.results.append(_result(w, "would_pay"))
    return report


class PayoutRunner:
    def __init__(
        self,
        engine: Engine,
        chain: TokenChain,
        treasury_key: str,
        *,
        actor: str = "payouts",
        receipt_timeout: float = 60.0,
        hooks: Hooks | None = None,
    ) -> None:
        self.engine = engine
        self.chain = chain
        self.w3 = chain.w3
        self.account = Account.from_key(treasury_key)
        self.treasury = self.account.address
        self.actor = actor
        self.receipt_timeout = receipt_timeout
        self.hooks = hooks or Hooks()
        self.holder = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"

    # -- the run ---------------------------------------------------------------------------

    def run(self, *, limit: int | None = None, dry_run: bool = False) -> PayoutReport:
        if dry_run:
            return plan(self.engine, limit=limit)
        report = PayoutReport(dry_run)
        if not self._acquire():
            raise PayoutError("another payout run holds the lease; try again when it ends")
        try:
            for w in withdrawals.listing(self.engine, status=withdrawals.SENDING):
                report.results.append(self._resolve(w))
            if any(r.status == withdrawals.SENDING for r in report.results):
                report.stopped = "an earlier transfer is still unconfirmed; nothing new was sent"
                return report
            for w in withdrawals.listing(self.engine, status=withdrawals.PENDING, limit=limit):
                if not self._acquire():
                    report.stopped = "the lease was lost to another runner"
                    break
                result = self._pay(w)
                report.results.append(result)
                if result.status in (withdrawals.PENDING, withdrawals.SENDING):
                    report.stopped = result.reason
                    break
            return report
        finally:
            self._release()

    # -- one runner at a time --------------------------------------------------------------

    def _acquire(self) -> bool:
        """Take or renew the lease; False while a live runner holds it."""
        moment = now()
        lease = ledger_leases.c
        with self.engine.begin() as conn:
            conn.execute(insert_ignore(conn, ledger_leases), {"name": "payouts"})
            holder = conn.execute(select(lease.holder).where(lease.name == "payouts")).scalar()
            takeable = (
                (lease.holder.is_(None))
                | (lease.holder == self.holder)
                | (lease.expires_at < moment)
            )
            if holder and _dead_here(holder):
                takeable = takeable | (lease.holder == holder)
            return (
                conn.execute(
                    update(ledger_leases)
                    .where(lease.name == "payouts", takeable)
                    .values(holder=self.holder, expires_at=moment + LEASE)
                ).rowcount
                == 1
            )

    def _release(self) -> None:
        lease = ledger_leases.c
        with self.engine.begin() as conn:
            conn.execute(
                update(ledger_leases)
                .where(lease.name == "payouts", lease.holder == self.holder)
                .values(holder=None, expires_at=None)
            )

    # -- paying ----------------------------------------------------------------------------

    def _sign(self, w: Withdrawal, nonce: int) -> tuple[str, str]:
        data = (
            "0x"
            + _TRANSFER_SELECTOR
            + "0" * 24
            + w.address.lower().removeprefix("0x")
            + f"{w.amount:064x}"
        )
        tx = {
            "to": self.chain.token,
            "data": data,
            "value": 0,
            "gas": TRANSFER_GAS,
            "gasPrice": int(self.w3.eth.gas_price) * 2,
            "nonce": nonce,
            "chainId": self.chain.chain_id,
        }
        signed = self.account.sign_transaction(tx)
        return hexstr(signed.hash).lower(), hexstr(signed.raw_transaction)

    def _pay(self, w: Withdrawal) -> PayoutResult:
        held = self.chain.balance(self.treasury)
        if held < w.amount:
            return _result(
                w,
                withdrawals.PENDING,
                f"the treasury holds {held} atomic units, withdrawal {w.id} needs {w.amount}",
            )
        nonce = int(self.w3.eth.get_transaction_count(self.treasury, "pending"))
        tx_hash, raw = self._sign(w, nonce)
        with self.engine.begin() as conn:
            if not withdrawals.mark_sending(
                conn,
                w,
                network=self.chain.network,
                chain_nonce=nonce,
                tx_hash=tx_hash,
                raw_tx=raw,
                actor=self.actor,
            ):
                return _result(w, "skipped", "taken by another runner")
            w = withdrawals.get(conn, w.id)
        self.hooks.recorded(w)
        try:
            self.w3.eth.send_raw_transaction(raw)
        except Exception as exc:  # RPC down, out of gas money, ...: resolved on the next run
            return _result(w, withdrawals.SENDING, f"broadcast failed: {exc}")
        self.hooks.broadcast(w)
        return self._await(w)

    def _await(self, w: Withdrawal) -> PayoutResult:
        assert w.tx_hash is not None
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(
                w.tx_hash,  # type: ignore[arg-type]
                timeout=self.receipt_timeout,
                poll_latency=0.05,
            )
        except TimeExhausted:
            return _result(w, withdrawals.SENDING, "not mined yet; the next run resolves it")
        return self._finish(w, receipt)

    def _finish(self, w: Withdrawal, receipt: Any) -> PayoutResult:
        with self.engine.begin() as conn:
            if receipt["status"] != 1:
                withdrawals.fail(conn, w, "the transfer reverted on chain", actor=self.actor)
                return _result(w, withdrawals.FAILED, "the transfer reverted on chain")
            log_index = next(
                d.log_index
                for d in map(decode, receipt["logs"])
                if d is not None and d.event == "Transfer" and d.sender == self.treasury
            )
            withdrawals.complete(
                conn,
                w,
                treasury=self.treasury,
                tx_hash=w.tx_hash or "",
                log_index=log_index,
                actor=self.actor,
            )
        return _result(w, withdrawals.COMPLETED)

    # -- recovering a `sending` row --------------------------------------------------------

    def _receipt(self, tx_hash: str) -> Any:
        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None

    def _known(self, tx_hash: str) -> bool:
        try:
            self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return False
        return True

    def _resolve(self, w: Withdrawal) -> PayoutResult:
        assert w.tx_hash is not None and w.raw_tx is not None and w.chain_nonce is not None
        receipt = self._receipt(w.tx_hash)
        if receipt is not None:
            return self._finish(w, receipt)
        if self._known(w.tx_hash):
            return self._await(w)
        mined_nonce = int(self.w3.eth.get_transaction_count(self.treasury, "latest"))
        if w.chain_nonce < mined_nonce:
            receipt = self._receipt(w.tx_hash)  # mined in the meantime?
            if receipt is not None:
                return self._finish(w, receipt)
            reason = (
                f"treasury nonce {w.chain_nonce} was used by another transaction; "
                "this transfer was never mined and never will be"
            )
            with self.engine.begin() as conn:
                withdrawals.fail(conn, w, reason, actor=self.actor)
            return _result(w, withdrawals.FAILED, reason)
        try:
            self.w3.eth.send_raw_transaction(w.raw_tx)
        except Exception as exc:
            if not self._known(w.tx_hash):
                return _result(w, withdrawals.SENDING, f"rebroadcast failed: {exc}")
        return self._await(w)
