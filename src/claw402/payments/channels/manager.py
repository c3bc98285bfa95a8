"""The channel manager of `402claw serve`: claim vouchers, settle claims, book both.

Vouchers are promises until claimed: the escrow pays a receiver only what was claimed, and a
payer's timed withdrawal takes whatever is unclaimed when its delay ends. So a background
thread claims every `channel_claim_seconds` (at most a third of the withdrawal delay, checked
by `PaymentConfig`: every voucher is claimed before any withdrawal started after it can
finish) and settles every `channel_settle_seconds`, for every receiver with channels in the
storage, with the SDK's `BatchSettlementChannelManagerSync` (one per receiver). The storage
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

from claw402.payments.channels.schema import payment_channels
from claw402.payments.channels.terms import ChannelSchemes

log = logging.getLogger(__name__)
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
    def __init__(self, channels: ChannelSchemes) -> None:
        self.channels = channels
        self.config = channels.config
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._w3: Any = None

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
        if not self.config.rpc_url:
            return 0
        from claw402.ledger.channels import sync_claims

        if self._w3 is None:
            from web3 import Web3

            self._w3 = Web3(Web3.HTTPProvider(self.config.rpc_url))
        return sync_claims(self.channels.engine, self._w3, self.config.network)

    # -- the background thread ---------------------------------------------------------------

    def start(self) -> ChannelManager:
        self._thread = threading.Thread(target=self._run, name="claw402-channels", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        claim_every = self.config.channel_claim_seconds
        settle_every = self.config.channel_settle_seconds
        next_claim, next_settle = claim_every, settle_every
        elapsed = 0.0
        tick = min(claim_every, settle_every)
        while not self._stop.wait(tick):
            elapsed += tick
            for due, job in ((next_claim, self.claim), (next_settle, self.settle)):
                if elapsed + 1e-9 < due:
                    continue
                done = job()
                for error in done.errors:
                    log.warning("channels: %s", error)
            if elapsed + 1e-9 >= next_claim:
                next_claim += claim_every
            if elapsed + 1e-9 >= next_settle:
                next_settle += settle_every
