"""The SDK's batch-settlement server scheme, one per receiver, over the shared SQL storage.

A receiver is a payTo: the platform treasury (every treasury-paid tenant shares its channels,
so one deposit pays for all of them) or a creator's own wallet. Each receiver gets a
`BatchSettlementEvmScheme` on `SqlChannelStorage(engine, receiver=..., token=...)` and an
`x402ResourceServerSync` it is registered with: the resource server runs the scheme's hooks
in the SDK's own order (bind + snapshot before verify, the per-channel reservation after it,
the local voucher commit in place of a settle, deposit bookkeeping after the facilitator's
settle), so our code only decides what to do with each outcome. The sync flavour because the
storage is blocking SQL: the paywall calls it from a worker thread, never on the event loop.

`receiverAuthorizer` comes from the facilitator's `/supported` (delegated authorization: the
facilitator signs claims and refunds for channels naming it). It is fetched once, on a
thread (never on the event loop: a hung facilitator must not stall the gateway); while it
cannot be learned, tenants offer `exact` alone and the lookup is retried.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from eth_utils import to_checksum_address
from sqlalchemy import Engine
from x402 import x402ResourceServerSync
from x402.http import HTTPFacilitatorClientSync
from x402.mechanisms.evm.batch_settlement.server import (
    BatchSettlementChannelManagerSync,
    BatchSettlementEvmScheme,
    BatchSettlementEvmSchemeServerConfig,
    ChannelManagerConfigSync,
)
from x402.schemas import PaymentRequirements, SupportedKind

from claw402.facilitator.client import facilitator_config
from claw402.payments.channels.lane import VoucherLane
from claw402.payments.channels.storage import SqlChannelStorage
from claw402.payments.codec import CHANNEL_SCHEME
from claw402.payments.config import PaymentConfig

_RETRY_SECONDS = 5.0


@dataclass
class Receiver:
    """One payTo's scheme, the resource server running its hooks, its channel manager, and
    the fast lane for vouchers on its fresh channels."""

    address: str
    scheme: BatchSettlementEvmScheme
    server: x402ResourceServerSync
    manager: BatchSettlementChannelManagerSync
    lane: VoucherLane

    @property
    def storage(self) -> SqlChannelStorage:
        storage = self.scheme.get_storage()
        assert isinstance(storage, SqlChannelStorage)
        return storage


class ChannelSchemes:
    """Per-receiver schemes for one payment config; thread-safe, built on first use."""

    def __init__(
        self,
        config: PaymentConfig,
        engine: Engine,
        facilitator: HTTPFacilitatorClientSync | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.facilitator = facilitator or HTTPFacilitatorClientSync(
            facilitator_config(config.facilitator_url, config.facilitator_api_key)
        )
        self._receivers: dict[str, Receiver] = {}
        self._lock = threading.Lock()
        self._authorizer: str | None = None
        self._tried_at = float("-inf")
        self._lookup: threading.Thread | None = None

    def close(self) -> None:
        self.facilitator.close()
        for receiver in self._receivers.values():
            receiver.lane.close()

    # -- the offer ---------------------------------------------------------------------------

    def authorizer(self, wait: float = 0.0) -> str | None:
        """The facilitator's receiverAuthorizer, or None while it is not known: starts a lookup
        (at most every few seconds) and waits up to `wait` seconds for it."""
        if self._authorizer is not None:
            return self._authorizer
        with self._lock:
            idle = self._lookup is None or not self._lookup.is_alive()
            if idle and time.monotonic() - self._tried_at >= _RETRY_SECONDS:
                self._tried_at = time.monotonic()
                self._lookup = threading.Thread(
                    target=self._look_up, name="claw402-channel-terms", daemon=True
                )
                self._lookup.start()
            lookup = self._lookup
        if wait and lookup is not None:
            lookup.join(wait)
        return self._authorizer

    def _look_up(self) -> None:
        try:
            supported = self.facilitator.get_supported()
        except Exception:  # unreachable or refusing: offer exact until it answers
            return
        for kind in supported.kinds:
            extra = kind.extra or {}
            if kind.scheme == CHANNEL_SCHEME and kind.network == self.config.network:
                found = extra.get("receiverAuthorizer")
                if isinstance(found, str):
                    self._authorizer = to_checksum_address(found)

    def requirements(
        self, amount: int, pay_to: str, extra: dict[str, str]
    ) -> PaymentRequirements | None:
        """The batch-settlement terms for one price and payTo (None: channels unavailable)."""
        authorizer = self.authorizer()
        if authorizer is None:
            return None
        c = self.config
        base = PaymentRequirements(
            scheme=CHANNEL_SCHEME,
            network=c.network,
            asset=c.asset,
            amount=str(amount),
            pay_to=pay_to,
            max_timeout_seconds=c.max_timeout_seconds,
            extra=dict(extra),
        )
        kind = SupportedKind(
            x402_version=2,
            scheme=CHANNEL_SCHEME,
            network=c.network,
            extra={"receiverAuthorizer": authorizer},
        )
        return self._scheme(pay_to).enhance_payment_requirements(base, kind, [])

    # -- receivers ---------------------------------------------------------------------------

    def built(self, address: str) -> Receiver | None:
        """The receiver for `address` if it was built already (no I/O: for the event loop)."""
        return self._receivers.get(address.lower())

    def receiver(self, address: str) -> Receiver:
        """The receiver for `address`; its server is initialized (one `/supported` call)."""
        key = address.lower()
        found = self._receivers.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._receivers.get(key)
            if found is None:
                scheme = self._scheme(address)
                server = x402ResourceServerSync(self.facilitator)
                server.register(self.config.network, scheme)
                server.initialize()
                manager = BatchSettlementChannelManagerSync(
                    ChannelManagerConfigSync(  # by hand: anvil has no default asset
                        scheme=scheme,
                        facilitator=self.facilitator,
                        receiver=scheme.get_receiver_address(),
                        token=self.config.asset,
                        network=self.config.network,
                    )
                )
                storage = scheme.get_storage()
                assert isinstance(storage, SqlChannelStorage)
                lane = VoucherLane(storage, self.config.network, scheme.get_onchain_state_ttl_ms())
                found = Receiver(address, scheme, server, manager, lane)
                self._receivers[key] = found
        return found

    def _scheme(self, address: str) -> BatchSettlementEvmScheme:
        found = self._receivers.get(address.lower())
        if found is not None:
            return found.scheme
        storage = SqlChannelStorage(self.engine, receiver=address, token=self.config.asset)
        return BatchSettlementEvmScheme(
            address,
            BatchSettlementEvmSchemeServerConfig(
                storage=storage, withdraw_delay=self.config.channel_withdraw_delay
            ),
        )
