"""The gateway's MCP endpoints, with the official `mcp` SDK's low-level server and transports.

    <site>/mcp                streamable HTTP (stateless, JSON answers)
    <site>/mcp/sse            SSE (where the x402 SDK's `create_x402_mcp_client` connects
    <site>/mcp/messages/      when given `<site>/mcp`), and its message posts

`<site>` is `/t/<slug>` or a tenant's own host (that tenant's `query` and `schema`), or
the gateway's own name (every tenant's). A server is built per streamable request or SSE
connection, bound to the request that opened it; tool calls go back through the gateway
(`tools.call_tool`), so payments take the HTTP paywall's path exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.lowlevel import Server
from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http import StreamableHTTPServerTransport
from starlette.types import Receive, Scope, Send

from claw402.dispatch.naming import request_host
from claw402.mcp.paths import MCP, MESSAGES, SSE, mcp_suffix
from claw402.mcp.tools import Site, call_tool, tool_list
from claw402.tenant_api.answer import error_answer

if TYPE_CHECKING:
    from claw402.gateway.app import Gateway

_MAXSSE_SITES = 1024


class McpEndpoints:
    """Mounted by the gateway ahead of its tenant steps, for paths `mcp_suffix` accepts."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._sse: dict[str, SseServerTransport] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        split = mcp_suffix(scope["path"])
        assert split is not None
        prefix, rest = split
        site = self._site(scope, prefix)
        if site is None:
            answer = self.gateway.fail("tenant_not_found", "mcp")
            await _send(answer.status_code, answer.raw_headers, answer.body, send)
            return
        if rest == MCP + SSE:
            transport = self._sse_transport(prefix)
            async with transport.connect_sse(scope, receive, send) as (read, write):
                server = self._server(site)
                await server.run(read, write, server.create_initialization_options())
            return
        if rest.startswith(MCP + MESSAGES):
            await self._sse_transport(prefix).handle_post_message(scope, receive, send)
            return
        await self._streamable(site, scope, receive, send)

    def _site(self, scope: Scope, prefix: str) -> Site | None:
        headers = dict(scope.get("headers", []))
        host = headers.get(b"host", b"").decode("latin-1") or None
        directory = self.gateway.directory.current()
        name = request_host(host)
        own_host = name is not None and name in directory.by_host
        if prefix and own_host:
            return None  # as over HTTP: a tenant's own host routes no `/t/<slug>`
        if prefix:
            slug = prefix[len("/t/") :]
            if slug not in directory.by_slug:
                return None
            return Site(slug, prefix, dict(scope))
        if own_host:
            return Site(directory.by_host[name].route.slug, "", dict(scope))  # type: ignore[index]
        return Site(None, "", dict(scope))

    def _sse_transport(self, prefix: str) -> SseServerTransport:
        found = self._sse.get(prefix)
        if found is None:
            if len(self._sse) >= _MAXSSE_SITES:
                self._sse.clear()
            found = self._sse[prefix] = SseServerTransport(prefix + MCP + MESSAGES)
        return found

    def _server(self, site: Site) -> Server[Any, Any]:
        server: Server[Any, Any] = Server("402claw", instructions=_INSTRUCTIONS)
        gateway = self.gateway

        @server.list_tools()
        async def list_tools() -> list[Any]:
            return tool_list(site, gateway.directory.current())

        @server.call_tool()
        async def handle(name: str, arguments: dict[str, Any]) -> Any:
            context = server.request_context
            meta = dict(context.meta.model_extra or {}) if context.meta is not None else {}
            return await call_tool(
                site, gateway.directory.current(), gateway.dispatch, name, arguments, meta
            )

        return server

    async def _streamable(self, site: Site, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":  # stateless: no session to delete, no stream to push on
            answer = error_answer(405, "method_not_allowed", "mcp", headers={"allow": "POST"})
            await _send(answer.status_code, answer.raw_headers, answer.body, send)
            return
        transport = StreamableHTTPServerTransport(None, is_json_response_enabled=True)
        server = self._server(site)
        async with anyio.create_task_group() as tasks:

            async def run(*, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
                async with transport.connect() as (read, write):
                    task_status.started()
                    await server.run(
                        read, write, server.create_initialization_options(), stateless=True
                    )

            await tasks.start(run)
            try:
                await transport.handle_request(scope, receive, send)
            finally:
                await transport.terminate()
                tasks.cancel_scope.cancel()


_INSTRUCTIONS = (
    "Datasets sold per call. `schema` tools are free; `query` tools take the dataset's filter "
    "grammar as arguments and are paid with x402: an unpaid call answers with the payment "
    "requirements (structuredContent), a paid one carries the receipt in "
    "_meta['x402/payment-response']."
)


async def _send(status: int, headers: list[tuple[bytes, bytes]], body: bytes, send: Send) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
