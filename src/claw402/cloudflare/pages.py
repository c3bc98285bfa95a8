"""The dispatch Worker's pages for people: the x402 paywall page and the catalogue, made here in
Python with the gateway's own renderers (`pages.paywall`, `pages.render`) and shipped in the
bundle, so the edge serves the same HTML and never re-implements a page in JS.

- `paywallpage.js`: per priced tenant, its paywall page split into literal text and the three
  values only a request knows (`templates/pages.js` fills them, escaped as the renderer
  escapes them): the 402's `paymentRequired` (JSON), its resource URL as JSON and as HTML text.
  Literals are stored once for all tenants (the page's style sheet is most of each page).
- `paywall-app.txt`: the page's application script (a text module, served from the Worker's own
  origin under `pages.paywall.ASSET_PREFIX`), only when the dispatcher has payment settings.
- `catalogue.js`: `GET /` on the dispatcher's host, as HTML and JSON, rendered at build time (so
  on each directory publish) with a placeholder for the origin the request names.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable
from typing import Any

import orjson
from jinja2.utils import htmlsafe_json_dumps

from claw402.cloudflare.bundle import Module
from claw402.cloudflare.directory import directory_entry
from claw402.cloudflare.workerd import template
from claw402.pages.paywall import ASSET_PREFIX, PaywallUnavailable, assets, paywall_html
from claw402.pages.render import catalogue, catalogue_html
from claw402.payments.config import PaymentConfig
from claw402.registry.models import Tenant
from claw402.tenant_api.manners import DOCUMENT_CACHE

log = logging.getLogger(__name__)
ORIGIN_PLACEHOLDER = "https://claw402-dispatcher-origin.invalid"
_RESOURCE = "https://claw402-resource.invalid/claw402-resource"  # survives both escapings
SCRIPT_MODULE = "paywall-app.txt"
MIME_TYPE = "application/json"  # the edge 402's resource mimeType (templates/paywall.js)


class _Literals:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self._index: dict[str, int] = {}

    def add(self, text: str) -> int:
        if text not in self._index:
            self._index[text] = len(self.texts)
            self.texts.append(text)
        return self._index[text]


def edge_offer(tenant: Tenant, payment: PaymentConfig) -> dict[str, Any]:
    """The 402 `templates/paywall.js` answers for `tenant`, resource URL left as a marker:
    only its displayed values matter here (the request's own object fills `paymentRequired`)."""
    entry = directory_entry(tenant)
    requirement = {
        "scheme": "exact",
        "network": payment.network,
        "asset": payment.asset,
        "amount": entry["priceAtomic"],
        "payTo": entry["payTo"] or payment.treasury,
        "maxTimeoutSeconds": payment.max_timeout_seconds,
        "extra": {"name": payment.asset_name, "version": payment.asset_version,
                  "tenant": tenant.tenant_id},
    }  # fmt: skip
    resource = {"url": _RESOURCE, "description": tenant.offer_description, "mimeType": MIME_TYPE}
    return {"x402Version": 2, "error": "payment_required", "resource": resource,
            "accepts": [requirement]}  # fmt: skip


def page_parts(tenant: Tenant, payment: PaymentConfig, literals: _Literals) -> list[int | str]:
    """The tenant's page as literal indexes and slot names (`required`, `urlJson`, `urlHtml`)."""
    required = edge_offer(tenant, payment)
    page = paywall_html(base64.b64encode(json.dumps(required).encode()).decode())
    assert page is not None  # an eip155 `exact` offer always has a page
    needle = htmlsafe_json_dumps(required)
    if page.count(needle) != 1:
        raise RuntimeError("the paywall page no longer carries paymentRequired once, verbatim")
    parts: list[int | str] = []
    for i, piece in enumerate(page.split(needle)):
        if i:
            parts.append("required")
        for j, chunk in enumerate(piece.split(htmlsafe_json_dumps(_RESOURCE))):
            if j:
                parts.append("urlJson")
            for k, text in enumerate(chunk.split(_RESOURCE)):
                if k:
                    parts.append("urlHtml")
                parts.append(literals.add(text))
    return parts


def paywall_modules(tenants: Iterable[Tenant], payment: PaymentConfig | None) -> list[Module]:
    """`paywallpage.js` (null without payment settings or an EVM network: no page, the JSON
    402 stays) and, with pages, the script they load. Without the npm package (or node) the
    edge answers browsers with the JSON 402, as the gateway does, and says so in the log."""
    none = [Module("paywallpage.js", b"// Generated: no paywall page.\nexport default null;\n")]
    if payment is None or not payment.network.startswith("eip155:"):
        return none
    try:
        found = assets()
    except PaywallUnavailable as exc:
        log.warning("no paywall page at the edge, browsers get the JSON 402: %s", exc)
        return none
    literals = _Literals()
    pages = {
        t.tenant_id: page_parts(t, payment, literals)
        for t in sorted(tenants, key=lambda t: t.slug)
        if int(directory_entry(t)["priceAtomic"]) > 0
    }
    data = {"path": ASSET_PREFIX + found.script_name, "literals": literals.texts, "pages": pages}
    literal = json.dumps(json.dumps(data, separators=(",", ":")))
    text = (
        "// Generated from claw402.pages.paywall: do not edit.\n"
        f'import SCRIPT from "./{SCRIPT_MODULE}";\n'
        f"export default {{ script: SCRIPT, ...JSON.parse({literal}) }};\n"
    )
    return [Module("paywallpage.js", text.encode()), Module(SCRIPT_MODULE, found.script)]


def catalogue_module(tenants: Iterable[Tenant]) -> Module:
    """The catalogue as the gateway renders it, for an origin the Worker substitutes."""
    entries = catalogue(tenants, ORIGIN_PLACEHOLDER)
    data = {
        "origin": ORIGIN_PLACEHOLDER,
        "cacheControl": DOCUMENT_CACHE,
        "html": catalogue_html(entries, ORIGIN_PLACEHOLDER + "/"),
        "json": orjson.dumps({"ok": True, "tenants": entries}).decode(),
    }
    literal = json.dumps(json.dumps(data, separators=(",", ":")))
    text = (
        "// Generated from claw402.pages.render: do not edit.\n"
        f"export default JSON.parse({literal});\n"
    )
    return Module("catalogue.js", text.encode())


def page_modules(tenants: Iterable[Tenant], payment: PaymentConfig | None) -> list[Module]:
    """Every module `templates/pages.js` imports, itself included."""
    tenants = list(tenants)
    return [Module("pages.js", template("pages.js")), Module("manners.js", template("manners.js")),
            catalogue_module(tenants),
            *paywall_modules(tenants, payment)]  # fmt: skip
