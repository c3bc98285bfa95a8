"""Tenant resolution: the Host header first, then `/t/<slug>/...` with the prefix stripped."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from claw402.dispatch.naming import request_host
from claw402.dispatch.plans import Limits, effective_limits
from claw402.money import atomic_to_usd


@dataclass(frozen=True, slots=True)
class TenantRoute:
    """What a dispatcher needs to know of a tenant; also one tenant-directory entry."""

    tenant_id: str
    slug: str
    worker_name: str
    plan: str
    limits: Limits
    price_atomic: int = 0  # what one call is advertised at (a full page if priced by rows)
    pay_to: str | None = None
    hosts: tuple[str, ...] = ()
    price_per_1k_rows_atomic: int | None = None  # pricing by rows (`dispatch.pricing`)

    def directory_entry(self, price_usd: str) -> dict[str, Any]:
        rate = self.price_per_1k_rows_atomic
        return {
            "tenantId": self.tenant_id,
            "slug": self.slug,
            "workerName": self.worker_name,
            "plan": self.plan,
            "limits": self.limits.payload(),
            "price": price_usd,
            "priceAtomic": str(self.price_atomic),
            # pricing by rows: `priceAtomic` is then a full page's price (`dispatch.pricing`)
            "pricePer1kRows": atomic_to_usd(rate) if rate else None,
            "pricePer1kRowsAtomic": str(rate) if rate else None,
            "payTo": self.pay_to,
            "hosts": list(self.hosts),
        }


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DirectoryEntry(Generic[T]):
    """One routable tenant: its route, and the runtime's own record of it (the registry's
    `Tenant` in the gateway), carried typed beside the route."""

    route: TenantRoute
    tenant: T


@dataclass(frozen=True, slots=True)
class Resolution(Generic[T]):
    entry: DirectoryEntry[T]
    path: str  # the path the tenant sees

    @property
    def route(self) -> TenantRoute:
        return self.entry.route


class Directory(Generic[T]):
    """An immutable snapshot of every routable tenant, indexed by host and by slug."""

    __slots__ = ("by_host", "by_slug")

    def __init__(
        self,
        entries: Iterable[DirectoryEntry[T]] = (),
        *,
        skip_host: Callable[[str], bool] | None = None,
    ) -> None:
        """`skip_host`: hosts never to route by (names the gateway itself answers to)."""
        self.by_slug: dict[str, DirectoryEntry[T]] = {}
        self.by_host: dict[str, DirectoryEntry[T]] = {}
        for entry in entries:
            self.by_slug[entry.route.slug] = entry
            for host in entry.route.hosts:
                if skip_host is None or not skip_host(host):
                    self.by_host[host] = entry

    def __len__(self) -> int:
        return len(self.by_slug)

    def resolve(self, host_header: str | None, path: str) -> Resolution[T] | None:
        host = request_host(host_header)
        if host is not None and host in self.by_host:
            return Resolution(self.by_host[host], path)
        if not path.startswith("/t/"):
            return None
        slug, sep, rest = path[3:].partition("/")
        tenant = self.by_slug.get(slug)  # keys are valid slugs: `..` or `A` cannot match
        if tenant is None:
            return None
        return Resolution(tenant, "/" + rest if sep else "/")


def route_for(
    *,
    tenant_id: str,
    slug: str,
    worker_name: str,
    plan: str,
    cpu_ms: int | None = None,
    sub_requests: int | None = None,
    price_atomic: int = 0,
    pay_to: str | None = None,
    hosts: Iterable[str] = (),
    price_per_1k_rows_atomic: int | None = None,
) -> TenantRoute:
    return TenantRoute(
        tenant_id=tenant_id,
        slug=slug,
        worker_name=worker_name,
        plan=plan,
        limits=effective_limits(plan, cpu_ms, sub_requests),
        price_atomic=price_atomic,
        pay_to=pay_to,
        hosts=tuple(sorted(hosts)),
        price_per_1k_rows_atomic=price_per_1k_rows_atomic,
    )
