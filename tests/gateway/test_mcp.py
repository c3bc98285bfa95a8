"""The gateway's MCP endpoints with the official MCP client, over streamable HTTP and SSE."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from gwpriced import priced_gateway
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from x402.extensions.bazaar import validate_discovery_extension
from x402.extensions.bazaar.types import parse_discovery_extension

from claw402.mcp.paths import mcp_suffix
from claw402.registry.deploy import DeployRequest, deploy
from claw402.samples import CITIES


@asynccontextmanager
async def _streamable(url: str) -> AsyncIterator[ClientSession]:
    async with (
        httpx.AsyncClient(timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write, _),
        ClientSession(read, write) as s,
    ):
        await s.initialize()
        yield s


@asynccontextmanager
async def _sse(url: str) -> AsyncIterator[ClientSession]:
    async with sse_client(url + "/sse") as (read, write), ClientSession(read, write) as s:
        await s.initialize()
        yield s


def _base(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/")


Connect = Callable[[str], AbstractAsyncContextManager[ClientSession]]


@pytest.mark.parametrize("connect", [_streamable, _sse], ids=["streamable-http", "sse"])
def test_a_tenant_is_a_paid_query_tool_and_a_free_schema_tool(
    tmp_path: Path, connect: Connect
) -> None:
    async def session(url: str) -> dict[str, Any]:
        async with connect(url) as s:
            tools = {t.name: t for t in (await s.list_tools()).tools}
            schema = await s.call_tool("schema", {})
            unpaid = await s.call_tool("query", {"country": "Japan", "_limit": 2})
            invalid = await s.call_tool("query", {"populaton__gt": 5})
            return {"tools": tools, "schema": schema, "unpaid": unpaid, "invalid": invalid}

    with priced_gateway(tmp_path) as (_settings, _registry, _app, client):
        base = _base(client)
        got = asyncio.run(session(f"{base}/t/cities/mcp"))
    assert set(got["tools"]) == {"query", "schema"}
    query = got["tools"]["query"].inputSchema
    assert query["type"] == "object" and query["additionalProperties"] is False
    assert "$0.001 per call" in got["tools"]["query"].description
    assert not got["schema"].isError
    assert got["schema"].structuredContent["columns"][0]["name"] == "id"
    unpaid = got["unpaid"]
    assert unpaid.isError  # what the x402 MCP client pays
    required = unpaid.structuredContent
    assert required["x402Version"] == 2 and required["accepts"][-1]["amount"] == "1000"
    assert required["resource"]["url"] == f"{base}/t/cities/mcp"  # the endpoint, for Bazaar
    bazaar = required["extensions"]["bazaar"]
    assert validate_discovery_extension(parse_discovery_extension(bazaar)).valid
    assert (
        bazaar["info"]["input"]["type"] == "mcp" and bazaar["info"]["input"]["toolName"] == "query"
    )
    assert got["invalid"].isError and "validation" in got["invalid"].content[0].text.lower()


def test_the_gateway_mcp_lists_every_tenant_and_a_host_its_own(tmp_path: Path) -> None:
    async def tools(url: str, headers: dict[str, str] | None = None) -> list[str]:
        async with (
            httpx.AsyncClient(headers=headers, timeout=30) as http,
            streamable_http_client(url, http_client=http) as (read, write, _),
            ClientSession(read, write) as s,
        ):
            await s.initialize()
            return sorted(t.name for t in (await s.list_tools()).tools)

    with priced_gateway(tmp_path) as (settings, registry, _app, client):
        deploy(registry, settings, DeployRequest(source=CITIES, slug="towns", price="0"))
        everyone = asyncio.run(tools(f"{_base(client)}/mcp"))
        own = asyncio.run(tools(f"{_base(client)}/mcp", {"host": "cities.test"}))
        missing = client.post("/t/nope/mcp", json={})
        crossed = client.post("/t/towns/mcp", json={}, headers={"host": "cities.test"})
        stream = client.get("/mcp", headers={"accept": "text/event-stream"})  # nothing to push
    assert everyone == ["cities_query", "cities_schema", "towns_query", "towns_schema"]
    assert own == ["query", "schema"]
    assert missing.status_code == 404
    assert crossed.status_code == 404  # a tenant's own host routes no /t/<slug>, as over HTTP
    assert stream.status_code == 405 and stream.headers["allow"] == "POST"


def test_mcp_paths() -> None:
    assert mcp_suffix("/mcp") == ("", "/mcp")
    assert mcp_suffix("/t/a-b/mcp/sse") == ("/t/a-b", "/mcp/sse")
    assert mcp_suffix("/t/a/mcp/messages/?x") == ("/t/a", "/mcp/messages/?x")
    for path in ("/t/a/v1/records", "/t/a/b/mcp", "/mcpx", "/x/mcp", "/t/a/mcp/other"):
        assert mcp_suffix(path) is None, path
