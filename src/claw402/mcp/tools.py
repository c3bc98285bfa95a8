"""Tenants as MCP tools: which tools a site offers, and one tool call as one gateway call.

A site is what an MCP endpoint serves: one tenant (its own host's `/mcp`, or
`/t/<slug>/mcp`), whose tools are `query` (paid) and `schema` (free); or the gateway's own
`/mcp`, where every tenant with a dataset has `<slug>_query` and `<slug>_schema`.

A `query` call is turned into the HTTP request it stands for (`GET <root>/v1/records?...`
with the payment of `_meta["x402/payment"]` as `PAYMENT-SIGNATURE`) and dispatched through
the gateway itself, so it passes the same steps, paywall, ledger booking and events as an
HTTP call: nothing about payment is decided here. A paid call asks the paywall (in its ASGI
scope's extensions) to verify, query and settle through the x402 SDK's MCP payment wrapper
(`mcp.paid`). The answer maps back as the x402 MCP
transport says: a 402 is an error result whose `structuredContent` is the `PaymentRequired`
(what the SDK's x402 MCP client pays), a paid answer carries the settlement in
`_meta["x402/payment-response"]`.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson
from mcp import types
from x402.extensions.bazaar import DeclareMcpDiscoveryConfig, declare_mcp_discovery_extension
from x402.mcp import MCP_PAYMENT_META_KEY, MCP_PAYMENT_RESPONSE_META_KEY

from claw402.discovery.bazaar import MAX_DECLARATION, TenantBazaar
from claw402.dispatch.routing import Directory
from claw402.registry.models import Tenant
from claw402.tenant_api.answer import Answer

Dispatch = Callable[[dict[str, Any], Any], Awaitable[Answer]]
QUERY, SCHEMA = "query", "schema"


@dataclass(frozen=True, slots=True)
class Site:
    """One MCP endpoint: the tenant it is scoped to (None: all), and the request it came by."""

    slug: str | None  # the tenant of `/t/<slug>/mcp` or of the Host's own `/mcp`
    prefix: str  # the path before `/mcp`: "/t/<slug>" or ""
    scope: dict[str, Any]  # the HTTP request that opened the endpoint (Host, scheme, server)

    def tenants(self, directory: Directory[Tenant]) -> list[tuple[str, Tenant]]:
        """(tool name prefix, tenant) for every tenant with a dataset this site serves."""
        if self.slug is not None:
            entry = directory.by_slug.get(self.slug)
            found = [("", entry.tenant)] if entry is not None else []
        else:
            found = [(f"{slug}_", e.tenant) for slug, e in sorted(directory.by_slug.items())]
        return [(name, t) for name, t in found if t.dataset is not None]


def tool_list(site: Site, directory: Directory[Tenant]) -> list[types.Tool]:
    tools = []
    for prefix, tenant in site.tenants(directory):
        title = tenant.name or tenant.slug
        price = "free"
        if tenant.rows_price_usd is not None:
            price = f"${tenant.rows_price_usd} per 1,000 rows (a 402 asks for a full page's "
            price += f"${tenant.price_usd}), paid with x402"
        elif tenant.call_price_atomic:
            price = f"${tenant.price_usd} per call, paid with x402"
        query = _bazaar(tenant).query_schema
        tools.append(
            types.Tool(
                name=prefix + QUERY,
                description=f"Query {title} ({tenant.dataset.rows} rows): {query['description']}"
                f" {price}.",  # type: ignore[union-attr]
                inputSchema={"type": "object", **query},
                annotations=types.ToolAnnotations(readOnlyHint=True, openWorldHint=False),
            )
        )
        tools.append(
            types.Tool(
                name=prefix + SCHEMA,
                description=f"The columns, key, row count and price of {title}; free.",
                inputSchema={"type": "object", "properties": {}, "additionalProperties": False},
                annotations=types.ToolAnnotations(readOnlyHint=True, openWorldHint=False),
            )
        )
    return tools


async def call_tool(
    site: Site,
    directory: Directory[Tenant],
    dispatch: Dispatch,
    name: str,
    arguments: dict[str, Any],
    meta: dict[str, Any],
) -> types.CallToolResult:
    for prefix, tenant in site.tenants(directory):
        if name == prefix + QUERY:
            result = await _call(site, tenant, dispatch, "/v1/records", arguments, meta)
            if result.isError and isinstance(result.structuredContent, dict):
                _as_mcp_resource(result, site, tenant, name)
            return result
        if name == prefix + SCHEMA:
            return await _call(site, tenant, dispatch, "/v1/schema", {}, {})
    return _error(f"no tool {name!r} here")


def _bazaar(tenant: Tenant) -> TenantBazaar:
    key = (tenant.tenant_id, tenant.updated_at)
    found = _DESCRIBED.get(key)
    if found is None:
        if len(_DESCRIBED) >= 1024:
            _DESCRIBED.clear()
        found = _DESCRIBED[key] = TenantBazaar(tenant)
    return found


_DESCRIBED: dict[tuple[str, object], TenantBazaar] = {}


def _as_mcp_resource(result: types.CallToolResult, site: Site, tenant: Tenant, tool: str) -> None:
    """A 402 met through MCP names the MCP endpoint and declares the tool (Bazaar type
    `mcp`), so a facilitator catalogues the tool the payer used; the payment terms are the
    HTTP route's, unchanged (the paywall never reads the payer's copy of `resource`)."""
    required = result.structuredContent
    assert required is not None
    resource = required.get("resource")
    if "accepts" not in required or not isinstance(resource, dict):
        return
    root = str(resource.get("url", "")).removesuffix("/v1/records")
    if site.slug is None:
        root = root.rpartition(f"/t/{tenant.slug}")[0]
    described = _bazaar(tenant)
    schema = {"type": "object", **described.query_schema}
    if len(orjson.dumps(schema)) > MAX_DECLARATION // 2:  # echoed in the payment header too
        schema = {"type": "object", "description": described.query_schema["description"]}
    declared = declare_mcp_discovery_extension(
        DeclareMcpDiscoveryConfig(
            tool_name=tool,
            input_schema=schema,
            description=described.description,
            transport="streamable-http",
            example={"_limit": 10},
        )
    )
    resource["url"] = root + "/mcp"
    required["extensions"] = {**required.get("extensions", {}), **declared}
    result.content = [types.TextContent(type="text", text=orjson.dumps(required).decode())]


async def _call(
    site: Site,
    tenant: Tenant,
    dispatch: Dispatch,
    route: str,
    arguments: dict[str, Any],
    meta: dict[str, Any],
) -> types.CallToolResult:
    root = f"/t/{tenant.slug}" if site.slug is None else site.prefix
    headers = [(b"accept", b"application/json")]
    for name, value in site.scope.get("headers", []):
        if name in (b"host", b"x-request-id"):
            headers.append((name, value))
    payment = meta.get(MCP_PAYMENT_META_KEY)
    if payment is not None:
        encoded = base64.b64encode(orjson.dumps(payment))
        headers.append((b"payment-signature", encoded))
    path = root + route
    scope = {
        **{
            k: site.scope[k] for k in ("scheme", "server", "client", "root_path") if k in site.scope
        },
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": urlencode(_query_items(arguments)).encode(),
        "headers": headers,
    }
    if payment is not None:  # paid through the SDK's MCP payment wrapper (`mcp.paid`)
        from claw402.mcp.paid import ATTEMPT_EXTENSION, McpAttempt

        scope["extensions"] = {ATTEMPT_EXTENSION: McpAttempt}
    answer = await dispatch(scope, _no_body)
    return _result(answer)


async def _no_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def _query_items(arguments: dict[str, Any]) -> list[tuple[str, str]]:
    """Tool arguments as the query string the grammar reads (lists comma-joined)."""
    items = []
    for name, value in arguments.items():
        if isinstance(value, list):
            value = ",".join(_text(v) for v in value)
        items.append((name, _text(value)))
    return items


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _result(answer: Answer) -> types.CallToolResult:
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in answer.raw_headers}
    text = answer.body.decode("utf-8", "replace")
    if answer.status_code == 402 and "payment-required" in headers:
        required = orjson.loads(base64.b64decode(headers["payment-required"]))
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=orjson.dumps(required).decode())],
            structuredContent=required,
            isError=True,
        )
    meta = None
    if "payment-response" in headers:
        receipt = orjson.loads(base64.b64decode(headers["payment-response"]))
        meta = {MCP_PAYMENT_RESPONSE_META_KEY: receipt}
    body = _json(text)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structuredContent=body,
        isError=answer.status_code >= 400 or answer.status_code == 202,
        _meta=meta,
    )


def _json(text: str) -> dict[str, Any] | None:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], isError=True
    )
