"""One tenant's data API (the self-hosted twin of a tenant Worker).

Paths are relative to the tenant root: `/v1/records`, `/v1/records/{key}`, `/v1/schema`,
`/v1/openapi.json`, `/docs`. Answers are built whole (buffered) so the paywall can decide
to settle before a byte leaves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope

from claw402.datasets.engine import Dataset, QueryTimeout
from claw402.datasets.openapi import docs_html, openapi
from claw402.datasets.output import render
from claw402.datasets.query import InvalidQuery, Query, format_from_accept, parse_query
from claw402.dispatch.plans import max_page_size
from claw402.events.compact import Trail
from claw402.gateway.responses import error_response, json_response
from claw402.registry.models import Tenant

# cpuMs is CPU time at the edge; here it becomes a wall-clock deadline for the query, which also
# counts time spent waiting for a core on a busy machine. The factor keeps a plan's budget from
# tripping on scheduling noise while still stopping a runaway scan.
WALL_CLOCK_FACTOR = 4


class TenantFailure(Exception):
    """The tenant's handler or data failed: the dispatcher answers 502 tenant_worker_failure."""


@dataclass(slots=True)
class TenantRequest:
    scope: Scope
    receive: Receive
    headers: dict[str, str]  # read once by the gateway: lower-case names, first value wins
    tenant: Tenant
    path: str  # the path the tenant sees, prefix stripped
    request_id: str
    root_url: str  # the tenant's public root, e.g. http://host/t/acme
    trail: Trail = field(default_factory=list)  # this request's events, written when it ends
    replayable: Replayable | None = None  # set by a guard whose answer any such call gets
    # A paid route's 400 known before payment (an invalid query): the guard answers it to a
    # paying call instead of verifying the payment; an unpaid call still gets the 402.
    invalid: Response | None = None
    _request: Request | None = None

    @property
    def method(self) -> str:
        return self.scope["method"]

    @property
    def request(self) -> Request:
        """The Starlette request, built on first use (query parameters, body)."""
        if self._request is None:
            self._request = Request(self.scope, self.receive)
        return self._request

    @property
    def resource_url(self) -> str:
        return self.root_url + self.path


class Replayable(Protocol):
    """An answer a guard gives every request to one resource that `applies` to (the 402
    challenge of an unpaid call): the gateway replays it for the same scheme, root path, host
    and path while its tenant directory is unchanged, without resolving, routing or guarding
    again."""

    def applies(self, method: str, headers: dict[str, str]) -> bool: ...

    def answer(self, request_id: str, trail: Trail) -> Response:
        """The answer for one request, its events appended to `trail`."""
        ...


Produce = Callable[[], Awaitable[Response]]
# The paywall: given a paid call and a producer of its buffered answer, returns the answer
# (a 402 challenge, the data with a receipt, or a payment error). It calls `produce` at most once.
Guard = Callable[[TenantRequest, Produce], Awaitable[Response]]


class TenantRuntime:
    def __init__(self, tenant: Tenant, dataset: Dataset) -> None:
        assert tenant.dataset is not None
        self.tenant = tenant
        self.version = tenant.dataset
        self.dataset = dataset
        self.max_limit = max_page_size(tenant.plan)
        self.timeout_ms = tenant.limits.cpu_ms * WALL_CLOCK_FACTOR

    async def handle(self, call: TenantRequest, guard: Guard) -> Response:
        path, method = call.path, call.method
        if method not in ("GET", "HEAD"):
            return error_response(
                405, "method_not_allowed", call.request_id, headers={"allow": "GET"}
            )
        produce: Produce
        if path == "/v1/records":
            try:
                query = self._query(call)
            except InvalidQuery as exc:
                call.invalid = error_response(400, "invalid_query", call.request_id, exc.detail)
                if self.tenant.price_atomic <= 0:
                    return call.invalid
                query = None
            produce = lambda: self._records(call, query)  # noqa: E731
        elif path.startswith("/v1/records/"):
            key = path[len("/v1/records/") :]  # the ASGI server decoded the path once
            produce = lambda: self._record(call, key)  # noqa: E731
        else:
            return self._free(call, path)
        if self.tenant.price_atomic <= 0:
            return await produce()
        return await guard(call, produce)  # the paid routes: one await, no wrapper coroutine

    def _free(self, call: TenantRequest, path: str) -> Response:
        """The routes every caller may read unpaid: what the data is, and what it costs."""
        if path == "/v1/schema":
            return json_response(self.schema())
        if path == "/v1/openapi.json":
            return json_response(self.openapi(call.root_url))
        if path in ("/docs", "/docs/"):
            return HTMLResponse(docs_html(self.openapi(call.root_url)))
        if path == "/":
            return json_response(self.index(call.root_url))
        return error_response(404, "not_found", call.request_id, f"no route {path}")

    def _query(self, call: TenantRequest) -> Query:
        """The request's parameters against the dataset's schema; raises `InvalidQuery`."""
        return parse_query(
            call.request.query_params.multi_items(),
            self.dataset.columns,
            max_limit=self.max_limit,
            version=str(self.version.version),
            default_format=format_from_accept(call.headers.get("accept")),
        )

    async def _records(self, call: TenantRequest, query: Query | None) -> Response:
        if query is None:  # invalid: a guard that runs it anyway gets the 400
            assert call.invalid is not None
            return call.invalid
        try:
            page = await self._run(lambda: self.dataset.records(query, timeout_ms=self.timeout_ms))
        except InvalidQuery as exc:
            return error_response(400, "invalid_query", call.request_id, exc.detail)
        except QueryTimeout:
            return self._over_budget(call)
        body, media_type = render(page, query.format)
        return Response(body, media_type=media_type)

    async def _record(self, call: TenantRequest, key: str) -> Response:
        if self.version.key is None:
            return error_response(
                404, "record_not_found", call.request_id, "this dataset has no key column"
            )
        try:
            row = await self._run(lambda: self.dataset.record(key, timeout_ms=self.timeout_ms))
        except InvalidQuery as exc:
            return error_response(400, "invalid_query", call.request_id, exc.detail)
        except QueryTimeout:
            return self._over_budget(call)
        if row is None:
            return error_response(404, "record_not_found", call.request_id, f"no record {key!r}")
        return json_response({"ok": True, "item": row})

    def _over_budget(self, call: TenantRequest) -> Response:
        return error_response(
            503,
            "tenant_limit_exceeded",
            call.request_id,
            f"the query ran over its {self.timeout_ms} ms budget "
            f"({self.tenant.limits.cpu_ms} cpuMs on the {self.tenant.plan} plan)",
        )

    @staticmethod
    async def _run(fn: Callable[[], object]) -> object:
        try:
            return await run_in_threadpool(fn)
        except (InvalidQuery, QueryTimeout):
            raise
        except Exception as exc:
            raise TenantFailure(f"{type(exc).__name__}: {exc}") from exc

    def schema(self) -> dict[str, object]:
        t, v = self.tenant, self.version
        return {
            "ok": True,
            "tenant": t.slug,
            "name": t.name,
            "description": t.description,
            "columns": v.columns,
            "key": v.key,
            "rows": v.rows,
            "version": v.version,
            "price": t.price_usd,
            "priceAtomic": str(t.price_atomic),
            "plan": t.plan,
            "maxLimit": self.max_limit,
        }

    def openapi(self, root_url: str) -> dict[str, object]:
        t = self.tenant
        return openapi(
            self.dataset.columns,
            title=t.name or t.slug,
            description=t.description or f"Data API of {t.slug}",
            version=str(self.version.version),
            price_usd=t.price_usd,
            key=self.version.key,
            server_url=root_url,
            max_limit=self.max_limit,
        )

    def index(self, root_url: str) -> dict[str, object]:
        return {
            "ok": True,
            "tenant": self.tenant.slug,
            "links": {
                name: root_url + path
                for name, path in (
                    ("records", "/v1/records"),
                    ("schema", "/v1/schema"),
                    ("openapi", "/v1/openapi.json"),
                    ("docs", "/docs"),
                )
            },
        }
