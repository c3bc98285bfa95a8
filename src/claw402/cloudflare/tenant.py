"""A tenant's user Worker bundle: the data API templates plus the tenant's documents and data.

The dataset ships inside the Worker as `dataset.json` (columns of values), exported through the
gateway's own engine so every value is already in the gateway's output form (ISO dates and
timestamps, floats as floats). The schema, OpenAPI document, docs page and index are rendered
by the functions the gateway answers with (`claw402.tenant_api.documents`), with a placeholder
where the tenant's public root goes (the Worker fills it in per request).
"""

from __future__ import annotations

from typing import Any

import orjson

from claw402.cloudflare.bundle import COMPATIBILITY_DATE, Module, WorkerBundle
from claw402.cloudflare.grammar import grammar_module
from claw402.cloudflare.sizes import MAX_EMBEDDED_DATA, ScriptTooLarge, check_embedded_data, mib
from claw402.cloudflare.workerd import template
from claw402.datasets.docs_page import docs_html
from claw402.datasets.engine import Engine
from claw402.datasets.query import Query
from claw402.datasets.schema import Column
from claw402.dispatch.plans import max_page_size
from claw402.pages.render import SAMPLE_ROWS
from claw402.registry.models import Tenant
from claw402.tenant_api.documents import (
    index_document,
    openapi_document,
    schema_document,
    tenant_page,
)
from claw402.tenant_api.manners import DOCUMENT_CACHE

# Where the tenant's public root goes in the generated documents; replaced per request.
ROOT_PLACEHOLDER = "https://claw402-tenant-root.invalid"
TEMPLATES = ("worker.js", "query.js", "engine.js", "stored.js", "output.js", "paths.js",
             "manners.js")  # fmt: skip
MAX_SAFE_INTEGER = 2**53 - 1  # what a JavaScript number holds exactly
# A source this many times the embedding limit cannot fit: refuse before exporting it.
_SOURCE_FACTOR = 4


class EdgeUnsupported(ValueError):
    """The tenant cannot be served by a user Worker; the message says why and what to do."""


def export_columns(tenant: Tenant, *, embedded: bool = True) -> tuple[list[list[Any]], int]:
    """Every row of the tenant's current dataset version, as one list of values per column
    (`embedded=False`: for R2, where the source size is no reason to refuse)."""
    version = tenant.dataset
    if version is None:
        raise EdgeUnsupported(f"tenant {tenant.slug!r} has no dataset deployed")
    if embedded and version.bytes > _SOURCE_FACTOR * MAX_EMBEDDED_DATA:
        raise ScriptTooLarge(
            f"tenant {tenant.slug!r}: its source file is {mib(version.bytes)}, far above the "
            f"{mib(MAX_EMBEDDED_DATA)} of data a user Worker can embed (a Workers isolate has "
            "128 MB of memory). Serve it with `402claw serve`, or deploy a smaller dataset."
        )
    columns = [Column.from_dict(c) for c in version.columns]
    engine = Engine(cache_rows=0, threads=1, memory_limit="512MB")
    try:
        dataset = engine.open(version.data_path, columns, key=version.key)
        page = dataset.records(Query(limit=max(version.rows, 1)))
    finally:
        engine.close()
    data = [list(values) for values in zip(*page.rows, strict=True)] or [[] for _ in columns]
    for column, values in zip(columns, data, strict=True):
        if column.type == "integer" and any(
            v is not None and abs(v) > MAX_SAFE_INTEGER for v in values
        ):
            raise EdgeUnsupported(
                f"tenant {tenant.slug!r}: column {column.name!r} holds integers beyond "
                f"±{MAX_SAFE_INTEGER}, which a JavaScript number cannot hold exactly; serve "
                "it with `402claw serve`"
            )
    return data, len(page.rows)


def tenant_config(tenant: Tenant, data: list[list[Any]] | None = None) -> dict[str, Any]:
    """The Worker's documents; `data` (the exported columns) gives the page its sample rows."""
    v = tenant.dataset
    assert v is not None
    spec = openapi_document(tenant, ROOT_PLACEHOLDER)
    samples = list(zip(*(column[:SAMPLE_ROWS] for column in data or []), strict=True))
    return {
        "slug": tenant.slug,
        "tenantId": tenant.tenant_id,
        "version": v.version,
        "columns": v.columns,
        "key": v.key,
        "maxLimit": max_page_size(tenant.plan),
        "rootPlaceholder": ROOT_PLACEHOLDER,
        "schemaJson": orjson.dumps(schema_document(tenant)).decode(),
        "openapiJson": orjson.dumps(spec).decode(),
        "docsHtml": docs_html(spec),
        "indexJson": orjson.dumps(index_document(tenant, ROOT_PLACEHOLDER)).decode(),
        "documentCache": DOCUMENT_CACHE,
        "pageHtml": tenant_page(tenant, ROOT_PLACEHOLDER, samples),
    }


def tenant_tags(tenant: Tenant) -> list[str]:
    version = tenant.dataset.version if tenant.dataset else 0
    return [
        "claw402",
        "claw402-tenant",
        f"tenant-{tenant.tenant_id}",
        f"slug-{tenant.slug}",
        f"plan-{tenant.plan}",
        f"dataset-v{version}",
    ]


def tenant_bundle(
    tenant: Tenant,
    dataset: bytes,
    data: list[list[Any]],
    bindings: list[dict[str, Any]] | None = None,
) -> WorkerBundle:
    """The user Worker around one `dataset.json`: the rows themselves, or an R2 manifest;
    `data` (the exported columns) gives the tenant page its sample rows."""
    modules = (
        *(Module(name, template(name)) for name in TEMPLATES),
        grammar_module(),
        Module("tenant.json", orjson.dumps(tenant_config(tenant, data))),
        Module("dataset.json", dataset),
    )
    metadata = {
        "main_module": "worker.js",
        "compatibility_date": COMPATIBILITY_DATE,
        "bindings": bindings or [],
        "tags": tenant_tags(tenant),
    }
    return WorkerBundle(tenant.worker_name, modules, metadata)


def build_tenant(tenant: Tenant) -> WorkerBundle:
    """The user Worker of one tenant, its rows embedded; refused (ScriptTooLarge) when they
    cannot fit (`cloudflare.storage` serves those from R2)."""
    data, rows = export_columns(tenant)
    assert tenant.dataset is not None
    dataset = orjson.dumps({"columns": tenant.dataset.columns, "rows": rows, "data": data})
    check_embedded_data(tenant.slug, len(dataset), rows)
    return tenant_bundle(tenant, dataset, data)
