"""A tenant's free documents: the schema, the OpenAPI document, its docs page and the index.

One set of functions for both runtimes: the gateway answers them per request, and the Worker
generator renders them once with a placeholder where the tenant's public root goes.
"""

from __future__ import annotations

from typing import Any

from claw402.datasets.docs_page import docs_html
from claw402.datasets.openapi import openapi
from claw402.datasets.schema import Column
from claw402.dispatch.plans import max_page_size
from claw402.dispatch.pricing import rows_terms
from claw402.registry.models import Tenant

LINKS = (
    ("records", "/v1/records"),
    ("schema", "/v1/schema"),
    ("openapi", "/v1/openapi.json"),
    ("docs", "/docs"),
)


def schema_document(tenant: Tenant) -> dict[str, Any]:
    """`GET /v1/schema`: what the data is and what it costs."""
    v = tenant.dataset
    assert v is not None
    return {
        "ok": True,
        "tenant": tenant.slug,
        "name": tenant.name,
        "description": tenant.description,
        "columns": v.columns,
        "key": v.key,
        "rows": v.rows,
        "version": v.version,
        "price": tenant.price_usd,
        "priceAtomic": str(tenant.call_price_atomic),  # a full page's, if priced by rows
        "pricePer1kRows": tenant.rows_price_usd,
        "plan": tenant.plan,
        "maxLimit": max_page_size(tenant.plan),
    }


def _described(tenant: Tenant) -> str:
    base = tenant.description or f"Data API of {tenant.slug}"
    rate = tenant.price_per_1k_rows_atomic
    return (
        f"{base}\n\nPriced by rows: {rows_terms(rate, max_page_size(tenant.plan))}."
        if rate
        else base
    )


def openapi_document(tenant: Tenant, root_url: str) -> dict[str, Any]:
    """`GET /v1/openapi.json`, with `root_url` as its server."""
    v = tenant.dataset
    assert v is not None
    return openapi(
        [Column.from_dict(c) for c in v.columns],
        title=tenant.name or tenant.slug,
        description=_described(tenant),
        version=str(v.version),
        price_usd=tenant.price_usd,
        key=v.key,
        server_url=root_url,
        max_limit=max_page_size(tenant.plan),
    )


def docs_page(tenant: Tenant, root_url: str) -> str:
    """`GET /docs`: the OpenAPI document as a page for people."""
    return docs_html(openapi_document(tenant, root_url))


def index_document(tenant: Tenant, root_url: str) -> dict[str, Any]:
    """`GET /`: links to the tenant's routes."""
    return {
        "ok": True,
        "tenant": tenant.slug,
        "links": {name: root_url + path for name, path in LINKS},
    }
