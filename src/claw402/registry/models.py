"""Typed views of registry rows, so callers never handle raw SQL rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from claw402.dispatch.plans import Limits, effective_limits
from claw402.dispatch.routing import TenantRoute, route_for
from claw402.money import atomic_to_usd


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
    hosts: tuple[str, ...] = ()
    dataset: DatasetVersion | None = field(default=None)

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
            hosts=self.hosts,
            extra={"tenant": self},
        )

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
            "hosts": list(self.hosts),
            "name": self.name,
            "description": self.description,
            "dataset": self.dataset.to_json() if self.dataset else None,
            "createdAt": self.created_at.isoformat(),
            "updatedAt": self.updated_at.isoformat(),
        }
