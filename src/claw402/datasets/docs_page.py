"""The HTML page documenting a dataset's API: one page rendered from its OpenAPI document,
with no scripts and no external assets (it is served from the tenant's own origin)."""

from __future__ import annotations

import html
import json
from typing import Any
from urllib.parse import quote

_STYLE = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330}
main{max-width:60rem;margin:0 auto;padding:2rem 1.25rem}
h1{margin:0 0 .25rem}h2{margin-top:2.5rem;border-bottom:1px solid #e3e6ec;padding-bottom:.3rem}
.method{display:inline-block;background:#2759c9;color:#fff;border-radius:4px;padding:0 .45rem;
font:600 13px ui-monospace,monospace;margin-right:.4rem}
code,pre{font:13px ui-monospace,SFMono-Regular,Menlo,monospace}
pre{background:#f4f6f9;border:1px solid #e3e6ec;border-radius:6px;padding:.75rem;overflow-x:auto}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{text-align:left;border-bottom:1px solid #eceef2;padding:.3rem .5rem;vertical-align:top}
th{font-size:13px;color:#5a6375}.price{background:#fff6df;border:1px solid #f0dca6;
border-radius:6px;padding:.5rem .75rem}details{margin:.5rem 0}summary{cursor:pointer}
"""


def docs_html(spec: dict[str, Any]) -> str:
    """A readable page for people: endpoints, parameters, responses, example curl. No scripts,
    no external assets, so it works offline and under a strict Content-Security-Policy."""
    info = spec.get("info", {})
    server = (spec.get("servers") or [{"url": ""}])[0]["url"].rstrip("/")
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>{_e(info.get('title', 'API'))}</title><style>{_STYLE}</style></head><body><main>",
        f"<h1>{_e(info.get('title', 'API'))}</h1>",
        f"<p>Version <code>{_e(info.get('version', ''))}</code>"
        + (f" · Server <code>{_e(server)}</code>" if server else "")
        + "</p>",
    ]
    for paragraph in str(info.get("description", "")).split("\n\n"):
        if paragraph.strip():
            parts.append(f"<p>{_e(paragraph)}</p>")
    if spec.get("x-price-usd"):
        parts.append(
            f"<p class='price'>Paid API: <strong>${_e(spec['x-price-usd'])}</strong> per call, "
            "via x402. Use an x402 client to pay automatically.</p>"
        )
    for path, operations in spec.get("paths", {}).items():
        for method, op in operations.items():
            parts.append(_operation_html(server, path, method, op))
    record = spec.get("components", {}).get("schemas", {}).get("Record", {})
    if record.get("properties"):
        parts.append("<h2>Record fields</h2><table><tr><th>Field</th><th>Type</th></tr>")
        for name, schema in record["properties"].items():
            parts.append(
                f"<tr><td><code>{_e(name)}</code></td><td>{_e(_type_text(schema))}</td></tr>"
            )
        parts.append("</table>")
    parts.append(
        "<h2>OpenAPI</h2><details><summary>The OpenAPI 3.1 document</summary><pre>"
        f"{_e(json.dumps(spec, indent=2))}</pre></details></main></body></html>"
    )
    return "".join(parts)


def _operation_html(server: str, path: str, method: str, op: dict[str, Any]) -> str:
    params = op.get("parameters", [])
    parts = [
        f"<h2><span class='method'>{_e(method.upper())}</span><code>{_e(path)}</code></h2>",
        f"<p>{_e(op.get('summary', ''))}</p>",
    ]
    if op.get("description"):
        parts.append(f"<p>{_e(op['description'])}</p>")
    parts.append(f"<pre>curl {_e(_shell_quote(server + _example_path(path, params)))}</pre>")
    if params:
        parts.append(
            "<details open><summary>Parameters</summary><table><tr><th>Name</th>"
            "<th>In</th><th>Type</th><th>Description</th></tr>"
        )
        for p in params:
            parts.append(
                f"<tr><td><code>{_e(p['name'])}</code></td><td>{_e(p['in'])}</td>"
                f"<td>{_e(_type_text(p.get('schema', {})))}</td>"
                f"<td>{_e(p.get('description', ''))}</td></tr>"
            )
        parts.append("</table></details>")
    parts.append("<table><tr><th>Status</th><th>Meaning</th></tr>")
    for status, response in op.get("responses", {}).items():
        parts.append(
            f"<tr><td>{_e(status)}</td><td>{_e(response.get('description', ''))}</td></tr>"
        )
    parts.append("</table>")
    return "".join(parts)


def _example_path(path: str, params: list[dict[str, Any]]) -> str:
    if "{key}" in path:
        schema = params[0].get("schema", {}) if params else {}
        return path.replace("{key}", "1" if schema.get("type") == "integer" else "KEY")
    if path == "/v1/records":
        sort = next((p for p in params if p["name"] == "_sort"), None)
        query = "_limit=10"
        if sort and sort["schema"]["items"]["enum"]:
            query += "&_sort=" + quote(sort["schema"]["items"]["enum"][1], safe="-")
        return f"{path}?{query}"
    return path


def _type_text(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return (
            "one of "
            + ", ".join(map(str, schema["enum"][:12]))
            + (", ..." if len(schema["enum"]) > 12 else "")
        )
    kind = schema.get("type", "")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if kind == "array" and "items" in schema:
        return "comma-separated: " + _type_text(schema["items"])
    return str(kind) + (f" ({schema['format']})" if "format" in schema else "")


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)
