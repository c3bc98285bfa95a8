"""Which paths are MCP endpoints: light (no `mcp` import), as the gateway asks on every
request and loads the MCP server only when one comes."""

from __future__ import annotations

MCP = "/mcp"
SSE, MESSAGES = "/sse", "/messages/"


def mcp_suffix(path: str) -> tuple[str, str] | None:
    """(prefix before `/mcp`, the rest from `/mcp` on) of an MCP path, else None."""
    at = path.find(MCP)
    if at < 0:
        return None
    prefix, rest = path[:at], path[at:]
    if prefix and not (prefix.startswith("/t/") and prefix.count("/") == 2):
        return None
    if rest in (MCP, MCP + "/", MCP + SSE) or rest.startswith(MCP + MESSAGES):
        return prefix, rest
    return None
