"""Why `mcp.paid` keeps two steps out of the SDK's hooks: what the installed x402 SDK does,
pinned here so an SDK upgrade that changes it fails loudly (then the step can move into a
hook). A facilitator that must never be reached stands in for the real one: neither case gets
as far as a facilitator answer."""

from __future__ import annotations

import asyncio
from typing import Any

from x402 import x402ResourceServer
from x402.mcp import MCP_PAYMENT_META_KEY
from x402.mcp.server_async import PaymentWrapperConfig, create_payment_wrapper
from x402.mechanisms.evm.exact import ExactEvmServerScheme
from x402.schemas import PaymentPayload, PaymentRequirements, SupportedKind, SupportedResponse
from x402.schemas.hooks import AbortResult

TERMS = PaymentRequirements(
    scheme="exact", network="eip155:31337", asset="0x" + "11" * 20, amount="1000",
    pay_to="0x" + "22" * 20, max_timeout_seconds=60, extra={"name": "ClawUSD", "version": "1"},
)  # fmt: skip


class _Facilitator:
    def __init__(self, settle_error: Exception | None = None) -> None:
        self.settle_error = settle_error

    def get_supported(self) -> SupportedResponse:
        kind = SupportedKind(x402_version=2, scheme="exact", network=TERMS.network)
        return SupportedResponse(kinds=[kind], extensions=[], signers={})

    async def verify(self, payload: Any, requirements: Any) -> Any:
        from x402.schemas import VerifyResponse

        return VerifyResponse(is_valid=True, payer="0x" + "33" * 20)

    async def settle(self, payload: Any, requirements: Any) -> Any:
        assert self.settle_error is not None
        raise self.settle_error


def _call(server: x402ResourceServer) -> Any:
    server.register(TERMS.network, ExactEvmServerScheme())
    server.initialize()

    async def handler(args: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"content": [{"type": "text", "text": "the data"}]}

    paid = create_payment_wrapper(server, PaymentWrapperConfig(accepts=[TERMS]))(handler)
    payload = PaymentPayload(x402_version=2, payload={"signature": "0x"}, accepted=TERMS)
    meta = {MCP_PAYMENT_META_KEY: payload.model_dump(by_alias=True)}
    return asyncio.run(paid({}, {"_meta": meta, "toolName": "query"}))


def test_a_before_verify_abort_loses_its_reason() -> None:
    """So the nonce claim (`payment_replayed`) runs before the wrapper, not as a hook."""
    server = x402ResourceServer(_Facilitator())
    server.on_before_verify(lambda context: AbortResult(reason="payment_replayed"))
    result = _call(server)
    assert result.is_error and result.structured_content is None
    assert result.content == [{"type": "text", "text": "Internal Server Error"}]


def test_a_settle_that_raises_runs_no_settle_failure_hook() -> None:
    """So a settle whose outcome is unknown is read from the facilitator client
    (`mcp.paid._Facilitator.settle_error`): the wrapper alone would answer a 402."""
    seen: list[object] = []
    server = x402ResourceServer(_Facilitator(TimeoutError("settle sent, no answer")))
    server.on_settle_failure(seen.append)
    result = _call(server)
    assert seen == []
    assert result.is_error and "accepts" in result.structured_content  # "pay again"
    assert "settlement failed" in result.structured_content["error"].lower()
