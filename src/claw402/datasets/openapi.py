"""OpenAPI 3.1 for one dataset's API, and a self-contained HTML page that documents it.

`openapi` documents `GET /v1/records` (the grammar in `query`; a JSON page, CSV or NDJSON),
`GET /v1/records/{key}` when the dataset has a key (body `{"ok": true, "item": {...}}`) and
`GET /v1/schema`; for a priced dataset the record routes also document the 402 and its
`PAYMENT-REQUIRED` header. Errors are `{"ok": false, "error": "<code>", "detail": "..."}`.
Both runtimes serve the `/v1/schema` body of `tenant_api/documents.py`, which adds the
tenant's fields (version, price, plan, ...) to what `schema_document` and the document's
`Schema` describe: the columns, the key and the row count. `docs_html` renders a document
as one page with no scripts and no external assets.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from claw402.datasets.query import FORMATS, MAX_Q_CHARS
from claw402.datasets.schema import Column

_VALUE_SCHEMA: dict[str, dict[str, Any]] = {
    "integer": {"type": "integer", "format": "int64"},
    "number": {"type": "number", "format": "double"},
    "boolean": {"type": "boolean"},
    "string": {"type": "string"},
    "date": {"type": "string", "format": "date", "examples": ["2024-01-31"]},
    "timestamp": {
        "type": "string",
        "description": "ISO 8601, UTC, no offset: YYYY-MM-DDTHH:MM:SS[.ffffff]",
        "examples": ["2024-01-31T09:30:00"],
    },
}
_RECORD_REF = {"$ref": "#/components/schemas/Record"}
_COMPARISONS = {
    "ne": "not equal to (rows where it is NULL match too)",
    "gt": "greater than",
    "gte": "greater than or equal to",
    "lt": "less than",
    "lte": "less than or equal to",
}
_TEXT_OPS = {
    "contains": "contains this text (case-sensitive)",
    "icontains": "contains this text (case-insensitive)",
    "startswith": "starts with this text (case-sensitive)",
}


def schema_document(
    columns: Sequence[Column], *, key: str | None, rows: int | None = None
) -> dict[str, Any]:
    """The body of `GET /v1/schema`."""
    body: dict[str, Any] = {"ok": True, "columns": [c.to_dict() for c in columns], "key": key}
    if rows is not None:
        body["rows"] = rows
    return body


def openapi(
    columns: Sequence[Column],
    *,
    title: str,
    description: str,
    version: str,
    price_usd: str,
    key: str | None,
    server_url: str | None,
    max_limit: int = 1000,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a dataset's API."""
    paid = _is_paid(price_usd)
    names = [c.name for c in columns]
    record_schema = {
        "type": "object",
        "properties": {c.name: _nullable(_VALUE_SCHEMA[c.type]) for c in columns},
    }
    list_params = [p for c in columns for p in _filter_params(c)] + _control_params(
        names, max_limit
    )
    paths: dict[str, Any] = {
        "/v1/records": {
            "get": {
                "operationId": "listRecords",
                "summary": "List records, filtered, sorted and paged",
                "description": (
                    "Filters AND together. Follow `next` with `_cursor` to page; keep the "
                    "same filters, sort and search. A wrong column, operator or value is a 400."
                ),
                "parameters": list_params,
                "responses": {
                    "200": {
                        "description": "A page of records",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Page"}},
                            "text/csv": {"schema": {"type": "string"}},
                            "application/x-ndjson": {"schema": {"type": "string"}},
                        },
                    },
                    "400": _error_response("The query is invalid (`invalid_query`)"),
                    **_payment_responses(paid, price_usd),
                },
            }
        },
        "/v1/schema": {
            "get": {
                "operationId": "getSchema",
                "summary": "Columns and their types",
                "responses": {
                    "200": {
                        "description": "The dataset's columns",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Schema"}}
                        },
                    }
                },
            }
        },
    }
    if key is not None:
        key_type = next(c.type for c in columns if c.name == key)
        paths["/v1/records/{key}"] = {
            "get": {
                "operationId": "getRecord",
                "summary": f"One record by its {key}",
                "parameters": [
                    {
                        "name": "key",
                        "in": "path",
                        "required": True,
                        "description": f"The record's `{key}`",
                        "schema": _VALUE_SCHEMA[key_type],
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The record",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["ok", "item"],
                                    "properties": {
                                        "ok": {"const": True},
                                        "item": _RECORD_REF,
                                    },
                                }
                            }
                        },
                    },
                    "404": _error_response("No record has this key"),
                    **_payment_responses(paid, price_usd),
                },
            }
        }
    info: dict[str, Any] = {"title": title, "version": version, "description": description}
    if paid:
        info["description"] = (
            f"{description}\n\nEach call to /v1/records costs ${price_usd} (USD), paid with "
            "x402: an unpaid call is answered 402 with the payment requirements."
        ).strip()
    spec: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": info,
        "paths": paths,
        "components": {
            "schemas": {
                "Record": record_schema,
                "Page": {
                    "type": "object",
                    "required": ["ok", "items", "next"],
                    "properties": {
                        "ok": {"const": True},
                        "items": {"type": "array", "items": _RECORD_REF},
                        "next": {
                            "type": ["string", "null"],
                            "description": "Pass as `_cursor` for the next page; null at the end",
                        },
                    },
                },
                "Schema": {
                    "type": "object",
                    "properties": {
                        "ok": {"const": True},
                        "columns": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string"},
                                    "type": {"enum": list(_VALUE_SCHEMA)},
                                },
                            },
                        },
                        "key": {"type": ["string", "null"]},
                        "rows": {"type": "integer"},
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["ok", "error"],
                    "properties": {
                        "ok": {"const": False},
                        "error": {"type": "string"},
                        "detail": {"type": "string"},
                    },
                },
            }
        },
    }
    if paid:
        spec["x-price-usd"] = price_usd
    if server_url:
        spec["servers"] = [{"url": server_url}]
    return spec


def _is_paid(price_usd: str) -> bool:
    try:
        return Decimal(price_usd) > 0
    except InvalidOperation:
        raise ValueError(f"price_usd must be a decimal number, not {price_usd!r}") from None


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "type": [schema["type"], "null"]}


def _filter_params(column: Column) -> list[dict[str, Any]]:
    value = _VALUE_SCHEMA[column.type]
    name = column.name
    params = [_query_param(name, f"`{name}` equals this value", value)]
    for op, text in _COMPARISONS.items():
        params.append(_query_param(f"{name}__{op}", f"`{name}` is {text}", value))
    if column.type == "string":
        for op, text in _TEXT_OPS.items():
            params.append(_query_param(f"{name}__{op}", f"`{name}` {text}", value))
    params.append({
        **_query_param(f"{name}__in", f"`{name}` is one of these comma-separated values",
                       {"type": "array", "items": value, "maxItems": 1000}),
        "style": "form",
        "explode": False,
    })
    params.append(_query_param(f"{name}__isnull", f"`{name}` is (true) or is not (false) NULL",
                               {"type": "boolean"}))
    return params


def _control_params(names: list[str], max_limit: int) -> list[dict[str, Any]]:
    sort_values = [v for n in names for v in (n, f"-{n}")]
    return [
        {
            **_query_param("_sort", "Sort by these columns; `-col` sorts descending. NULLs "
                           "sort last ascending, first descending; ties keep source order.",
                           {"type": "array", "items": {"enum": sort_values}, "uniqueItems": True}),
            "style": "form",
            "explode": False,
        },
        {
            **_query_param("_fields", "Return only these columns, in this order",
                           {"type": "array", "items": {"enum": names}, "uniqueItems": True}),
            "style": "form",
            "explode": False,
        },
        _query_param("_limit", f"Page size (larger values are clamped to {max_limit})",
                     {"type": "integer", "minimum": 1, "default": min(100, max_limit),
                      "maximum": max_limit}),
        _query_param("_cursor", "The `next` value of the previous page", {"type": "string"}),
        _query_param("_q", "Case-insensitive text search over every string column",
                     {"type": "string", "maxLength": MAX_Q_CHARS}),
        _query_param("_format", "Response format (the Accept header works too)",
                     {"enum": list(FORMATS), "default": "json"}),
    ]


def _query_param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _payment_responses(paid: bool, price_usd: str) -> dict[str, Any]:
    if not paid:
        return {}
    return {
        "402": {
            "description": (
                f"Payment required: ${price_usd} per call via x402. The `PAYMENT-REQUIRED` "
                "header (base64 JSON) lists what to pay; retry with `PAYMENT-SIGNATURE`. "
                "A paid answer carries the receipt in `PAYMENT-RESPONSE`."
            ),
            "headers": {
                "PAYMENT-REQUIRED": {
                    "description": "Base64-encoded JSON payment requirements",
                    "schema": {"type": "string"},
                }
            },
        }
    }


# ---- HTML --------------------------------------------------------------------------------

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
        + (f" · Server <code>{_e(server)}</code>" if server else "") + "</p>",
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
            parts.append(f"<tr><td><code>{_e(name)}</code></td><td>{_e(_type_text(schema))}"
                         "</td></tr>")
        parts.append("</table>")
    parts.append("<h2>OpenAPI</h2><details><summary>The OpenAPI 3.1 document</summary><pre>"
                 f"{_e(json.dumps(spec, indent=2))}</pre></details></main></body></html>")
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
        parts.append("<details open><summary>Parameters</summary><table><tr><th>Name</th>"
                     "<th>In</th><th>Type</th><th>Description</th></tr>")
        for p in params:
            parts.append(
                f"<tr><td><code>{_e(p['name'])}</code></td><td>{_e(p['in'])}</td>"
                f"<td>{_e(_type_text(p.get('schema', {})))}</td>"
                f"<td>{_e(p.get('description', ''))}</td></tr>"
            )
        parts.append("</table></details>")
    parts.append("<table><tr><th>Status</th><th>Meaning</th></tr>")
    for status, response in op.get("responses", {}).items():
        parts.append(f"<tr><td>{_e(status)}</td><td>{_e(response.get('description', ''))}"
                     "</td></tr>")
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
        return "one of " + ", ".join(map(str, schema["enum"][:12])) + (
            ", ..." if len(schema["enum"]) > 12 else "")
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
