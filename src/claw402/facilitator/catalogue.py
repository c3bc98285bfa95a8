"""The facilitator's Bazaar catalogue: resources learnt from the payments it verifies and settles.

A payer copies the resource server's 402 (`resource` and `extensions.bazaar`) into its
payment; once that payment verifies or settles here, the SDK's `extract_discovery_info`
(which validates the declaration and sanitises the service name, tags and icon) yields the
catalogue entry. `GET /discovery/resources` lists it in the shape the SDK's discovery client
(`x402.extensions.bazaar.with_bazaar`) reads, `GET /discovery/search` matches words.

Only the `bazaar` extension is kept: others (a payer's payment identifier) are the payer's,
not the resource's. Entries are rows of the facilitator's own database (`catalogue_store`),
so a restart forgets nothing; one resource (URL and method, or URL and tool) is one row, its
terms merged, bounded in number (the least recently paid go first).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from x402.extensions.bazaar import DiscoveryResource, extract_discovery_info
from x402.schemas import PaymentPayload, PaymentRequirements

from claw402.facilitator.catalogue_store import bazaar_resources, open_catalogue_db

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
MAX_ENTRIES = 10_000
REFRESH_SECONDS = 60.0
_FILTERS = ("type", "payTo", "scheme", "network", "extensions")
logger = logging.getLogger("claw402.facilitator")


class BadQuery(ValueError):
    """A listing or search parameter out of range: 400, with this sentence."""


class DiscoveryCatalogue:
    """Thread-safe: the facilitator's verify and settle run in worker threads.

    `engine`: the catalogue's database (`catalogue_store.open_catalogue_db`); by default a
    throwaway one, for facilitators embedded in tests and the local stack.
    """

    def __init__(
        self,
        engine: Engine | None = None,
        max_entries: int = MAX_ENTRIES,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        """`refresh_seconds`: a payment declaring what was learnt from the same declaration
        and terms less than this ago is not validated and stored again (a paid API's every
        verify and settle would otherwise run the SDK's JSON Schema validation and a write)."""
        self.engine = engine if engine is not None else open_catalogue_db(None)
        self._max = max_entries
        self._refresh = refresh_seconds
        self._lock = threading.Lock()
        self._learnt: dict[bytes, tuple[float, bool]] = {}  # declaration digest -> when, kept

    def __len__(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.count()).select_from(bazaar_resources)
            ).scalar_one()

    def learn(self, payload: PaymentPayload, requirements: PaymentRequirements) -> bool:
        """Catalogue the resource a good payment was for; False when it declares none."""
        digest = hashlib.sha256(
            payload.model_dump_json(include={"resource", "extensions"}).encode()
            + requirements.model_dump_json().encode()
        ).digest()
        now = time.monotonic()
        seen = self._learnt.get(digest)
        if seen is not None and now - seen[0] < self._refresh:
            return seen[1]
        kept = self._learn(payload, requirements)
        if len(self._learnt) >= MAX_ENTRIES:
            self._learnt.clear()
        self._learnt[digest] = (now, kept)
        return kept

    def _learn(self, payload: PaymentPayload, requirements: PaymentRequirements) -> bool:
        found = extract_discovery_info(payload, requirements)
        if found is None:
            return False
        kind = "mcp" if found.tool_name else "http"
        tool = found.tool_name or found.method or ""
        offered = requirements.model_dump(mode="json", by_alias=True, exclude_none=True)
        bazaar = (found.extensions or {}).get("bazaar")
        entry = DiscoveryResource(
            resource=found.resource_url,
            type=kind,
            x402_version=found.x402_version,
            accepts=[offered],
            last_updated=datetime.now(UTC).isoformat(timespec="seconds"),
            description=found.description,
            mime_type=found.mime_type,
            service_name=found.service_name,
            tags=found.tags,
            icon_url=found.icon_url,
            extensions={"bazaar": bazaar} if bazaar is not None else None,
        ).to_dict()
        with self._lock:
            try:
                self._store(entry, tool)
            except IntegrityError:  # another process stored the same resource meanwhile
                self._store(entry, tool)
        return True

    def _store(self, entry: dict[str, Any], tool: str) -> None:
        table = bazaar_resources
        key = (table.c.resource == entry["resource"]) & (table.c.tool == tool)
        with self.engine.begin() as conn:
            # Read and write as one writer, so facilitators sharing the database merge terms
            # without a lost update: SQLite's write lock taken up front, PostgreSQL's row lock.
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            earlier = conn.execute(sa.select(table.c.body).where(key).with_for_update()).scalar()
            if earlier is not None:
                offered = entry["accepts"][0]
                kept = _body(earlier).get("accepts") or []
                entry["accepts"] += [a for a in kept if not _same_terms(a, offered)]
            row = {
                "kind": entry["type"],
                "touched": time.time_ns(),
                "body": json.dumps(entry, separators=(",", ":")),
                "words": _text(entry),
            }
            if earlier is None:
                conn.execute(sa.insert(table).values(resource=entry["resource"], tool=tool, **row))
            else:
                conn.execute(sa.update(table).where(key).values(**row))
            oldest = (
                sa.select(table.c.id).order_by(table.c.touched.desc()).offset(self._max).subquery()
            )
            conn.execute(sa.delete(table).where(table.c.id.in_(sa.select(oldest.c.id))))

    def list(self, params: Mapping[str, str]) -> dict[str, Any]:
        """The body of `GET /discovery/resources`: newest first, filtered, one page."""
        limit, offset = _int(params, "limit", DEFAULT_LIMIT, 1), _int(params, "offset", 0, 0)
        matched = self._matching(params)
        return {
            "x402Version": 2,
            "items": matched[offset : offset + limit],
            "pagination": {"limit": limit, "offset": offset, "total": len(matched)},
        }

    def search(self, params: Mapping[str, str]) -> dict[str, Any]:
        """The body of `GET /discovery/search`: entries holding every word of `query` in their
        URL, description, service name or tags."""
        words = params.get("query", "").lower().split()
        if not words:
            raise BadQuery("query: say what to search for")
        limit = _int(params, "limit", DEFAULT_LIMIT, 1)
        found = self._matching(params, words)
        return {
            "x402Version": 2,
            "resources": found[:limit],
            "partialResults": len(found) > limit,
        }

    def _matching(
        self, params: Mapping[str, str], words: list[str] | None = None
    ) -> list[dict[str, Any]]:
        wanted = {name: params[name].lower() for name in _FILTERS if params.get(name)}
        table = bazaar_resources
        query = sa.select(table.c.body).order_by(table.c.touched.desc(), table.c.id.desc())
        if "type" in wanted:
            query = query.where(table.c.kind == wanted["type"])
        for word in words or ():
            query = query.where(table.c.words.contains(word, autoescape=True))
        with self.engine.connect() as conn:
            bodies = conn.execute(query).scalars().all()
        items = (_body(body) for body in bodies)
        return [item for item in items if item and _matches(item, wanted)]


def _body(text: str) -> dict[str, Any]:
    """A stored entry; an unreadable one (edited by hand, say) is skipped, not served."""
    try:
        item = json.loads(text)
    except ValueError:
        logger.warning("skipping an unreadable catalogue entry: %.80s", text)
        return {}
    return item if isinstance(item, dict) and isinstance(item.get("resource"), str) else {}


def _matches(item: dict[str, Any], wanted: dict[str, str]) -> bool:
    if "extensions" in wanted and wanted["extensions"] not in (item.get("extensions") or {}):
        return False
    terms = ("payTo", "scheme", "network")
    accepts = [a for a in item.get("accepts") or [] if isinstance(a, dict)]
    return all(
        any(str(a.get(term, "")).lower() == wanted[term] for a in accepts)
        for term in terms
        if term in wanted
    )


def _same_terms(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ("scheme", "network", "asset", "payTo"))


def _text(item: dict[str, Any]) -> str:
    parts = [
        item["resource"],
        item.get("description") or "",
        item.get("serviceName") or "",
        *(item.get("tags") or []),
    ]
    return " ".join(parts).lower()


def _int(params: Mapping[str, str], name: str, default: int, least: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < least:
        raise BadQuery(f"{name} must be an integer >= {least}, not {raw!r}")
    return min(int(raw), MAX_LIMIT) if name == "limit" else int(raw)
