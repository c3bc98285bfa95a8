"""`GET /.well-known/x402`: what a host sells, for agents and indexers, before any 402.

Follows the draft `discovery` extension of the x402 repository (`specs/extensions/
discovery.md`): a `resource-server` manifest whose `resources` are the paid routes of the
tenants the request's host serves. On a tenant's own host (or under `/t/<slug>/`) that is
the tenant; on the gateway's own names, every tenant with a dataset and a price.

An entry is *complete* (the draft forbids a half-filled one): the URL, method and
description plus the x402 `accepts` the live 402 offers, with price, scheme, network, asset
and payTo, built by the paywall's own offer so the two cannot drift (the 402 stays
authoritative). A gateway without a payment network lists bare pointers (url, method,
description). Free and cacheable: one body per directory snapshot, origin and path, with an
`ETag` (a matching `If-None-Match` is a 304) and `Access-Control-Allow-Origin: *`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import orjson

from claw402.dispatch.routing import Directory, DirectoryEntry
from claw402.registry.models import Tenant
from claw402.tenant_api.answer import Answer
from claw402.tenant_api.call import RECORDS

WELL_KNOWN = "/.well-known/x402"
CACHE_CONTROL = "public, max-age=60"
_CACHED = 1024


class _Offers(Protocol):
    """What the manifest reads from a tenant's offer (`payments.offer.Offer`)."""

    description: str

    @property
    def accepts(self) -> list[Any]: ...


OfferFor = Callable[[Tenant], _Offers]


def is_manifest_path(path: str) -> bool:
    return path == WELL_KNOWN or (path.startswith("/t/") and path.endswith(WELL_KNOWN))


class Manifests:
    """Builds and keeps the manifests one gateway serves."""

    def __init__(self, offer_for: OfferFor | None, name: str = "402claw") -> None:
        self.offer_for = offer_for  # None: no payment network, bare pointers only
        self.name = name
        self._cache: dict[tuple[str, str], tuple[Directory[Tenant], bytes, str]] = {}

    def answer(
        self,
        directory: Directory[Tenant],
        host: str | None,
        path: str,
        origin: str,
        if_none_match: str | None,
    ) -> Answer | None:
        """The manifest for this request, or None when the path names no tenant."""
        key = (origin, path)
        found = self._cache.get(key)
        if found is None or found[0] is not directory:
            body = self._body(directory, host, path, origin)
            if body is None:
                return None
            etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
            if len(self._cache) >= _CACHED:
                self._cache.clear()
            found = self._cache[key] = (directory, body, etag)
        _, body, etag = found
        headers = {"cache-control": CACHE_CONTROL, "etag": etag}  # CORS: the gateway's stamp
        if if_none_match is not None and etag in if_none_match.split(", "):
            return Answer(304, b"", headers)
        return Answer(200, body, headers, media_type="application/json")

    def _body(
        self, directory: Directory[Tenant], host: str | None, path: str, origin: str
    ) -> bytes | None:
        resolution = directory.resolve(host, path)
        if resolution is not None and resolution.path == WELL_KNOWN:
            entry = resolution.entry
            own_host = path == WELL_KNOWN  # routed by Host: the tenant is the origin
            root = origin if own_host else f"{origin}/t/{entry.route.slug}"
            tenant = entry.tenant
            head = {
                "name": tenant.name or tenant.slug,
                "description": tenant.description or f"the data API of {tenant.slug}",
                "docs": f"{root}/docs",
            }
            return self._render(head, [(entry, root)])
        if path != WELL_KNOWN:
            return None
        head = {
            "name": self.name,
            "description": "Datasets sold per API call, paid with x402",
            "docs": f"{origin}/",
        }
        listed = sorted(directory.by_slug.items())
        return self._render(head, [(e, f"{origin}/t/{slug}") for slug, e in listed])

    def _render(
        self, head: dict[str, str], entries: Iterable[tuple[DirectoryEntry[Tenant], str]]
    ) -> bytes:
        resources: list[dict[str, Any]] = []
        updated = None
        for entry, root in entries:
            tenant = entry.tenant
            if tenant.dataset is None or tenant.call_price_atomic <= 0:
                continue  # nothing to sell: no data, or free data
            resources.extend(self._resources(tenant, root))
            if updated is None or tenant.updated_at > updated:
                updated = tenant.updated_at
        manifest: dict[str, Any] = {"x402Version": 2, "kind": "resource-server", **head}
        manifest["resources"] = resources
        manifest["attestation"] = {"type": "none"}
        if updated is not None:
            manifest["updated"] = updated.isoformat(timespec="seconds")
        return orjson.dumps(manifest)

    def _resources(self, tenant: Tenant, root: str) -> list[dict[str, Any]]:
        assert tenant.dataset is not None
        urls = [(f"{root}{RECORDS}", None)]
        if tenant.dataset.key is not None:
            template = root + RECORDS + "/:key"
            urls.append((template, template.split("://", 1)[-1].partition("/")[2]))
        offer = self.offer_for(tenant) if self.offer_for is not None else None
        out = []
        for url, route in urls:
            item: dict[str, Any] = {"url": url, "method": "GET"}
            if offer is None:
                item["description"] = f"{tenant.name or tenant.slug}: ${tenant.price_usd} a call"
                out.append(item)
                continue
            item["description"] = offer.description
            item["mimeType"] = "application/json"
            if route is not None:
                item["routeTemplate"] = "/" + route
            item["x402Version"] = 2
            item["accepts"] = [
                a.model_dump(mode="json", by_alias=True, exclude_none=True) for a in offer.accepts
            ]
            out.append(item)
        return out
