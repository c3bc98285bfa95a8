"""A paid `query` tool call through the x402 SDK's MCP payment wrapper (`create_payment_wrapper`).

The MCP endpoint dispatches a tool call through the gateway's steps like an HTTP call; at the
paywall, an `exact` payment that came by MCP runs as `McpAttempt`: the paywall's own steps up
to the claim (decode, terms, query check, payment-identifier replay, the nonce claim and the
retry of a pending payment), then the SDK's wrapper around the query, with an
`x402ResourceServer` whose hooks are the rest of the paywall's order:

    wrapper: verify -> on_after_verify: `payment_verified` event
                    -> on_verify_failure: the claim released (counted unless the facilitator
                       was unreachable: 503, as over HTTP)
             handler: the query (the tenant runtime, buffered)
                    -> not 200: on_verified_payment_canceled: claim released, nothing charged
             settle -> on_after_settle: booked in the ledger with the claim, in one transaction
                    -> on_settle_failure: refused -> the chain asked, as over HTTP, else released
                    -> raised (the SDK runs no hook for it, see `_Facilitator`): unreachable ->
                       released, 503; else the outcome is unknown -> claim kept `pending` (202
                       "do not pay again"), never the wrapper's "settlement failed" 402

The wrapper's result (its 402 `PaymentRequired`, or the data with the receipt in
`_meta["x402/payment-response"]`) becomes the paywall's answer, which the MCP layer maps back.
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any

import anyio
import orjson
from starlette.concurrency import run_in_threadpool
from x402 import x402ResourceServer
from x402.mcp import MCP_PAYMENT_META_KEY, MCP_PAYMENT_RESPONSE_META_KEY
from x402.mcp.server_async import PaymentWrapperConfig, create_payment_wrapper
from x402.mcp.types import MCPToolContext, MCPToolResult
from x402.mechanisms.evm.exact import ExactEvmServerScheme
from x402.schemas import (
    PaymentPayload,
    PaymentRequirements,
    ResourceInfo,
    SettleResponse,
    SupportedKind,
    SupportedResponse,
    VerifyResponse,
)
from x402.schemas.hooks import (
    RecoveredSettleResult,
    SettleContext,
    SettleFailureContext,
    SettleResultContext,
    VerifiedPaymentCanceledContext,
    VerifyFailureContext,
    VerifyResultContext,
)

from claw402.events.kinds import PAYMENT_FAILED, PAYMENT_PENDING, PAYMENT_SETTLED, PAYMENT_VERIFIED
from claw402.payments import answers, recovery
from claw402.payments.attempt import Attempt
from claw402.payments.facilitator import FacilitatorUnavailable, SettlementUnknown
from claw402.tenant_api.answer import Answer

if TYPE_CHECKING:
    from claw402.payments.facilitator import FacilitatorClient
    from claw402.tenant_api.call import Produce

# The ASGI scope extension by which the MCP endpoint asks the paywall for this attempt.
ATTEMPT_EXTENSION = "claw402.attempt"


class _Facilitator:
    """The paywall's facilitator client as the SDK's resource server calls it. What it
    supports is the paywall's own terms (no `/supported` round trip per call).

    `settle_error` keeps what a settle raised: the SDK's `settle_payment` lets an exception
    from the facilitator call escape without its `on_settle_failure` hooks (only a refused
    settlement reaches them), and its wrapper then answers "settlement failed" (a 402) even
    when the settlement may have been broadcast; the attempt reads the error here instead.
    """

    def __init__(self, client: FacilitatorClient, requirements: PaymentRequirements) -> None:
        self._client = client
        self.settle_error: Exception | None = None
        kind = SupportedKind(
            x402_version=2, scheme=requirements.scheme, network=requirements.network
        )
        self._supported = SupportedResponse(kinds=[kind], extensions=[], signers={})

    def get_supported(self) -> SupportedResponse:
        return self._supported

    async def verify(
        self, payload: PaymentPayload, requirements: PaymentRequirements
    ) -> VerifyResponse:
        return await self._client.verify(payload, requirements)

    async def settle(
        self, payload: PaymentPayload, requirements: PaymentRequirements
    ) -> SettleResponse:
        try:
            return await self._client.settle(payload, requirements)
        except Exception as exc:
            self.settle_error = exc
            raise


class McpAttempt(Attempt):
    """`Attempt` with verify, query and settle run by the SDK's MCP payment wrapper."""

    _answer: Answer | None = None  # what a hook decided the paywall answers (503, 202)
    _failure: BaseException | None = None  # a booking that failed after the money moved
    _settlement: SettleResponse | None = None  # the receipt, once booked
    _settling = False  # a settle was asked for: from here money may have moved
    _produced: Answer | None = None  # the query's answer
    _recovered = False  # settlement refused, yet the chain shows the transfer: booked from it

    async def _pay(self, produce: Produce) -> Answer:
        async def query(args: dict[str, Any], context: MCPToolContext) -> MCPToolResult:
            answer = self._produced = await produce()
            text = bytes(answer.body).decode("utf-8", "replace")
            return MCPToolResult(
                content=[{"type": "text", "text": text}], is_error=answer.status_code != 200
            )

        r = self.offer.requirements
        config = PaymentWrapperConfig(
            accepts=[r], resource=ResourceInfo(url=self.call.resource_url)
        )
        facilitator = _Facilitator(self.paywall.facilitator, r)
        paid = create_payment_wrapper(self._server(facilitator), config)(query)
        meta = {MCP_PAYMENT_META_KEY: self.payload.model_dump(by_alias=True, exclude_none=True)}
        try:
            result = await paid({}, {"_meta": meta, "toolName": "query"})
            if self._failure is not None:  # settled, not booked: the wrapper says "failed"
                raise self._failure
        except BaseException:
            if not self._settling:
                await self._release()
                raise
            # A settle may have been broadcast: keep the claim for a retry or the reconciler.
            with anyio.CancelScope(shield=True):
                await self._mark_pending(self.tx_hash)
            raise
        unsettled = self._settlement is None and self.claim_id is not None
        if self._answer is None and self._settling and unsettled:
            self._answer = await self._unsettled(facilitator.settle_error)
        if self._answer is not None:
            return self._answer
        produced = self._produced
        if self._settlement is not None and produced is not None:
            assert result.meta and result.meta[MCP_PAYMENT_RESPONSE_META_KEY]["success"]
            reason = "recovered_from_chain" if self._recovered else None
            return await self._receipted(produced, self._settlement, reason=reason)
        await self._release(failed=True)  # whatever stopped it, no money moved
        if produced is not None and produced.status_code != 200:
            return produced
        return self._required(result)

    async def _unsettled(self, error: Exception | None) -> Answer:
        """A settle asked for, neither booked nor refused: unreachable before sending (503,
        released), else its outcome is unknown (202, the claim kept pending)."""
        if isinstance(error, FacilitatorUnavailable):
            await self._release()
            return self._unavailable(error)
        tx_hash = error.tx_hash if isinstance(error, SettlementUnknown) else None
        return await self._left_pending(tx_hash, str(error or "settlement outcome unknown"))

    def _server(self, facilitator: _Facilitator) -> x402ResourceServer:
        r = self.offer.requirements
        server = x402ResourceServer(facilitator)
        server.register(r.network, ExactEvmServerScheme())
        server.on_after_verify(self._verified)
        server.on_verify_failure(self._verify_failed)
        server.on_verified_payment_canceled(self._canceled)
        server.on_before_settle(self._settle_asked)
        server.on_after_settle(self._book)
        server.on_settle_failure(self._settle_failed)
        server.initialize()
        return server

    # -- the hooks ----------------------------------------------------------------------------

    async def _verified(self, context: VerifyResultContext) -> None:
        self.verified = True
        self._event(PAYMENT_VERIFIED, 200, started=self.started)

    async def _verify_failed(self, context: VerifyFailureContext) -> None:
        error = context.error
        if isinstance(error, FacilitatorUnavailable):
            await self._release()
            self._answer = self._unavailable(error)
            return
        await self._release(failed=True)
        self._event(PAYMENT_FAILED, 402, str(error) or "invalid_payment")

    async def _canceled(self, context: VerifiedPaymentCanceledContext) -> None:
        await self._release(failed=True)
        status = self._produced.status_code if self._produced is not None else 500
        self._event(PAYMENT_FAILED, status, "not_charged_query_failed")

    async def _settle_asked(self, context: SettleContext) -> None:
        self._settling = True

    async def _book(self, context: SettleResultContext) -> None:
        """Book a settlement (once: a recovered one was booked from the chain already)."""
        if self._settlement is not None:
            return
        settlement, r = context.result, self.offer.requirements
        self.tx_hash = settlement.transaction
        assert self.claim_id is not None
        try:
            await run_in_threadpool(
                self.store.settle,
                self.claim_id,
                self._settled_payment(settlement),
                self.payment.digest,
            )
        except BaseException as exc:
            self._failure = exc
            raise
        self._settlement = settlement.model_copy(
            update={"network": settlement.network or r.network,
                    "payer": settlement.payer or self.payment.payer}
        )  # fmt: skip

    async def _settle_failed(self, context: SettleFailureContext) -> RecoveredSettleResult | None:
        """A refused settlement (an exception from the facilitator call is `_unsettled`'s)."""
        error = context.error
        if isinstance(error, FacilitatorUnavailable | SettlementUnknown):
            self._answer = await self._unsettled(error)
            return None
        reason = str(error) or "settlement_failed"
        if self.paywall.chain is not None:  # refused, yet the authorization may have been used
            outcome = await recovery.chain_outcome(self, time.time(), None)
            if outcome is None:  # cannot tell: never "pay again" while it may have been paid
                self._answer = await self._left_pending(None, reason)
                return None
            if outcome.transfer is not None:
                claim_id, transfer = self.claim_id, outcome.transfer
                assert claim_id is not None
                await run_in_threadpool(
                    self.store.settle_from_chain,
                    claim_id,
                    transfer,
                    self.call.resource_url,
                    self.payment.digest,
                )
                self.claim_id, self._recovered = None, True
                await run_in_threadpool(self.store.mark_served, claim_id)
                self._settlement = SettleResponse(
                    success=True,
                    transaction=transfer.tx_hash,
                    network=self.offer.requirements.network,
                    payer=self.payment.payer,
                )
                return RecoveredSettleResult(result=self._settlement)
        await self._release(failed=True)
        self._event(PAYMENT_FAILED, 402, reason)
        return None

    # -- the answer ---------------------------------------------------------------------------

    def _required(self, result: MCPToolResult) -> Answer:
        """The wrapper's 402 (`PaymentRequired`, with a failed receipt when settlement failed)
        as the paywall's answer: the header the MCP layer turns back into structuredContent."""
        required = dict(result.structured_content or {})
        if "accepts" not in required:  # the wrapper's own failure: nothing was charged
            return answers.error_answer(
                500, "payment_error", self.call.request_id, "the payment could not be processed"
            )
        receipt = required.get(MCP_PAYMENT_RESPONSE_META_KEY)  # kept: the wrapper's wire form
        headers = {"PAYMENT-REQUIRED": base64.b64encode(orjson.dumps(required)).decode()}
        if receipt is not None:
            headers["PAYMENT-RESPONSE"] = base64.b64encode(orjson.dumps(receipt)).decode()
        error = str(required.get("error") or "payment_required")
        return answers.error_answer(
            402, "payment_required", self.call.request_id, error, headers=headers
        )


__all__ = ["ATTEMPT_EXTENSION", "PAYMENT_PENDING", "PAYMENT_SETTLED", "McpAttempt"]
