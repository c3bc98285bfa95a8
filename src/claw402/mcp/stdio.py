"""`402claw mcp --gateway URL`: a local stdio MCP server that pays for a desktop agent.

Desktop agents speak MCP over stdio and hold no wallet. This server relays the gateway's
tools (`<URL>/mcp`, over streamable HTTP) and pays their 402s with the caller's key through
the x402 SDK's MCP client (`x402MCPSession`), within two caps: the most one call may cost
(`max_price`) and the most the whole session may spend (`max_total`). A call the caps refuse
is an error result that says which cap; nothing is signed for it. Paid calls run one at a
time, so two concurrent calls can never both fit in the last of the budget.
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
from x402.mcp import x402MCPSession

from claw402.money import atomic_to_usd
from claw402.payments.client import PriceTooHigh, payment_client

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

    def charge(self, settled: bool) -> None:
        """After a paid call: count the chosen price if its payment settled."""
        with self._lock:
            if settled and self._chosen is not None:
                self.spent += self._chosen
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
) -> None:
    """Relay `gateway`'s MCP tools on stdin/stdout until the agent closes them."""
    client = payment_client(private_key, max_price_atomic, allowed_assets, scheme="exact")
    client.register_policy(cap.policy)
    url = mcp_url(gateway)
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(30, read=300)) as http,
        streamable_http_client(url, http_client=http) as (read, write, _),
        ClientSession(read, write) as upstream,
    ):
        await upstream.initialize()
        paying = x402MCPSession(upstream, client)
        server = relay_server(upstream, paying, cap)
        async with stdio_server() as (stdin, stdout):
            await server.run(stdin, stdout, server.create_initialization_options())


def relay_server(upstream: ClientSession, paying: x402MCPSession, cap: SpendCap) -> Server:
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
            except (SpendCapReached, PriceTooHigh) as exc:
                cap.charge(False)
                return _refused(str(exc))
            settled = bool(result.payment_made and result.payment_response is not None
                           and getattr(result.payment_response, "success", False))  # fmt: skip
            cap.charge(settled)
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


def _refused(message: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], isError=True
    )
