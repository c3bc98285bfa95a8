"""`402claw mcp --gateway URL`: a local stdio MCP server that pays for a desktop agent.

Desktop agents speak MCP over stdio and hold no wallet. This server relays the gateway's
tools (`<URL>/mcp`, over streamable HTTP) and pays their 402s with the caller's key through
the x402 SDK's MCP client (`x402MCPSession`), within two caps: the most one call may cost
(`max_price`) and the most the whole session may spend (`max_total`, counted in what calls
were charged). A call the caps refuse is an error result that says which cap; nothing is
signed for it. Paid calls run one at a time, so two concurrent calls can never both fit in
the last of the budget.

Through a channel when the gateway offers one (`scheme`, as `402claw call`): one deposit,
then a voucher per call, the channel's state in the home folder. x402 2.25's MCP client runs
no payment-response hooks, so the relay runs them after each paid call (`ReceiptFollower`),
as the SDK's HTTP client does: the channel scheme records the charged total its next voucher
continues from, and a corrective 402 (the local record behind the server's) is recovered
from and the call made again, once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

import anyio
import httpx
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from x402 import x402Client
from x402.mcp import x402MCPSession
from x402.mcp.utils import convert_mcp_result, extract_payment_required_from_result
from x402.schemas import SettleResponse
from x402.schemas.hooks import PaymentResponseContext

from claw402.money import atomic_to_usd
from claw402.payments.channel_payer import ChannelTerms
from claw402.payments.client import PriceTooHigh, Scheme, payment_client

logger = logging.getLogger("claw402.mcp")


class SpendCapReached(RuntimeError):
    """The session's budget cannot cover the cheapest offer."""


class SpendCap:
    """The session's budget, as an x402 payment policy: offers above what is left are
    dropped; the chosen price is charged once its payment settled."""

    def __init__(self, max_total_atomic: int) -> None:
        if max_total_atomic < 0:
            raise ValueError("max_total must not be negative")
        self.max_total = max_total_atomic
        self.spent = 0
        self._chosen: int | None = None
        self._lock = threading.Lock()

    @property
    def left(self) -> int:
        return self.max_total - self.spent

    def policy(self, version: int, requirements: list[Any]) -> list[Any]:
        kept = [r for r in requirements if int(r.get_amount()) <= self.left]
        if not kept and requirements:
            cheapest = min(int(r.get_amount()) for r in requirements)
            raise SpendCapReached(
                f"spend cap reached: this call costs ${atomic_to_usd(cheapest)}, "
                f"${atomic_to_usd(self.left)} left of ${atomic_to_usd(self.max_total)}"
            )
        self._chosen = int(kept[0].get_amount()) if kept else None
        return kept

    def charge(self, settled: bool, charged: int | None = None) -> None:
        """After a paid call: count what it was charged (a channel's receipt says; else the
        chosen price) if its payment settled."""
        with self._lock:
            if settled and self._chosen is not None:
                self.spent += self._chosen if charged is None else min(charged, self._chosen)
            self._chosen = None


def mcp_url(gateway: str) -> str:
    """The gateway's (or a tenant's) MCP endpoint from what a person types."""
    url = gateway.rstrip("/")
    return url if url.endswith("/mcp") else url + "/mcp"


async def serve_stdio(
    gateway: str,
    private_key: str,
    *,
    max_price_atomic: int,
    cap: SpendCap,
    allowed_assets: Iterable[tuple[str, str]] = (),
    scheme: Scheme = "exact",
    channels: ChannelTerms | None = None,
) -> None:
    """Relay `gateway`'s MCP tools on stdin/stdout until the agent closes them."""
    client = payment_client(
        private_key, max_price_atomic, allowed_assets, scheme=scheme, channels=channels
    )
    client.register_policy(cap.policy)
    url = mcp_url(gateway)
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(30, read=300)) as http,
        streamable_http_client(url, http_client=http) as (read, write, _),
        ClientSession(read, write) as upstream,
    ):
        await upstream.initialize()
        paying = x402MCPSession(upstream, client)
        server = relay_server(upstream, paying, cap, ReceiptFollower(client))
        async with stdio_server() as (stdin, stdout):
            await server.run(stdin, stdout, server.create_initialization_options())


class ReceiptFollower:
    """Runs the x402 client's payment-response hooks after each paid call. The MCP session
    does not say which payload it sent, so the client's after-creation hook keeps it (paid
    calls run one at a time)."""

    def __init__(self, client: x402Client) -> None:
        self.client = client
        self._sent: Any = None
        client.on_after_payment_creation(self._created)

    async def _created(self, ctx: Any) -> None:
        self._sent = ctx.payment_payload

    async def after(self, result: Any) -> bool:
        """Feed the hooks the paid call's receipt (or its 402); True if they recovered the
        payer's state from a corrective 402, so the call may be made again."""
        payload, self._sent = self._sent, None
        if not result.payment_made or payload is None or payload.accepted is None:
            return False
        receipt = result.payment_response
        settled = receipt if isinstance(receipt, SettleResponse) else None
        raw = convert_mcp_result(result.raw_result)
        required = None if settled else extract_payment_required_from_result(raw)
        if settled is None and required is None:
            return False
        response = PaymentResponseContext(
            payment_payload=payload,
            requirements=payload.accepted,
            settle_response=settled,
            payment_required=required,
        )
        try:
            return await self.client.handle_payment_response(response) is not None
        except Exception:  # the call's answer (paid for) still goes to the agent
            logger.exception("the payment-response hooks failed after a paid call")
            return False


def relay_server(
    upstream: ClientSession,
    paying: x402MCPSession,
    cap: SpendCap,
    receipts: ReceiptFollower | None = None,
) -> Server:
    server: Server[Any, Any] = Server(
        "402claw-pay",
        instructions="The gateway's data tools; paid calls are made with your wallet within "
        f"${atomic_to_usd(cap.max_total)} for this session.",
    )
    one_at_a_time = anyio.Lock()

    @server.list_tools()
    async def list_tools() -> list[types.Tool]:
        return (await upstream.list_tools()).tools

    @server.call_tool(validate_input=False)  # the gateway validates, with its own schema
    async def call(name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        async with one_at_a_time:
            try:
                result = await paying.call_tool(name, arguments)
                if receipts is not None and await receipts.after(result):  # state mended
                    cap.charge(False)
                    result = await paying.call_tool(name, arguments)
                    await receipts.after(result)
            except (SpendCapReached, PriceTooHigh) as exc:
                cap.charge(False)
                return _refused(str(exc))
            receipt = result.payment_response if result.payment_made else None
            settled = bool(receipt is not None and getattr(receipt, "success", False))
            cap.charge(settled, _charged(receipt))
        if settled:
            logger.info("paid %s: $%s spent this session", name, atomic_to_usd(cap.spent))
        raw = result.raw_result
        return types.CallToolResult(
            content=list(raw.content),
            structuredContent=raw.structuredContent,
            isError=bool(raw.isError),
            _meta=raw.meta,
        )

    return server


def _charged(receipt: Any) -> int | None:
    """What a channel receipt says the call was charged (None: not a channel's)."""
    extra = getattr(receipt, "extra", None) or {}
    amount = extra.get("chargedAmount")
    return int(amount) if isinstance(amount, str | int) and str(amount).isdigit() else None


def _refused(message: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], isError=True
    )
