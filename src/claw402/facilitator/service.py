"""Verify and settle x402 `exact` and `batch-settlement` payments on one EVM chain, via the SDK.

The SDK does the cryptography and the chain work (`x402FacilitatorSync` with
`ExactEvmFacilitatorScheme` and `BatchSettlementEvmFacilitator`); this class adds the policy a
public facilitator needs on top:
- one network only: the SDK registers `eip155:31337` as the pattern `eip155:*`, so without
  a check it would happily "verify" a Base mainnet payment against the local RPC;
- `simulate_in_settle=True`: settle re-simulates `transferWithAuthorization`, so a replayed
  authorization is refused before broadcast instead of reverting on chain and burning gas;
- one settle at a time per authorization (an `exact` payment or a channel deposit): two
  concurrent settles of the same payload would both pass simulation and both broadcast; the
  second is refused at once instead;
- a batch-settlement payload the SDK cannot parse is an invalid payment, not a 500;
- the Bazaar: a payment that verifies or settles catalogues the resource its 402 declared
  (`catalogue.DiscoveryCatalogue`, listed at `GET /discovery/resources`), kept in the
  facilitator's own database (`settings.database_url`; none: a throwaway one).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from x402 import x402FacilitatorSync
from x402.extensions.bazaar import BAZAAR
from x402.mechanisms.evm.batch_settlement.authorizer_signer import LocalAuthorizerSigner
from x402.mechanisms.evm.batch_settlement.constants import SCHEME_BATCH_SETTLEMENT
from x402.mechanisms.evm.batch_settlement.facilitator import BatchSettlementEvmFacilitator
from x402.mechanisms.evm.constants import (
    ERR_FAILED_TO_VERIFY_SIGNATURE,
    ERR_TRANSACTION_FAILED,
    ERR_TRANSACTION_SIMULATION_FAILED,
)
from x402.mechanisms.evm.exact import ExactEvmFacilitatorScheme, ExactEvmSchemeConfig
from x402.mechanisms.evm.types import is_permit2_payload
from x402.schemas import (
    PaymentPayload,
    PaymentRequirements,
    SettleResponse,
    SupportedResponse,
    VerifyResponse,
)

from claw402.facilitator.catalogue import DiscoveryCatalogue
from claw402.facilitator.catalogue_store import open_catalogue_db
from claw402.facilitator.protocol import (
    batch_payload_problem,
    check_evm_requirements,
    eip3009_payload_problem,
)
from claw402.facilitator.settings import FacilitatorSettings
from claw402.facilitator.signer import FastSigner

logger = logging.getLogger("claw402.facilitator")

SCHEME = "exact"
BATCH_SCHEME = SCHEME_BATCH_SETTLEMENT
SCHEMES = (SCHEME, BATCH_SCHEME)
# Reasons of our own; the SDK's (e.g. `invalid_exact_evm_nonce_already_used`) pass through.
UNSUPPORTED_NETWORK = "unsupported_network"
UNSUPPORTED_SCHEME = "unsupported_scheme"
INVALID_PAYLOAD = "invalid_payload"
SETTLEMENT_IN_PROGRESS = "settlement_in_progress"


# The SDK reports a transport failure inside these steps as an invalid or failed payment.
_MAYBE_TRANSPORT = frozenset(
    {ERR_FAILED_TO_VERIFY_SIGNATURE, ERR_TRANSACTION_SIMULATION_FAILED, ERR_TRANSACTION_FAILED}
)


class ChainMismatch(RuntimeError):
    """The RPC serves another chain than the configured network."""


class RpcUnavailable(RuntimeError):
    """The chain RPC does not answer: the payment was not judged (HTTP 502, not a 402)."""


class FacilitatorService:
    """Stateless apart from the in-flight settle set; safe to call from many threads."""

    def __init__(self, settings: FacilitatorSettings) -> None:
        self.network = settings.network
        self.rpc_url = settings.rpc_url
        self.signer = FastSigner(
            settings.private_key,
            settings.rpc_url,
            poll_interval=settings.receipt_poll_interval,
            confirmation_timeout_seconds=settings.confirmation_timeout,
        )
        # Signs ClaimBatch and Refund for channels whose receiverAuthorizer is this address
        # (advertised in /supported as extra.receiverAuthorizer).
        self.authorizer = LocalAuthorizerSigner(
            _hex_key(settings.authorizer_private_key or settings.private_key)
        )
        rpc_chain_id = self.signer.get_chain_id()
        if rpc_chain_id != settings.chain_id:
            raise ChainMismatch(
                f"{settings.rpc_url} serves chain {rpc_chain_id}, not {settings.network}"
            )
        scheme = ExactEvmFacilitatorScheme(
            self.signer, ExactEvmSchemeConfig(simulate_in_settle=True)
        )
        batch = BatchSettlementEvmFacilitator(self.signer, authorizer_signer=self.authorizer)
        self._sdk = (
            x402FacilitatorSync()
            .register([settings.network], scheme)
            .register([settings.network], batch)
            .register_extension(BAZAAR)
        )
        self.catalogue = DiscoveryCatalogue(open_catalogue_db(settings.database_url))
        self._in_flight: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        """The account that submits settlements and pays their gas."""
        return self.signer.address

    def supported(self) -> SupportedResponse:
        return self._sdk.get_supported()

    def verify(self, payload: PaymentPayload, requirements: PaymentRequirements) -> VerifyResponse:
        """Check a payment without moving funds; raises `BadRequest` for bad requirements."""
        problem = self._precheck(payload, requirements)
        if problem is not None:
            reason, message = problem
            return VerifyResponse(
                is_valid=False,
                invalid_reason=reason,
                invalid_message=message,
                payer=_payer(payload),
            )
        result = self._sdk.verify(payload, requirements)
        if not result.is_valid:
            self._raise_if_rpc_down(result.invalid_reason, result.invalid_message)
        else:
            self._catalogue(payload, requirements)
        return result

    def settle(self, payload: PaymentPayload, requirements: PaymentRequirements) -> SettleResponse:
        """Re-verify (with simulation), broadcast `transferWithAuthorization`, await receipt."""
        problem = self._precheck(payload, requirements)
        if problem is not None:
            reason, message = problem
            return self._refusal(payload, reason, message)
        started = time.perf_counter()
        with self._claim(payload) as claimed:
            if not claimed:
                return self._refusal(
                    payload, SETTLEMENT_IN_PROGRESS, "this authorization is being settled"
                )
            result = self._sdk.settle(payload, requirements)
        if not result.success and not result.transaction:
            self._raise_if_rpc_down(result.error_reason, result.error_message)
        if result.success:
            self._catalogue(payload, requirements)
        logger.info(
            "settle %s payer=%s amount=%s tx=%s reason=%s in %.1f ms",
            "ok" if result.success else "failed",
            result.payer,
            requirements.amount,
            result.transaction or "-",
            result.error_reason or "-",
            (time.perf_counter() - started) * 1000,
        )
        return result

    def _catalogue(self, payload: PaymentPayload, requirements: PaymentRequirements) -> None:
        """A discovery declaration never fails the payment it came with."""
        try:
            self.catalogue.learn(payload, requirements)
        except Exception:
            logger.exception("could not catalogue %s", payload.resource)

    def _precheck(
        self, payload: PaymentPayload, requirements: PaymentRequirements
    ) -> tuple[str, str] | None:
        for where, network in (
            ("paymentRequirements", requirements.network),
            ("paymentPayload.accepted", payload.accepted.network),
        ):
            if network != self.network:
                return UNSUPPORTED_NETWORK, (
                    f"this facilitator settles on {self.network} only; "
                    f"{where}.network is {network!r}"
                )
        for where, scheme in (
            ("paymentRequirements", requirements.scheme),
            ("paymentPayload.accepted", payload.accepted.scheme),
        ):
            if scheme not in SCHEMES:
                return (
                    UNSUPPORTED_SCHEME,
                    f"the schemes supported are {', '.join(SCHEMES)}; {where}.scheme is {scheme!r}",
                )
        if requirements.scheme != payload.accepted.scheme:
            return UNSUPPORTED_SCHEME, "paymentPayload.accepted.scheme is not the required one"
        if requirements.scheme == BATCH_SCHEME:
            # Claim and settle requirements are the server's own (amount 0, no timeout).
            check_evm_requirements(requirements, timeout_required=False)
            reason = batch_payload_problem(payload.payload)
            return None if reason is None else (INVALID_PAYLOAD, reason)
        check_evm_requirements(requirements)
        if not is_permit2_payload(payload.payload):
            reason = eip3009_payload_problem(payload.payload)
            if reason is not None:
                return INVALID_PAYLOAD, reason
        return None

    def _raise_if_rpc_down(self, reason: str | None, message: str | None) -> None:
        if reason in _MAYBE_TRANSPORT and not self.signer.rpc_reachable():
            raise RpcUnavailable(f"{self.rpc_url} is unreachable ({message or reason})")

    @contextmanager
    def _claim(self, payload: PaymentPayload) -> Iterator[bool]:
        """Hold the (payer, nonce) of an EIP-3009 payload, or a deposit's authorization, while
        it settles."""
        key = _in_flight_key(payload.payload)
        if key is None:  # Permit2, claim, settle, refund: nothing a second broadcast would burn
            yield True
            return
        with self._lock:
            if key in self._in_flight:
                claimed = False
            else:
                self._in_flight.add(key)
                claimed = True
        try:
            yield claimed
        finally:
            if claimed:
                with self._lock:
                    self._in_flight.discard(key)

    def _refusal(self, payload: PaymentPayload, reason: str, message: str) -> SettleResponse:
        return SettleResponse(
            success=False,
            error_reason=reason,
            error_message=message,
            payer=_payer(payload),
            transaction="",
            network=payload.accepted.network,
        )


def _payer(payload: PaymentPayload) -> str | None:
    authorization = payload.payload.get("authorization")
    if isinstance(authorization, dict) and isinstance(authorization.get("from"), str):
        return authorization["from"]
    config = payload.payload.get("channelConfig")
    if isinstance(config, dict) and isinstance(config.get("payer"), str):
        return config["payer"]
    return None


def _in_flight_key(raw: dict) -> tuple[str, str] | None:
    authorization = raw.get("authorization")
    if isinstance(authorization, dict):
        return str(authorization["from"]).lower(), str(authorization["nonce"]).lower()
    if raw.get("type") == "deposit":
        erc3009 = raw["deposit"]["authorization"].get("erc3009Authorization")
        if isinstance(erc3009, dict):
            return str(raw["channelConfig"]["payer"]).lower(), str(erc3009["signature"]).lower()
    return None


def _hex_key(key: str) -> str:
    return key if key.startswith("0x") else "0x" + key
