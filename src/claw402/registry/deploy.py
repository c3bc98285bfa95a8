"""Deploy: validate everything, ingest into a fresh version folder, then switch atomically.

Checks run before the (possibly long) ingest, and a failed ingest or registry write removes
the new folder, so bad input changes nothing.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from claw402.config import Settings
from claw402.datasets.ingest import IngestError, detect_format, ingest
from claw402.dispatch.naming import (
    InvalidHost,
    InvalidName,
    check_public_url,
    check_slug,
    default_worker_name,
    normalize_host,
    platform_hosts,
)
from claw402.dispatch.plans import check_plan
from claw402.dispatch.pricing import parse_rows_price
from claw402.money import usd_to_atomic
from claw402.registry.models import HOST_OPEN, SCHEMES, Controls, Tenant
from claw402.registry.store import NewVersion, Registry, RegistryError, TenantSpec

KEEP_VERSIONS = 2  # the live one and the one before it (still open in running gateways)
_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
_WORKER_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


@dataclass(frozen=True)
class DeployRequest:
    source: Path
    slug: str
    price: str | None = None
    plan: str | None = None
    hosts: Sequence[str] | None = None
    pay_to: str | None = None
    key: str | None = None
    cpu_ms: int | None = None
    sub_requests: int | None = None
    name: str | None = None
    description: str | None = None
    worker_name: str | None = None
    owner: str | None = None
    host_status: str = HOST_OPEN  # what the hosts this deploy adds start as
    format: str | None = None  # what the file is, when its extension does not say
    allow_empty: bool = False  # deploy a dataset with no rows
    schemes: str | None = None  # exact, batch or both; None keeps the tenant's (new: both)
    price_per_1k_rows: str | None = None  # USD per 1,000 rows; excludes `price`
    # Limits (claw402.limits): None keeps the tenant's; 0 (or "0") removes one.
    rate: str | None = None  # "N/s", "N/m", "N/h"
    quota_day: int | None = None
    quota_month: int | None = None
    spend_cap_day: str | None = None  # USD
    listed: bool | None = None  # in the public catalogue; None keeps the tenant's (new: yes)


class HostRefused(RegistryError):
    """A custom host that may never be a tenant's (an IP, a loopback or platform name)."""

    def __init__(self, message: str, host: object) -> None:
        super().__init__(message)
        self.host = host


def reserved_hosts(settings: Settings) -> frozenset[str]:
    """The names no tenant may claim: CLAW402_RESERVED_HOSTS and the public URL's host."""
    try:
        public = check_public_url(settings.public_url) if settings.public_url else None
    except InvalidName as exc:
        raise RegistryError(f"CLAW402_PUBLIC_URL: {exc}") from None
    return platform_hosts(public, settings.reserved_hosts)


def check_address(value: str) -> str:
    from eth_utils import to_checksum_address  # ~0.1 s to import: only deploys with a payTo

    if not _ADDRESS_RE.fullmatch(value):
        raise RegistryError(f"invalid address {value!r}: expected 0x followed by 40 hex digits")
    mixed_case = value[2:] != value[2:].lower() and value[2:] != value[2:].upper()
    if mixed_case and to_checksum_address(value) != value:
        raise RegistryError(f"address {value!r} fails its EIP-55 checksum")
    return to_checksum_address(value)


def _positive(value: int | None, name: str) -> int | None:
    if value is not None and value <= 0:
        raise RegistryError(f"{name} must be a positive integer")
    return value


def build_spec(
    request: DeployRequest, existing: Tenant | None, reserved: frozenset[str] = frozenset()
) -> TenantSpec:
    """Merge the request over the existing tenant: what a re-deploy does not name is kept."""
    try:
        slug = check_slug(request.slug)
        plan = check_plan(request.plan or (existing.plan if existing else "free"))
        if existing and existing.controls.plan_before_quarantine and plan != existing.plan:
            raise RegistryError(f"tenant {slug!r} is quarantined: an admin must unquarantine it")
        hosts = (
            tuple(sorted({normalize_host(h, reserved) for h in request.hosts}))
            if request.hosts is not None
            else (existing.hosts if existing else ())
        )
        price, per_1k_rows = _prices(request, existing)
    except InvalidHost as exc:
        raise HostRefused(str(exc), exc.host) from None
    except ValueError as exc:
        raise RegistryError(str(exc)) from None
    worker = request.worker_name or (
        existing.worker_name if existing else default_worker_name(slug)
    )
    if not _WORKER_RE.fullmatch(worker):
        raise RegistryError(f"invalid worker name {worker!r}")
    pay_to = check_address(request.pay_to) if request.pay_to else (existing and existing.pay_to)
    return TenantSpec(
        slug=slug,
        worker_name=worker,
        plan=plan,
        price_atomic=price,
        price_per_1k_rows_atomic=per_1k_rows,
        pay_to=pay_to or None,
        hosts=hosts,
        owner=request.owner or (existing.owner if existing else None),
        cpu_ms=_positive(request.cpu_ms, "--cpu-ms") or (existing.cpu_ms if existing else None),
        sub_requests=_positive(request.sub_requests, "--subrequests")
        or (existing.sub_requests if existing else None),
        name=request.name if request.name is not None else (existing and existing.name),
        description=request.description
        if request.description is not None
        else (existing and existing.description),
        host_status=request.host_status,
        schemes=_schemes(request.schemes, existing),
        controls=_controls(request, existing),
        listed=(existing is None or existing.listed) if request.listed is None else request.listed,
    )


def _prices(request: DeployRequest, existing: Tenant | None) -> tuple[int, int | None]:
    """(price per call, price per 1k rows): a tenant is priced one way or the other; the one
    a re-deploy names replaces the other, and one that names neither keeps the tenant's."""
    if request.price is not None and request.price_per_1k_rows is not None:
        raise RegistryError(
            "--price and --price-per-1k-rows cannot be combined: a tenant is priced per call "
            "or by the rows each call returns"
        )
    if request.price_per_1k_rows is not None:
        return 0, parse_rows_price(request.price_per_1k_rows)
    if request.price is not None:
        return usd_to_atomic(request.price), None
    if existing is not None:
        return existing.price_atomic, existing.price_per_1k_rows_atomic
    raise RegistryError(
        "--price is required for a new tenant (0 for a free API), or --price-per-1k-rows"
    )


def _controls(request: DeployRequest, existing: Tenant | None) -> Controls:
    """The request's limits over the tenant's; refused before anything is ingested."""
    from claw402.limits.policy import InvalidLimit, check_count, parse_rate

    kept = existing.controls if existing else Controls()
    try:
        rate = kept.rate
        if request.rate is not None:
            rate = None if request.rate.strip() == "0" else str(parse_rate(request.rate))
        day = kept.quota_day if request.quota_day is None else request.quota_day or None
        month = kept.quota_month if request.quota_month is None else request.quota_month or None
        cap = kept.spend_cap_day
        if request.spend_cap_day is not None:
            cap = (
                usd_to_atomic(request.spend_cap_day, field="--spend-cap-day", maximum=10**15)
                or None
            )
        check_count(day, "--quota-day")
        check_count(month, "--quota-month")
        if cap is not None and cap < 0:
            raise InvalidLimit("--spend-cap-day must not be negative")
    except ValueError as exc:  # InvalidLimit, and usd_to_atomic's own errors
        raise RegistryError(str(exc)) from None
    return replace(kept, rate=rate, quota_day=day, quota_month=month, spend_cap_day=cap)


def _schemes(wanted: str | None, existing: Tenant | None) -> str:
    if wanted is None:
        return existing.schemes if existing else "both"
    if wanted not in SCHEMES:
        raise RegistryError(f"--schemes must be one of {', '.join(SCHEMES)}, got {wanted!r}")
    return wanted


def deploy(
    registry: Registry,
    settings: Settings,
    request: DeployRequest,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Tenant:
    source = request.source.expanduser().resolve()
    if not source.is_file():
        raise RegistryError(f"{request.source}: no such file")
    existing = registry.get(request.slug) if isinstance(request.slug, str) else None
    spec = build_spec(request, existing, reserved_hosts(settings))
    registry.check_hosts(spec.slug, spec.hosts)
    key = (
        request.key
        if request.key is not None
        else (existing.dataset.key if existing and existing.dataset else None)
    )

    try:  # an unknown format is refused before any folder exists
        fmt = detect_format(source, request.format)
    except OSError as exc:
        raise IngestError(f"cannot read {source.name}: {exc.strerror}") from None

    tenant_dir = settings.datasets_dir / spec.slug
    folder = tenant_dir / uuid.uuid4().hex
    folder.mkdir(parents=True)
    try:
        result = ingest(
            source, folder, fmt=fmt, key=key, allow_empty=request.allow_empty, progress=progress
        )
        tenant = registry.deploy(
            spec,
            NewVersion(
                source_path=str(source),
                format=result.format,
                rows=result.rows,
                bytes=result.bytes,
                columns=[{"name": c.name, "type": c.type} for c in result.columns],
                key=result.key,
                data_path=str(result.path),
            ),
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):  # a new tenant's folder: empty, so not left behind
            tenant_dir.rmdir()
        raise
    for old in registry.prune_versions(spec.slug, KEEP_VERSIONS):
        shutil.rmtree(Path(old.data_path).parent, ignore_errors=True)
    return tenant


def remove(registry: Registry, settings: Settings, slug: str) -> Tenant:
    tenant = registry.remove(slug)
    shutil.rmtree(settings.datasets_dir / slug, ignore_errors=True)
    return tenant
