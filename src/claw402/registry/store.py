"""Reads and writes of the registry. Every write is one transaction that bumps the generation."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from claw402.clock import aware as _aware
from claw402.clock import now as _now
from claw402.config import Settings
from claw402.registry.db import make_engine, migrate
from claw402.registry.models import (
    HOST_OPEN,
    NO_CONTROLS,
    Controls,
    DatasetVersion,
    HostClaim,
    Tenant,
)
from claw402.registry.schema import dataset_versions, registry_state, tenant_hosts, tenants


class RegistryError(ValueError):
    """A write the registry refuses; nothing was changed."""


@dataclass(frozen=True)
class TenantSpec:
    """The creator-controlled fields of a tenant, already validated by the caller."""

    slug: str
    worker_name: str
    plan: str
    price_atomic: int
    pay_to: str | None = None
    hosts: tuple[str, ...] = ()
    owner: str | None = None
    cpu_ms: int | None = None
    sub_requests: int | None = None
    name: str | None = None
    description: str | None = None
    host_status: str = HOST_OPEN  # what a host this deploy adds starts as (kept ones keep theirs)
    schemes: str = "both"
    price_per_1k_rows_atomic: int | None = None  # pricing by rows; price_atomic is then 0
    controls: Controls = NO_CONTROLS


@dataclass(frozen=True)
class NewVersion:
    source_path: str
    format: str
    rows: int
    bytes: int
    columns: list[dict[str, str]]
    key: str | None
    data_path: str


class Registry:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, settings: Settings) -> Registry:
        engine = make_engine(settings.database_url)
        migrate(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- reads -----------------------------------------------------------------------------

    def generation(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(registry_state.c.generation)).scalar_one())

    def list_tenants(self) -> list[Tenant]:
        with self.engine.connect() as conn:
            return self._load(conn, None)

    def get(self, slug: str) -> Tenant | None:
        with self.engine.connect() as conn:
            found = self._load(conn, tenants.c.slug == slug)
        return found[0] if found else None

    def snapshot(self) -> tuple[int, list[Tenant]]:
        """The generation and every tenant, read consistently in one transaction."""
        with self.engine.begin() as conn:
            gen = int(conn.execute(select(registry_state.c.generation)).scalar_one())
            return gen, self._load(conn, None)

    def _load(self, conn: Connection, where: Any) -> list[Tenant]:
        query = select(tenants, dataset_versions).select_from(
            tenants.outerjoin(
                dataset_versions,
                and_(
                    dataset_versions.c.tenant_id == tenants.c.tenant_id,
                    dataset_versions.c.version == tenants.c.current_version,
                ),
            )
        )
        if where is not None:
            query = query.where(where)
        rows = conn.execute(query.order_by(tenants.c.slug)).mappings().all()
        if not rows:
            return []
        ids = [r["tenant_id"] for r in rows]
        host_rows = conn.execute(
            select(tenant_hosts.c.tenant_id, tenant_hosts.c.host, tenant_hosts.c.status).where(
                tenant_hosts.c.tenant_id.in_(ids)
            )
        ).all()
        hosts: dict[str, list[tuple[str, str]]] = {}
        for tenant_id, host, status in host_rows:
            hosts.setdefault(tenant_id, []).append((host, status))
        return [self._tenant(r, tuple(sorted(hosts.get(r["tenant_id"], ())))) for r in rows]

    @staticmethod
    def _tenant(row: Any, host_status: tuple[tuple[str, str], ...]) -> Tenant:
        dataset = _version(row) if row["version"] is not None else None
        return Tenant(
            tenant_id=row["tenant_id"],
            slug=row["slug"],
            worker_name=row["worker_name"],
            owner=row["owner"],
            plan=row["plan"],
            price_atomic=row["price_atomic"],
            pay_to=row["pay_to"],
            cpu_ms=row["cpu_ms"],
            sub_requests=row["sub_requests"],
            name=row["name"],
            description=row["description"],
            created_at=_aware(row["created_at"]),
            updated_at=_aware(row["updated_at"]),
            hosts=tuple(h for h, _ in host_status),
            dataset=dataset,
            host_status=host_status,
            schemes=row["schemes"],
            price_per_1k_rows_atomic=row["price_per_1k_rows_atomic"],
            controls=Controls(
                row["rate"],
                row["quota_day"],
                row["quota_month"],
                row["spend_cap_day"],
                row["plan_before_quarantine"],
            ),
        )

    def versions(self, slug: str) -> list[DatasetVersion]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(dataset_versions)
                .join(tenants, tenants.c.tenant_id == dataset_versions.c.tenant_id)
                .where(tenants.c.slug == slug)
                .order_by(dataset_versions.c.version)
            ).mappings()
            return [_version(r) for r in rows]

    # -- writes ----------------------------------------------------------------------------

    def check_hosts(self, slug: str, hosts: Iterable[str]) -> None:
        """Refuse hosts another tenant holds, before any expensive work is done."""
        wanted = list(hosts)
        if not wanted:
            return
        with self.engine.connect() as conn:
            taken = conn.execute(
                select(tenant_hosts.c.host, tenants.c.slug)
                .join(tenants, tenants.c.tenant_id == tenant_hosts.c.tenant_id)
                .where(tenant_hosts.c.host.in_(wanted), tenants.c.slug != slug)
            ).first()
        if taken:
            raise RegistryError(f"host {taken[0]!r} already belongs to tenant {taken[1]!r}")

    def deploy(self, spec: TenantSpec, version: NewVersion | None) -> Tenant:
        """Create or update a tenant; with a version, switch to it atomically."""
        try:
            with self.engine.begin() as conn:
                self._deploy(conn, spec, version)
        except IntegrityError as exc:
            raise RegistryError(_integrity_message(exc)) from None
        tenant = self.get(spec.slug)
        assert tenant is not None
        return tenant

    def _deploy(self, conn: Connection, spec: TenantSpec, version: NewVersion | None) -> None:
        now = _now()
        fields = {
            "worker_name": spec.worker_name,
            "plan": spec.plan,
            "price_atomic": spec.price_atomic,
            "price_per_1k_rows_atomic": spec.price_per_1k_rows_atomic,
            "pay_to": spec.pay_to,
            "schemes": spec.schemes,
            "cpu_ms": spec.cpu_ms,
            "sub_requests": spec.sub_requests,
            "name": spec.name,
            "description": spec.description,
            "rate": spec.controls.rate,
            "quota_day": spec.controls.quota_day,
            "quota_month": spec.controls.quota_month,
            "spend_cap_day": spec.controls.spend_cap_day,
            "plan_before_quarantine": spec.controls.plan_before_quarantine,
            "updated_at": now,
        }
        existing = conn.execute(
            select(tenants.c.tenant_id, tenants.c.current_version).where(
                tenants.c.slug == spec.slug
            )
        ).first()
        if existing is None:
            if version is None:
                raise RegistryError(f"tenant {spec.slug!r} does not exist: deploy a dataset first")
            tenant_id = "tnt_" + secrets.token_hex(8)
            conn.execute(
                insert(tenants).values(
                    tenant_id=tenant_id,
                    slug=spec.slug,
                    owner=spec.owner,
                    created_at=now,
                    current_version=None,
                    **fields,
                )
            )
        else:
            tenant_id = existing.tenant_id
            conn.execute(update(tenants).where(tenants.c.tenant_id == tenant_id).values(**fields))
        if version is not None:
            latest = conn.execute(
                select(func.max(dataset_versions.c.version)).where(
                    dataset_versions.c.tenant_id == tenant_id
                )
            ).scalar()
            number = (latest or 0) + 1
            conn.execute(
                insert(dataset_versions).values(
                    tenant_id=tenant_id,
                    version=number,
                    source_path=version.source_path,
                    format=version.format,
                    rows=version.rows,
                    bytes=version.bytes,
                    columns=version.columns,
                    key_column=version.key,
                    data_path=version.data_path,
                    created_at=now,
                )
            )
            conn.execute(
                update(tenants)
                .where(tenants.c.tenant_id == tenant_id)
                .values(current_version=number)
            )
        # Hosts the tenant keeps keep their state and token; dropped ones go, new ones start
        # as `spec.host_status` with a fresh token.
        conn.execute(
            delete(tenant_hosts).where(
                tenant_hosts.c.tenant_id == tenant_id, tenant_hosts.c.host.not_in(spec.hosts)
            )
        )
        kept = set(
            conn.execute(
                select(tenant_hosts.c.host).where(tenant_hosts.c.tenant_id == tenant_id)
            ).scalars()
        )
        added = [h for h in spec.hosts if h not in kept]
        if added:
            conn.execute(
                insert(tenant_hosts),
                [
                    {"host": h, "tenant_id": tenant_id, "status": spec.host_status,
                     "token": new_host_token()}
                    for h in added
                ],
            )  # fmt: skip
        self._bump(conn)

    def host_claims(self, slug: str | None = None, host: str | None = None) -> list[HostClaim]:
        """Custom hosts with their tenant, state and token, by host name."""
        h, t = tenant_hosts.c, tenants.c
        query = (
            select(h.host, h.tenant_id, t.slug, t.owner, h.status, h.token, h.verified_at)
            .join(tenants, t.tenant_id == h.tenant_id)
            .order_by(h.host)
        )
        if slug is not None:
            query = query.where(t.slug == slug)
        if host is not None:
            query = query.where(h.host == host)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            HostClaim(r.host, r.tenant_id, r.slug, r.owner, r.status, r.token,
                      _aware(r.verified_at) if r.verified_at else None)
            for r in rows
        ]  # fmt: skip

    @classmethod
    def mark_host(cls, conn: Connection, claim: HostClaim, status: str) -> bool:
        """Set a host's state in the caller's transaction (with its audit entry); False if the
        host no longer belongs to the claim's tenant. Running gateways see it at their next
        generation check (`gateway/directory.py`)."""
        changed = conn.execute(
            update(tenant_hosts)
            .where(tenant_hosts.c.host == claim.host, tenant_hosts.c.tenant_id == claim.tenant_id)
            .values(status=status, verified_at=_now())
        ).rowcount
        if changed:
            cls._bump(conn)
        return bool(changed)

    @classmethod
    def set_quarantine(cls, conn: Connection, slug: str, on: bool) -> tuple[str, str, str] | None:
        """Put `slug` on the quarantine plan (keeping its plan to restore) or back, in the
        caller's transaction; (tenant id, plan before, plan after), None if already so."""
        row = conn.execute(
            select(tenants.c.tenant_id, tenants.c.plan, tenants.c.plan_before_quarantine)
            .where(tenants.c.slug == slug)
            .with_for_update()
        ).first()
        if row is None:
            raise RegistryError(f"tenant {slug!r} not found")
        tenant_id, plan, kept = row
        if on == (kept is not None):
            return None
        after, values = ("quarantine", {"plan_before_quarantine": plan}) if on else (kept, {})
        conn.execute(
            update(tenants)
            .where(tenants.c.tenant_id == tenant_id)
            .values(plan=after, updated_at=_now(), **({"plan_before_quarantine": None} | values))
        )
        cls._bump(conn)
        return tenant_id, plan, after

    def remove(self, slug: str) -> Tenant:
        tenant = self.get(slug)
        if tenant is None:
            raise RegistryError(f"tenant {slug!r} not found")
        with self.engine.begin() as conn:
            for table in (tenant_hosts, dataset_versions):
                conn.execute(delete(table).where(table.c.tenant_id == tenant.tenant_id))
            conn.execute(delete(tenants).where(tenants.c.tenant_id == tenant.tenant_id))
            self._bump(conn)
        return tenant

    def prune_versions(self, slug: str, keep: int) -> list[DatasetVersion]:
        """Forget all but the newest `keep` versions; returns the forgotten ones."""
        old = self.versions(slug)[:-keep] if keep > 0 else []
        if old:
            tenant = self.get(slug)
            assert tenant is not None
            with self.engine.begin() as conn:
                conn.execute(
                    delete(dataset_versions).where(
                        dataset_versions.c.tenant_id == tenant.tenant_id,
                        dataset_versions.c.version.in_([v.version for v in old]),
                    )
                )
        return old

    @staticmethod
    def _bump(conn: Connection) -> None:
        conn.execute(
            update(registry_state)
            .where(registry_state.c.id == 1)
            .values(generation=registry_state.c.generation + 1)
        )


def new_host_token() -> str:
    return "402claw-" + secrets.token_hex(16)


def _version(row: Any) -> DatasetVersion:
    return DatasetVersion(
        version=row["version"],
        source_path=row["source_path"],
        format=row["format"],
        rows=row["rows"],
        bytes=row["bytes"],
        columns=row["columns"],
        key=row["key_column"],
        data_path=row["data_path"],
        created_at=_aware(row["created_at"]),
    )


def _integrity_message(exc: IntegrityError) -> str:
    text = str(exc.orig).lower()
    if "host" in text:
        return "one of the hosts already belongs to another tenant"
    if "slug" in text:
        return "a tenant with this slug was created concurrently; try again"
    return f"registry constraint violated: {exc.orig}"
