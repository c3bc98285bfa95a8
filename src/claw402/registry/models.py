"""Typed views of registry rows, so callers never handle raw SQL rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from claw402.dispatch.plans import Limits, effective_limits
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
    listed: bool = True  # in the gateway's public catalogue

    @property
    def routable_hosts(self) -> tuple[str, ...]:
        states = dict(self.host_status)
        return tuple(h for h in self.hosts if states.get(h, HOST_OPEN) in ROUTABLE_HOST_STATES)

    @property
    def price_usd(self) -> str:
        return atomic_to_usd(self.price_atomic)

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
            price_atomic=self.price_atomic,
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
            "priceAtomic": str(self.price_atomic),
            "payTo": self.pay_to,
            "schemes": self.schemes,
            "listed": self.listed,
            "hosts": list(self.hosts),
            "hostStatus": {h: dict(self.host_status).get(h, HOST_OPEN) for h in self.hosts},
            "name": self.name,
            "description": self.description,
            "dataset": self.dataset.to_json() if self.dataset else None,
            "createdAt": self.created_at.isoformat(),
            "updatedAt": self.updated_at.isoformat(),
        }
