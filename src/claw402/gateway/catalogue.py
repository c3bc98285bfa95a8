"""`GET /` on the gateway: the public catalogue of its tenants, as a page or as JSON; and
the paywall page's script (`paywall_asset`), the other thing the gateway serves to people.

Built from the directory snapshot the gateway routes with (so it changes with a deploy, never
in between) and kept per (snapshot, origin, form); answered with an ETag like every free
document. A tenant's own host never reaches it: its `/` is the tenant's page.
"""

from __future__ import annotations

import orjson

from claw402.dispatch.routing import Directory
from claw402.pages.paywall import ASSET_PREFIX, PaywallUnavailable, assets
from claw402.pages.render import catalogue, catalogue_html, prefers_html
from claw402.registry.models import Tenant
from claw402.tenant_api.answer import Answer, error_answer
from claw402.tenant_api.manners import cacheable

_MAX_KEPT = 64  # (origin, form) pairs per snapshot


class Catalogue:
    def __init__(self) -> None:
        self._snapshot: Directory[Tenant] | None = None
        self._bodies: dict[tuple[str, bool], bytes] = {}

    def answer(
        self, directory: Directory[Tenant], origin: str, headers: dict[str, str], query: bytes
    ) -> Answer:
        html = prefers_html(headers.get("accept")) and b"format=json" not in query
        if directory is not self._snapshot or len(self._bodies) > _MAX_KEPT:
            self._snapshot, self._bodies = directory, {}
        body = self._bodies.get((origin, html))
        if body is None:
            entries = catalogue((e.tenant for e in directory.by_slug.values()), origin)
            if html:
                body = catalogue_html(entries, origin + "/").encode()
            else:
                body = orjson.dumps({"ok": True, "tenants": entries})
            self._bodies[(origin, html)] = body
        media = "text/html" if html else "application/json"
        answer = Answer(200, body, {"Vary": "Accept"}, media_type=media)
        return cacheable(answer, headers.get("if-none-match"))


def paywall_asset(path: str, request_id: str) -> Answer:
    """`/_claw402/paywall/<hash>.js`: the paywall page's script; its name is its content."""
    try:
        found = assets()
    except PaywallUnavailable as exc:
        return error_answer(404, "not_found", request_id, str(exc))
    if path != ASSET_PREFIX + found.script_name:
        return error_answer(404, "not_found", request_id, f"no asset {path}")
    return Answer(
        200,
        found.script,
        {"Cache-Control": "public, max-age=31536000, immutable"},
        media_type="text/javascript",
    )
