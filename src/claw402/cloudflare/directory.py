"""The tenant directory the dispatch Worker routes with, exported from the registry.

Two shapes, both accepted by the generated dispatcher: `maps` (`byHost`/`bySlug`, what the
Worker looks up per request) and `registry` (`tenants`, a flat list easier to diff and audit).
Entries come from `TenantRoute.directory_entry`, the same record the gateway routes with, plus
`controls`: the rate, quotas and spend cap the gateway's limiter applies (`limits.edge`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from claw402.limits.edge import edge_controls
from claw402.registry.models import Tenant

DirectoryFormat = Literal["maps", "registry"]
FORMATS: tuple[DirectoryFormat, ...] = ("maps", "registry")


def directory_entry(tenant: Tenant) -> dict[str, Any]:
    entry = tenant.route().directory_entry(tenant.price_usd)
    return {**entry, "controls": edge_controls(tenant)}


def export_directory(tenants: Iterable[Tenant], format: DirectoryFormat = "maps") -> dict[str, Any]:
    """`{"byHost": {...}, "bySlug": {...}}` or `{"tenants": [...]}`, sorted by slug."""
    entries = sorted((directory_entry(t) for t in tenants), key=lambda e: e["slug"])
    if format == "registry":
        return {"tenants": entries}
    if format != "maps":
        raise ValueError(f"unknown directory format {format!r}: choose maps or registry")
    by_host = {host: entry for entry in entries for host in entry["hosts"]}
    return {
        "byHost": dict(sorted(by_host.items())),
        "bySlug": {entry["slug"]: entry for entry in entries},
    }
