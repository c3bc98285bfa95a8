"""Typed views of registry rows, so callers never handle raw SQL rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from claw402.dispatch.plans import Limits, effective_limits, max_page_size
from claw402.dispatch.pricing import page_price, rows_terms
from claw402.dispatch.routing import DirectoryEntry, TenantRoute, route_for
from claw402.money import atomic_to_usd

# Custom host states: `open` hosts were added while no API key existed (a single operator),
# `verified` ones were proven by DNS, `approved` ones by an admin; `unverified` ones wait.
HOST_OPEN, HOST_UNVERIFIED = "open", "unverified"
HOST_VERIFIED, HOST_APPROVED = "verified", "approved"
ROUTABLE_HOST_STATES = frozenset({HOST_OPEN, HOST_VERIFIED, HOST_APPROVED})


@dataclass(frozen=True, slots=True)
class HostClaim:
    """One custom host of a tenant, with what it takes to prove it."""

    host: str
    tenant_id: str
    slug: str
    owner: str | None
    status: str
    token: str
    verified_at: datetime | None

    @property
    def routable(self) -> bool:
        return self.status in ROUTABLE_HOST_STATES

    @property
    def record(self) -> str:
        """The DNS record that proves the host: `_402claw.<host> TXT <token>`."""
        return f"_402claw.{self.host} TXT {self.token}"

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "tenant": self.slug,
            "tenantId": self.tenant_id,
            "status": self.status,
            "routable": self.routable,
            "token": self.token,
            "record": {"name": f"_402claw.{self.host}", "type": "TXT", "value": self.token},
            "verifiedAt": self.verified_at.isoformat() if self.verified_at else None,
        }


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    version: int
    source_path: str
    format: str
    rows: int
    bytes: int
    columns: list[dict[str, str]]
    key: str | None
    data_path: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "source": self.source_path,
            "type": self.format,
            "rows": self.rows,
            "bytes": self.bytes,
            "schema": self.columns,
            "key": self.key,
            "createdAt": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Controls:
    """The creator's limits on a tenant (`deploy --rate/--quota-*/--spend-cap-day`) and, while
    quarantined, the plan `unquarantine` restores."""

    rate: str | None = None  # "N/s", "N/m" or "N/h"; None: the plan's
    quota_day: int | None = None  # successful calls a UTC day
    quota_month: int | None = None  # successful calls a UTC month
    spend_cap_day: int | None = None  # atomic units paid a UTC day
    plan_before_quarantine: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "quotaDay": self.quota_day,
            "quotaMonth": self.quota_month,
            "spendCapDay": atomic_to_usd(self.spend_cap_day) if self.spend_cap_day else None,
            "quarantinedFrom": self.plan_before_quarantine,
        }


NO_CONTROLS = Controls()

SCHEMES = ("both", "exact", "batch")  # `deploy --schemes`: x402 exact, batch-settlement, both


@dataclass(frozen=True, slots=True)
class Tenant:
    tenant_id: str
    slug: str
    worker_name: str
    owner: str | None
    plan: str
    price_atomic: int
    pay_to: str | None
    cpu_ms: int | None
    sub_requests: int | None
    name: str | None
    description: str | None
    created_at: datetime
    updated_at: datetime
    hosts: tuple[str, ...] = ()  # every custom host claimed, routable or not
    dataset: DatasetVersion | None = field(default=None)
    # The registry's (host, status) pairs; a host it does not list routes (a hand-built Tenant).
    host_status: tuple[tuple[str, str], ...] = ()
    schemes: str = "both"  # SCHEMES: what its 402 offers (channels, exact, or both)
    # Pricing by rows (`deploy --price-per-1k-rows`, migration 0012): atomic units per 1,000
    # rows returned; `price_atomic` is then 0 and a call is advertised at a full page's price.
    price_per_1k_rows_atomic: int | None = None
    controls: Controls = field(default_factory=lambda: NO_CONTROLS)

    @property
    def routable_hosts(self) -> tuple[str, ...]:
        states = dict(self.host_status)
        return tuple(h for h in self.hosts if states.get(h, HOST_OPEN) in ROUTABLE_HOST_STATES)

    @property
    def call_price_atomic(self) -> int:
        """What one paid call is advertised at (a 402's amount): the flat price, or for a
        row-priced tenant the price of a full page on its plan (`dispatch.pricing`)."""
        if self.price_per_1k_rows_atomic:
            return page_price(self.price_per_1k_rows_atomic, max_page_size(self.plan))
        return self.price_atomic

    @property
    def price_usd(self) -> str:
        return atomic_to_usd(self.call_price_atomic)

    @property
    def rows_price_usd(self) -> str | None:
        rate = self.price_per_1k_rows_atomic
        return atomic_to_usd(rate) if rate else None

    @property
    def offer_description(self) -> str:
        """The 402's description, the same in both runtimes; a row-priced one says what a
        channel and an exact payment are charged."""
        base = self.description or f"{self.name or self.slug}: one API call"
        rate = self.price_per_1k_rows_atomic
        return f"{base} ({rows_terms(rate, max_page_size(self.plan))})" if rate else base

    @property
    def limits(self) -> Limits:
        return effective_limits(self.plan, self.cpu_ms, self.sub_requests)

    def route(self) -> TenantRoute:
        return route_for(
            tenant_id=self.tenant_id,
            slug=self.slug,
            worker_name=self.worker_name,
            plan=self.plan,
            cpu_ms=self.cpu_ms,
            sub_requests=self.sub_requests,
            price_atomic=self.call_price_atomic,
            price_per_1k_rows_atomic=self.price_per_1k_rows_atomic,
            pay_to=self.pay_to,
            hosts=self.routable_hosts,
        )

    def entry(self) -> DirectoryEntry[Tenant]:
        """The tenant's directory entry: its route, with this record beside it."""
        return DirectoryEntry(self.route(), self)

    def to_json(self) -> dict[str, Any]:
        return {
            "tenantId": self.tenant_id,
            "slug": self.slug,
            "workerName": self.worker_name,
            "owner": self.owner,
            "plan": self.plan,
            "limits": self.limits.payload(),
            "overrides": {"cpuMs": self.cpu_ms, "subRequests": self.sub_requests},
            "price": self.price_usd,
            "priceAtomic": str(self.call_price_atomic),
            "pricePer1kRows": self.rows_price_usd,
            "pricePer1kRowsAtomic": (
                str(self.price_per_1k_rows_atomic) if self.price_per_1k_rows_atomic else None
            ),
            "payTo": self.pay_to,
            "schemes": self.schemes,
            "controls": self.controls.to_json(),
            "hosts": list(self.hosts),
            "hostStatus": {h: dict(self.host_status).get(h, HOST_OPEN) for h in self.hosts},
            "name": self.name,
            "description": self.description,
            "dataset": self.dataset.to_json() if self.dataset else None,
            "createdAt": self.created_at.isoformat(),
            "updatedAt": self.updated_at.isoformat(),
        }
