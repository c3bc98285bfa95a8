"""The channel manager of `402claw serve`: claim vouchers, settle claims, book both.

Vouchers are promises until claimed: the escrow pays a receiver only what was claimed, and a
payer's timed withdrawal takes whatever is unclaimed when its delay ends. So a background
thread claims every `channel_claim_seconds` and settles every `channel_settle_seconds`, for
every receiver with channels in the storage, with the SDK's
`BatchSettlementChannelManagerSync` (one per receiver); and every `watch_seconds` it reads
the escrow's `WithdrawInitiated` logs of the channels holding unclaimed vouchers, and claims
those channels at once (`watch`), so a payer's withdrawal never outruns a long claim
interval. Without an RPC URL there is no watch, and `PaymentConfig` keeps the claim
interval at most a third of the withdrawal delay instead.

Only one process per database runs this loop: the holder of the `channel-manager` lease
(`lease.Lease`), renewed before every round and released on stop. The storage
is durable, so vouchers accepted before a crash are claimed after the restart. Each claim is
then booked from the escrow's `Claimed` logs (`ledger.channels.sync_claims`, keyed on the
log): receivables become withdrawable money. The settle's transfer into the treasury is
booked by `reconcile`, like any treasury transfer.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from x402.mechanisms.evm.batch_settlement.errors import ERR_NOTHING_TO_SETTLE
from x402.mechanisms.evm.batch_settlement.server.channel_manager_common import ClaimOptions
from x402.mechanisms.evm.batch_settlement.server.storage import Channel

from claw402.payments.channels.lease import Lease
from claw402.payments.channels.schema import payment_channels
from claw402.payments.channels.terms import ChannelSchemes

log = logging.getLogger(__name__)
LEASE_SECONDS = 15.0
_C = payment_channels.c


@dataclass
class Round:
    """What one claim or settle pass did, per receiver."""

    claims: list[dict[str, Any]] = field(default_factory=list)
    settles: list[dict[str, Any]] = field(default_factory=list)
    refunds: list[dict[str, Any]] = field(default_factory=list)
    booked: int = 0
    errors: list[str] = field(default_factory=list)


class ChannelManager:
    def __init__(
        self, channels: ChannelSchemes, *, watch_seconds: float = 2.0, lease: Lease | None = None
    ) -> None:
        self.channels = channels
        self.config = channels.config
        self.watch_seconds = watch_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._w3: Any = None
        self._watched_to: int | None = None  # the last block whose withdrawals were read
        self.withdrawing: set[str] = set()  # channels whose payer started a withdrawal
        self.rounds = 0  # rounds run while holding the lease (a gauge)
        # a dead holder's lease is taken over within LEASE_SECONDS; the loop renews it 3x as often
        self.lease = lease or Lease(channels.engine, "channel-manager", LEASE_SECONDS)

    def receivers(self) -> list[str]:
        """Every receiver with a channel in this token (the treasury, creators' wallets)."""
        with self.channels.engine.connect() as conn:
            rows = conn.execute(
                select(_C.receiver)
                .where(_C.token == self.config.asset.lower())
                .distinct()
                .order_by(_C.receiver)
            ).scalars()
            return list(rows)

    def claim(self) -> Round:
        done = Round()
        for address in self.receivers():
            try:
                receiver = self.channels.receiver(address)
                for result in receiver.manager.claim(ClaimOptions(max_claims_per_batch=100)):
                    done.claims.append(
                        {"receiver": address, "vouchers": result.vouchers,
                         "transaction": result.transaction}
                    )  # fmt: skip
            except Exception as exc:  # one receiver's failure must not stop the others
                done.errors.append(f"claim for {address}: {exc}")
        done.booked = self.book()
        return done

    def watch(self) -> Round:
        """Claim now every channel with unclaimed vouchers whose payer started a withdrawal."""
        done = Round()
        w3 = self._web3()
        if w3 is None:
            return done
        from claw402.ledger.channels import withdrawals_initiated

        try:
            latest = int(w3.eth.block_number)
            start = (
                max(0, latest - self.config.channel_withdraw_delay)  # older ones are too late
                if self._watched_to is None
                else self._watched_to + 1
            )
            if start <= latest:
                self.withdrawing |= withdrawals_initiated(w3, self._unclaimed(), start, latest)
            self._watched_to = latest
        except Exception as exc:  # the node is unreachable: try again next round
            done.errors.append(f"withdrawal watch: {exc}")
            return done
        if not self.withdrawing:
            return done
        for address in self.receivers():
            try:
                manager = self.channels.receiver(address).manager
                chosen = ClaimOptions(
                    max_claims_per_batch=100, select_claim_channels=self._withdrawn
                )
                for result in manager.claim(chosen):
                    done.claims.append(
                        {"receiver": address, "vouchers": result.vouchers,
                         "transaction": result.transaction, "withdrawal": True}
                    )  # fmt: skip
            except Exception as exc:
                done.errors.append(f"claim for a withdrawal to {address}: {exc}")
        if done.claims:
            done.booked = self.book()
        return done

    def _withdrawn(self, channels: list[Channel], _context: Any) -> list[Channel]:
        return [c for c in channels if c.channel_id.lower() in self.withdrawing]

    def _unclaimed(self) -> list[str]:
        """Channels of this token holding vouchers not yet claimed (the ones at risk)."""
        with self.channels.engine.connect() as conn:
            rows = conn.execute(
                select(_C.channel_id).where(
                    _C.token == self.config.asset.lower(),
                    _C.charged_cumulative_amount > _C.total_claimed,
                )
            ).scalars()
            return list(rows)

    def settle(self) -> Round:
        done = Round()
        for address in self.receivers():
            try:
                result = self.channels.receiver(address).manager.settle()
                done.settles.append({"receiver": address, "transaction": result.transaction})
            except RuntimeError as exc:
                if ERR_NOTHING_TO_SETTLE not in str(exc):
                    done.errors.append(f"settle for {address}: {exc}")
            except Exception as exc:
                done.errors.append(f"settle for {address}: {exc}")
        return done

    def refund(self, channel_ids: list[str] | None = None) -> Round:
        """Return the unspent deposits (after claiming what was spent) of these channels."""
        done = Round()
        for address in self.receivers():
            try:
                manager = self.channels.receiver(address).manager
                for result in manager.refund(channel_ids):
                    done.refunds.append(
                        {"receiver": address, "channel": result.channel,
                         "transaction": result.transaction}
                    )  # fmt: skip
            except Exception as exc:
                done.errors.append(f"refund for {address}: {exc}")
        done.booked = self.book()
        return done

    def book(self) -> int:
        """Post the escrow's claims of channels with unclaimed vouchers (needs an RPC URL)."""
        w3 = self._web3()
        if w3 is None:
            return 0
        from claw402.ledger.channels import sync_claims

        return sync_claims(self.channels.engine, w3, self.config.network)

    def _web3(self) -> Any:
        if not self.config.rpc_url:
            return None
        if self._w3 is None:
            from web3 import Web3

            self._w3 = Web3(Web3.HTTPProvider(self.config.rpc_url))
        return self._w3

    # -- the background thread ---------------------------------------------------------------

    def start(self) -> ChannelManager:
        self._thread = threading.Thread(target=self._run, name="claw402-channels", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            self.lease.release()
        except Exception as exc:  # the database is gone: the lease expires on its own
            log.warning("channels: could not release the manager lease: %s", exc)

    def _run(self) -> None:
        jobs = [
            (self.config.channel_claim_seconds, self.claim),
            (self.config.channel_settle_seconds, self.settle),
        ]
        if self.config.rpc_url:
            jobs.append((self.watch_seconds, self.watch))
        tick = min(*(every for every, _ in jobs), self.lease.seconds / 3)
        due = [every for every, _ in jobs]
        elapsed = 0.0
        while not self._stop.wait(tick):
            elapsed += tick
            try:
                held = self.lease.acquire()
            except Exception as exc:
                log.warning("channels: the manager lease: %s", exc)
                continue
            if not held:  # another process runs the channel manager of this database
                continue
            self.rounds += 1
            for n, (every, job) in enumerate(jobs):
                if elapsed + 1e-9 < due[n]:
                    continue
                due[n] += every * max(1, int((elapsed - due[n]) // every) + 1)
                for error in job().errors:
                    log.warning("channels: %s", error)
