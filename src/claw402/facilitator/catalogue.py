"""The facilitator's Bazaar catalogue: resources learnt from the payments it verifies and settles.

A payer copies the resource server's 402 (`resource` and `extensions.bazaar`) into its
payment; once that payment verifies or settles here, the SDK's `extract_discovery_info`
(which validates the declaration and sanitises the service name, tags and icon) yields the
catalogue entry. `GET /discovery/resources` lists it in the shape the SDK's discovery client
(`x402.extensions.bazaar.with_bazaar`) reads, `GET /discovery/search` matches words.

Only the `bazaar` extension is kept: others (a payer's payment identifier) are the payer's,
not the resource's. Entries live in memory, bounded (the least recently paid go first): the
catalogue fills again from the next payments after a restart.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from x402.extensions.bazaar import DiscoveryResource, extract_discovery_info
from x402.schemas import PaymentPayload, PaymentRequirements

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
MAX_ENTRIES = 10_000
_FILTERS = ("type", "payTo", "scheme", "network", "extensions")


class BadQuery(ValueError):
    """A listing or search parameter out of range: 400, with this sentence."""


class DiscoveryCatalogue:
    """Thread-safe: the facilitator's verify and settle run in worker threads."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: OrderedDict[tuple[str, str], DiscoveryResource] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def learn(self, payload: PaymentPayload, requirements: PaymentRequirements) -> bool:
        """Catalogue the resource a good payment was for; False when it declares none."""
        found = extract_discovery_info(payload, requirements)
        if found is None:
            return False
        kind = "mcp" if found.tool_name else "http"
        key = (found.resource_url, found.tool_name or found.method)
        offered = requirements.model_dump(mode="json", by_alias=True, exclude_none=True)
        bazaar = (found.extensions or {}).get("bazaar")
        with self._lock:
            previous = self._entries.pop(key, None)
            earlier = previous.accepts or [] if previous is not None else []
            accepts = [a for a in earlier if not _same_terms(a, offered)]
            self._entries[key] = DiscoveryResource(
                resource=found.resource_url,
                type=kind,
                x402_version=found.x402_version,
                accepts=[offered, *accepts],
                last_updated=datetime.now(UTC).isoformat(timespec="seconds"),
                description=found.description,
                mime_type=found.mime_type,
                service_name=found.service_name,
                tags=found.tags,
                icon_url=found.icon_url,
                extensions={"bazaar": bazaar} if bazaar is not None else None,
            )
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return True

    def list(self, params: Mapping[str, str]) -> dict[str, Any]:
        """The body of `GET /discovery/resources`: newest first, filtered, one page."""
        limit, offset = _int(params, "limit", DEFAULT_LIMIT, 1), _int(params, "offset", 0, 0)
        matched = self._matching(params)
        items = matched[offset : offset + limit]
        return {
            "x402Version": 2,
            "items": [item.to_dict() for item in items],
            "pagination": {"limit": limit, "offset": offset, "total": len(matched)},
        }

    def search(self, params: Mapping[str, str]) -> dict[str, Any]:
        """The body of `GET /discovery/search`: entries holding every word of `query` in their
        URL, description, service name or tags."""
        words = params.get("query", "").lower().split()
        if not words:
            raise BadQuery("query: say what to search for")
        limit = _int(params, "limit", DEFAULT_LIMIT, 1)
        found = [item for item in self._matching(params) if all(w in _text(item) for w in words)]
        return {
            "x402Version": 2,
            "resources": [item.to_dict() for item in found[:limit]],
            "partialResults": len(found) > limit,
        }

    def _matching(self, params: Mapping[str, str]) -> list[DiscoveryResource]:
        wanted = {name: params[name].lower() for name in _FILTERS if params.get(name)}
        with self._lock:
            items = list(reversed(self._entries.values()))
        return [item for item in items if _matches(item, wanted)]


def _matches(item: DiscoveryResource, wanted: dict[str, str]) -> bool:
    if "type" in wanted and item.type != wanted["type"]:
        return False
    if "extensions" in wanted and wanted["extensions"] not in (item.extensions or {}):
        return False
    terms = ("payTo", "scheme", "network")
    accepts = item.accepts or []
    return all(
        any(str(a.get(term, "")).lower() == wanted[term] for a in accepts)
        for term in terms
        if term in wanted
    )


def _same_terms(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ("scheme", "network", "asset", "payTo"))


def _text(item: DiscoveryResource) -> str:
    parts = [item.resource, item.description or "", item.service_name or "", *(item.tags or [])]
    return " ".join(parts).lower()


def _int(params: Mapping[str, str], name: str, default: int, least: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < least:
        raise BadQuery(f"{name} must be an integer >= {least}, not {raw!r}")
    return min(int(raw), MAX_LIMIT) if name == "limit" else int(raw)
