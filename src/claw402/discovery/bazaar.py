"""What a tenant's 402 tells the Bazaar: the x402 discovery extension of its paid routes.

Facilitators that speak Bazaar catalogue a resource from the extension the payer copies
from the 402 into its payment, so the extension must say how to call the route and what
comes back. It is generated, never written by hand: the input schema is the query string of
the tenant's OpenAPI document (the filter grammar over the dataset's columns, and whatever
control parameters the grammar has), the output schema is the OpenAPI page (or record)
with the record inlined (a Bazaar schema may hold no reference a facilitator would fetch).
The SDK builds the declaration (`declare_discovery_extension`) and adds the method and the
route template (`bazaar_resource_server_extension.enrich_declaration`), as its middleware
does.

Built once per tenant version (the paywall keeps one per offer), and the offer keeps each
resource's encoded 402, so none of this runs on a replayed challenge.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from x402.extensions.bazaar import (
    OutputConfig,
    bazaar_resource_server_extension,
    declare_discovery_extension,
)

from claw402.dispatch.plans import max_page_size
from claw402.dispatch.pricing import rows_terms
from claw402.registry.models import Tenant
from claw402.tenant_api.documents import openapi_document

RECORDS, RECORD_PREFIX = "/v1/records", "/v1/records/"
_MAX_NAME, _MAX_TAG, _MAX_TAGS = 32, 32, 5  # the Bazaar's caps on serviceName and tags
# Payers echo the declaration in their payment header, which gateways cap at 8 KiB (base64).
MAX_DECLARATION = 3500
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]+")
_REGEX_SPECIAL = re.compile(r"[\\^$.|?*+()\[\]{}/-]")
GRAMMAR = (
    "Filters AND together: col=v, col__ne|gt|gte|lt|lte=v, col__contains|icontains|"
    "startswith=text (text columns), col__in=a,b,c, col__isnull=true|false. "
    "_sort=a,-b; _fields=a,b; _limit=n; _q=text (any text column); _format=json|csv|ndjson; "
    "_count=exact; _facet=col (repeatable, a column); follow `next` with _cursor to page."
)
_EXAMPLE_VALUES: dict[str, Any] = {
    "integer": 1,
    "number": 1.5,
    "boolean": True,
    "string": "text",
    "date": "2024-01-31",
    "timestamp": "2024-01-31T09:30:00",
}


def printable(text: str, limit: int) -> str:
    """`text` as the Bazaar keeps it: printable ASCII, at most `limit` characters."""
    return _NOT_PRINTABLE.sub("-", text).strip(" -")[:limit].strip()


@dataclass(frozen=True, slots=True)
class _Request:
    """The transport context `enrich_declaration` reads: method, route pattern, path."""

    method: str
    route_pattern: str | None
    path: str

    @property
    def adapter(self) -> _Request:
        return self

    def get_path(self) -> str:
        return self.path


class TenantBazaar:
    """One tenant version's discovery metadata: the `Discovery` an `Offer` asks for."""

    def __init__(self, tenant: Tenant) -> None:
        version = tenant.dataset
        if version is None:
            raise ValueError(f"tenant {tenant.slug} has no dataset to describe")
        self.tenant = tenant
        spec = openapi_document(tenant, "")
        schemas = spec["components"]["schemas"]
        record = schemas["Record"]
        paths = spec["paths"]
        self.service_name = printable(tenant.name or tenant.slug, _MAX_NAME) or tenant.slug
        self.tags = _tags(tenant.slug, [c["name"] for c in version.columns])
        columns = ", ".join(c["name"] for c in version.columns)
        price = f"${tenant.price_usd} per call"
        rate = tenant.price_per_1k_rows_atomic
        if rate:  # priced by rows: the offer's own words on what each scheme pays
            price = rows_terms(rate, max_page_size(tenant.plan))
        self.description = (
            f"{tenant.description or tenant.name or tenant.slug}: {version.rows} rows "
            f"({columns}); filter, sort and page with query parameters; {price}, paid with x402"
        )
        row = {c["name"]: _EXAMPLE_VALUES[c["type"]] for c in version.columns}
        page = _lean(_inline(schemas["Page"], record))
        for extra in ("count", "facets"):  # only when asked for (GRAMMAR says how): space
            page.get("properties", {}).pop(extra, None)
        query = self.query_schema = _query_schema(paths[RECORDS]["get"]["parameters"])
        output = OutputConfig(example={"ok": True, "items": [row], "next": None}, schema=page)
        self._list = declare_discovery_extension(
            input={"_limit": 10}, input_schema=query, output=output
        )
        # A wide dataset: the page's schema goes first, then the filters' (the grammar stays).
        if _size(self._list) > MAX_DECLARATION:
            self._list = declare_discovery_extension(input={"_limit": 10}, input_schema=query)
        if _size(self._list) > MAX_DECLARATION:
            self._list = declare_discovery_extension(
                input={"_limit": 10}, input_schema={"description": GRAMMAR}
            )
        self._one: dict[str, Any] | None = None
        record_path = paths.get(RECORDS + "/{key}")
        if record_path is not None:
            get = record_path["get"]
            key_param = get["parameters"][0]
            body = get["responses"]["200"]["content"]["application/json"]["schema"]
            self._one = declare_discovery_extension(
                path_params_schema={
                    "properties": {"key": _path_schema(key_param)},
                    "required": ["key"],
                },
                output=OutputConfig(
                    example={"ok": True, "item": row}, schema=_inline(body, record)
                ),
            )

    def extensions(self, resource_url: str) -> dict[str, Any]:
        """The `bazaar` entry of the 402's `extensions` for this resource URL (empty for a
        route that is not sold)."""
        path = urlsplit(resource_url).path
        if path.endswith(RECORDS):
            return {"bazaar": _enrich(self._list, _Request("GET", None, path))}
        root, sep, _key = path.rpartition(RECORD_PREFIX)
        if self._one is not None and sep:
            template = f"{root}{RECORD_PREFIX}:key"
            return {"bazaar": _enrich(self._one, _Request("GET", template, path))}
        return {}


def tenant_bazaar(tenant: Tenant) -> TenantBazaar:
    """The paywall's `discovery` hook: a tenant -> its discovery metadata."""
    return TenantBazaar(tenant)


def _size(declared: dict[str, Any]) -> int:
    return len(json.dumps(declared, separators=(",", ":")))


def _enrich(declared: dict[str, Any], request: _Request) -> dict[str, Any]:
    return bazaar_resource_server_extension.enrich_declaration(declared["bazaar"], request)


def _path_schema(param: dict[str, Any]) -> dict[str, Any]:
    """A path parameter is URL text whatever the column's type (the SDK reads it as a
    string): say the type in words, and hold an integer key to its digits."""
    schema: dict[str, Any] = {"type": "string", "description": param["description"]}
    kind = param["schema"]["type"]
    if kind == "integer":
        schema["pattern"] = "^[+-]?[0-9]+$"
    if kind != "string":
        schema["description"] += f" ({kind})"
    return schema


def _query_schema(parameters: list[dict[str, Any]]) -> dict[str, Any]:
    """The OpenAPI query parameters as one JSON Schema object that admits nothing else.

    Payers echo the extension in their payment header, so its size counts: filters (columns
    x operators) become one name pattern per value schema, columns with the same operators
    factored together, and the grammar is said once, not per parameter."""
    properties: dict[str, Any] = {}
    groups: dict[str, tuple[dict[str, Any], dict[str, list[str]]]] = {}
    for p in parameters:
        if p.get("in") != "query":
            continue
        name = p["name"]
        if name.startswith("_"):
            schema = p["schema"]
            if name == "_facet":  # the columns are in the patterns already: not again here
                schema = {**schema, "items": {"type": "string"}}
            elif name == "_sort":  # `col` or `-col`: one pattern, not every name twice
                columns = [v for v in schema["items"]["enum"] if not v.startswith("-")]
                pattern = f"^-?({_alternation(columns)})$"
                schema = {**schema, "items": {"type": "string", "pattern": pattern}}
            properties[name] = schema
            continue
        column, _, op = name.partition("__")
        key = json.dumps(p["schema"], sort_keys=True)
        by_column = groups.setdefault(key, (p["schema"], {}))[1]
        by_column.setdefault(column, []).append(f"__{op}" if op else "")
    patterns: dict[str, Any] = {}
    for schema, by_column in groups.values():
        by_ops: dict[tuple[str, ...], list[str]] = {}
        for column, ops in by_column.items():
            by_ops.setdefault(tuple(ops), []).append(column)
        for ops, columns in by_ops.items():
            patterns[f"^({_alternation(columns)})({'|'.join(ops)})$"] = schema
    return {
        "description": GRAMMAR,
        "properties": properties,
        "patternProperties": patterns,
        "additionalProperties": False,
    }


def _alternation(names: list[str]) -> str:
    """`a|b|c` matching exactly these names (regex characters in them escaped)."""
    return "|".join(_REGEX_SPECIAL.sub(r"\\\g<0>", n) for n in names)


def _inline(schema: Any, record: dict[str, Any]) -> Any:
    """`schema` with every `#/components/schemas/Record` reference replaced by `record`."""
    if isinstance(schema, dict):
        if schema.get("$ref") == "#/components/schemas/Record":
            return record
        return {k: _inline(v, record) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_inline(v, record) for v in schema]
    return schema


def _lean(schema: Any) -> Any:
    """`schema` without its prose: the page's shape is what a buyer's tool reads, and the
    declaration is echoed in every payment header (see MAX_DECLARATION)."""
    if isinstance(schema, dict):
        return {k: _lean(v) for k, v in schema.items() if k != "description"}
    if isinstance(schema, list):
        return [_lean(v) for v in schema]
    return schema


def _tags(slug: str, columns: list[str]) -> list[str]:
    """`dataset`, the slug, then column names: what a search for this data would type."""
    tags: list[str] = []
    for raw in ["dataset", slug, *columns]:
        tag = printable(raw, _MAX_TAG)
        if tag and tag.lower() not in {t.lower() for t in tags}:
            tags.append(tag)
        if len(tags) == _MAX_TAGS:
            break
    return tags
