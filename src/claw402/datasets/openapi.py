"""OpenAPI 3.1 for one dataset's API, and a self-contained HTML page that documents it.

`openapi` documents `GET /v1/records` (the grammar in `query`; a JSON page, CSV or NDJSON),
`GET /v1/records/{key}` when the dataset has a key (body `{"ok": true, "item": {...}}`) and
`GET /v1/schema`; for a priced dataset the record routes also document the 402 and its
`PAYMENT-REQUIRED` header. Errors are `{"ok": false, "error": "<code>", "detail": "..."}`.
Both runtimes serve the `/v1/schema` body of `tenant_api/documents.py`, which adds the
tenant's fields (version, price, plan, ...) to what `schema_document` and the document's
`Schema` describe: the columns, the key and the row count. `docs_page.docs_html` renders a
document as one page.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from claw402.datasets.query import FACET_SIZE, FORMATS, MAX_FACETS, MAX_Q_CHARS
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
                        "count": {
                            "type": "integer",
                            "description": "With `_count=exact`: every matching row",
                        },
                        "facets": {
                            "type": "object",
                            "description": "With `_facet`: per column, its top values",
                            "additionalProperties": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["value", "count"],
                                    "properties": {"value": {}, "count": {"type": "integer"}},
                                },
                            },
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
    params.append(
        {
            **_query_param(
                f"{name}__in",
                f"`{name}` is one of these comma-separated values",
                {"type": "array", "items": value, "maxItems": 1000},
            ),
            "style": "form",
            "explode": False,
        }
    )
    params.append(
        _query_param(
            f"{name}__isnull", f"`{name}` is (true) or is not (false) NULL", {"type": "boolean"}
        )
    )
    return params


def _control_params(names: list[str], max_limit: int) -> list[dict[str, Any]]:
    sort_values = [v for n in names for v in (n, f"-{n}")]
    return [
        {
            **_query_param(
                "_sort",
                "Sort by these columns; `-col` sorts descending. NULLs "
                "sort last ascending, first descending; ties keep source order.",
                {"type": "array", "items": {"enum": sort_values}, "uniqueItems": True},
            ),
            "style": "form",
            "explode": False,
        },
        {
            **_query_param(
                "_fields",
                "Return only these columns, in this order",
                {"type": "array", "items": {"enum": names}, "uniqueItems": True},
            ),
            "style": "form",
            "explode": False,
        },
        _query_param(
            "_limit",
            f"Page size (larger values are clamped to {max_limit})",
            {"type": "integer", "minimum": 1, "default": min(100, max_limit), "maximum": max_limit},
        ),
        _query_param("_cursor", "The `next` value of the previous page", {"type": "string"}),
        _query_param(
            "_q",
            "Case-insensitive text search over every string column",
            {"type": "string", "maxLength": MAX_Q_CHARS},
        ),
        _query_param(
            "_format",
            "Response format (the Accept header works too)",
            {"enum": list(FORMATS), "default": "json"},
        ),
        _query_param(
            "_count",
            "`exact`: add `count`, every row the filters and `_q` match (json only)",
            {"enum": ["exact"]},
        ),
        {
            **_query_param(
                "_facet",
                f"Add `facets`: each column's {FACET_SIZE} most frequent "
                "values among the matching rows, with counts (repeat it; json only)",
                {
                    "type": "array",
                    "items": {"enum": names},
                    "uniqueItems": True,
                    "maxItems": MAX_FACETS,
                },
            ),
            "style": "form",
            "explode": True,
        },
    ]


def _query_param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


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
