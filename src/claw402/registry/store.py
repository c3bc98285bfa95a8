"""Reads and writes of the registry. Every write is one transaction that bumps the generation."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection, Engine, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from claw402.config import Settings
from claw402.dispatch.events import Compact, Trail, limits_payload
from claw402.registry.db import make_engine, migrate
from claw402.registry.models import HOST_OPEN, DatasetVersion, HostClaim, Tenant
from claw402.registry.schema import dataset_versions, events, registry_state, tenant_hosts, tenants

_EVENT_ROWS = 100  # rows per INSERT on SQLite: 700 parameters, under every build's limit
# An event's `data` holds what its columns do not, less the standard fields that are null:
# ~40% fewer bytes a row, and on SQLite an insert costs about 1 µs per 100 bytes.
_EVENT_COLUMNS = frozenset({"type", "ts", "requestId", "tenantId", "correlationId"})
_EVENT_NULLABLE = ("workerName", "limits", "status", "durationMs", "reason")
_EVENT_SKIP_NULL = frozenset(_EVENT_NULLABLE)
# Fields an earlier event of a row leaves out when they equal the row's own (its route's;
# the request and tenant ids too).
_EVENT_SHARED = ("workerName", "limits")
MAX_TRAIL = 32  # events in one row at most: a longer trail goes on in the next row


def event_record(
    kind: str,
    ts: float,
    request_id: str | None,
    tenant_id: str | None,
    data: dict[str, Any],
    correlation_id: str | None = None,
) -> dict[str, Any]:
    """An events row of one event as the record that was written (rows of any age: older
    ones hold the whole record in `data`)."""
    record = {
        "type": kind,
        "ts": ts,
        "requestId": request_id,
        "tenantId": tenant_id,
        **dict.fromkeys(_EVENT_NULLABLE),
        **data,
    }
    if correlation_id is not None:
        record["correlationId"] = correlation_id
    return record


def row_events(
    kind: str,
    ts: float,
    request_id: str | None,
    tenant_id: str | None,
    data: dict[str, Any],
    correlation_id: str | None = None,
) -> list[dict[str, Any]]:
    """Every event an events row holds, in the order they happened; each carries the row's
    correlation id (the caller's x-request-id), if it had one."""
    before = data.get("before")
    if not before:
        return [event_record(kind, ts, request_id, tenant_id, data, correlation_id)]
    data = {k: v for k, v in data.items() if k != "before"}
    shared = {"requestId": request_id, "tenantId": tenant_id,
              **dict.fromkeys(_EVENT_NULLABLE), **{k: data.get(k) for k in _EVENT_SHARED}}
    if correlation_id is not None:
        shared["correlationId"] = correlation_id
    records = [{**shared, **step} for step in before]
    records.append(event_record(kind, ts, request_id, tenant_id, data, correlation_id))
    return records


def _event_data(e: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in e.items()
        if k not in _EVENT_COLUMNS and (v is not None or k not in _EVENT_SKIP_NULL)
    }


def _trail_row(trail: Sequence[dict[str, Any]], correlation_id: str | None) -> tuple[Any, ...]:
    """One row for the events of one request (`trail`, in order; one or more)."""
    *before, last = trail
    data = _event_data(last)
    steps = None
    if before:
        shared = {k: last.get(k) for k in _EVENT_SHARED}
        shared["requestId"], shared["tenantId"] = last.get("requestId"), last.get("tenantId")
        data["before"] = [
            {
                k: v
                for k, v in e.items()
                if (v is not None or k not in _EVENT_SKIP_NULL or k in shared)
                and not (k in shared and v == shared[k])
                and k != "correlationId"
            }
            for e in before
        ]
        steps = " " + " ".join(e["type"] for e in before) + " "
    return (
        last["ts"], last["type"], last.get("requestId"), last.get("tenantId"),
        orjson.dumps(data).decode(), steps, correlation_id,
    )  # fmt: skip


def _record_correlation(trail: Sequence[dict[str, Any]]) -> str | None:
    return next((e["correlationId"] for e in trail if e.get("correlationId")), None)


def _compact_correlation(trail: Trail) -> str | None:
    for item in trail:  # the gateway puts it on the first event: one look, no generator
        if item[11] is not None:
            return item[11]
    return None


def _compact_row(trail: Trail, correlation_id: str | None) -> tuple[Any, ...]:
    """`_trail_row` of the records a trail of compact tuples expands into, built straight
    from the tuples: the event writer's per-request cost (tests hold the two equal)."""
    last = trail[-1]
    kind, ts, request_id, tenant_id, worker, cpu_ms, sub_requests, status, duration, reason, \
        details, _ = last
    data: dict[str, Any] = {}
    if worker is not None:
        data["workerName"] = worker
    if cpu_ms is not None:
        data["limits"] = _limits_json(cpu_ms, sub_requests)
    if status is not None:
        data["status"] = status
    if duration is not None:
        data["durationMs"] = round(duration, 3)
    if reason is not None:
        data["reason"] = reason
    if details:
        data["details"] = details
    steps = None
    if len(trail) > 1:
        before = trail[:-1]
        data["before"] = [_compact_step(item, last) for item in before]
        steps = f" {' '.join([item[0] for item in before])} "
    return ts, kind, request_id, tenant_id, orjson.dumps(data).decode(), steps, correlation_id


def _compact_step(item: Compact, last: Compact) -> dict[str, Any]:
    kind, ts, request_id, tenant_id, own_worker, own_cpu, own_sub, status, duration, reason, \
        details, _ = item
    step: dict[str, Any] = {"type": kind, "ts": ts}
    if request_id != last[2]:
        step["requestId"] = request_id
    if tenant_id != last[3]:
        step["tenantId"] = tenant_id
    if own_worker != last[4]:
        step["workerName"] = own_worker
    if own_cpu != last[5] or own_sub != last[6]:
        step["limits"] = None if own_cpu is None else _limits_json(own_cpu, own_sub)
    if status is not None:
        step["status"] = status
    if duration is not None:
        step["durationMs"] = round(duration, 3)
    if reason is not None:
        step["reason"] = reason
    if details:
        step["details"] = details
    return step


_LIMITS_JSON: dict[tuple[int, int], orjson.Fragment] = {}


def _limits_json(cpu_ms: int, sub_requests: int) -> orjson.Fragment:
    """A limits payload, JSON-encoded once per distinct limits: rows embed it as is."""
    found = _LIMITS_JSON.get((cpu_ms, sub_requests))
    if found is None:
        if len(_LIMITS_JSON) > 4096:  # overrides are per tenant: keep the table bounded
            _LIMITS_JSON.clear()
        payload = orjson.dumps(limits_payload(cpu_ms, sub_requests))
        found = _LIMITS_JSON[(cpu_ms, sub_requests)] = orjson.Fragment(payload)
    return found


T = TypeVar("T")


def _trails(
    trails: Iterable[Sequence[T]], correlation: Callable[[Sequence[T]], str | None]
) -> Iterable[tuple[Sequence[T], str | None]]:
    """Each non-empty trail whole, or in pieces of `MAX_TRAIL`, with its correlation id (one
    event carries it; every piece's row keeps it)."""
    for trail in trails:
        if not trail:
            continue
        if len(trail) <= MAX_TRAIL:
            yield trail, correlation(trail)
        else:
            found = correlation(trail)
            for start in range(0, len(trail), MAX_TRAIL):
                yield trail[start : start + MAX_TRAIL], found


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


@dataclass(frozen=True)
class NewVersion:
    source_path: str
    format: str
    rows: int
    bytes: int
    columns: list[dict[str, str]]
    key: str | None
    data_path: str


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


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
            "pay_to": spec.pay_to,
            "schemes": spec.schemes,
            "cpu_ms": spec.cpu_ms,
            "sub_requests": spec.sub_requests,
            "name": spec.name,
            "description": spec.description,
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
        host no longer belongs to the claim's tenant. Running gateways see it within 10 ms."""
        changed = conn.execute(
            update(tenant_hosts)
            .where(tenant_hosts.c.host == claim.host, tenant_hosts.c.tenant_id == claim.tenant_id)
            .values(status=status, verified_at=_now())
        ).rowcount
        if changed:
            cls._bump(conn)
        return bool(changed)

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

    # -- events ----------------------------------------------------------------------------

    def write_events(self, batch: Sequence[dict[str, Any]]) -> None:
        """Append events, one row each (the edge's reports: the ledger reads them by type)."""
        self.write_trails([(e,) for e in batch])

    def write_trails(self, trails: Sequence[Sequence[dict[str, Any]]]) -> None:
        """Append requests' events as records, one row per request."""
        self._insert_events(
            [_trail_row(trail, cid) for trail, cid in _trails(trails, _record_correlation)]
        )

    def write_compact_trails(self, trails: Sequence[Trail]) -> None:
        """Append requests' events, one row per request (`row_events` reads them back).

        The sink calls this for every batch, off the request path. One row instead of one per
        event: a 402 challenge is three events, and on SQLite their three inserts with two
        indexes cost ~23 µs of CPU against ~7.5 µs as one row (bench/bench_event_writer.py).
        Driver SQL skips SQLAlchemy's per-row processing (~3 µs a row instead of ~23). On
        SQLite the rows go as multi-row INSERTs of `_EVENT_ROWS`: `executemany` takes the GIL
        back after every row, and behind a busy event loop each take waits its turn.
        """
        self._insert_events(
            [_compact_row(trail, cid) for trail, cid in _trails(trails, _compact_correlation)]
        )

    def _insert_events(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        sql = (
            "INSERT INTO events (ts, type, request_id, tenant_id, data, steps, correlation_id) "
            "VALUES "
        )
        with self.engine.begin() as conn:
            if conn.dialect.paramstyle != "qmark":  # PostgreSQL: psycopg pipelines the batch
                conn.exec_driver_sql(sql + "(%s, %s, %s, %s, %s, %s, %s)", rows)
                return
            for start in range(0, len(rows), _EVENT_ROWS):
                chunk = rows[start : start + _EVENT_ROWS]
                conn.exec_driver_sql(
                    sql + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(chunk)),
                    tuple(itertools.chain.from_iterable(chunk)),
                )

    def read_events(
        self,
        *,
        tenant_id: str | Sequence[str] | None = None,
        kind: str | None = None,
        request_id: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """The events of the newest `limit` requests, each request's events whole and in
        order, the oldest request first. `tenant_id` may name several tenants. `request_id` is
        the gateway's id of a request or the caller's correlation id (which many may share).
        Each event carries its row's `id`; a row holds one request's events, or one of them
        (the edge reports each apart).
        """
        c = events.c
        columns = (c.id, c.type, c.ts, c.request_id, c.tenant_id, c.data, c.correlation_id)
        where = []
        if isinstance(tenant_id, str):
            where.append(c.tenant_id == tenant_id)
        elif tenant_id is not None:
            where.append(c.tenant_id.in_(list(tenant_id)))
        if request_id is not None:
            where.append(or_(c.request_id == request_id, c.correlation_id == request_id))
        if kind is not None:
            where.append(or_(c.type == kind, c.steps.contains(f" {kind} ", autoescape=True)))
        with self.engine.connect() as conn:
            found = _newest_requests(conn, select(*columns).where(*where), limit)
            # The chosen requests' older rows (an edge request's events are rows of their own).
            ids = [key for key in found if isinstance(key, str)]
            for start in range(0, len(ids), 500):
                query = select(*columns).where(*where, c.request_id.in_(ids[start : start + 500]))
                for row in conn.execute(query):
                    found[row.request_id][row.id] = row
        requests = sorted(found.values(), key=max)  # the oldest request (its last row) first
        return [
            {"id": row.id, **e}
            for rows in requests
            for row in (rows[i] for i in sorted(rows))
            for e in row_events(*row[1:])
            if kind is None or e["type"] == kind
        ]


def _newest_requests(conn: Connection, query: Any, limit: int) -> dict[Any, dict[int, Any]]:
    """The rows `query` matches, newest first, until `limit` requests were seen: by request id
    (a row without one is a request of its own, keyed by its row id)."""
    page = min(max(limit * 2, 100), 5000)
    found: dict[Any, dict[int, Any]] = {}
    below = None
    while True:
        paged = query.order_by(events.c.id.desc()).limit(page)
        if below is not None:
            paged = paged.where(events.c.id < below)
        rows = conn.execute(paged).all()
        for row in rows:
            key = row.id if row.request_id is None else row.request_id
            if key not in found:
                if len(found) == limit:
                    return found
                found[key] = {}
            found[key][row.id] = row
        if len(rows) < page:
            return found
        below = rows[-1].id


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
