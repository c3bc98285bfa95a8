"""Tenants as paid MCP tools: the gateway's MCP endpoints (`server`, `tools`) and the local
stdio server that pays for a desktop agent (`stdio`)."""
