"""One tenant's data API over its open dataset (the self-hosted twin of a tenant Worker).

Paths are relative to the tenant root: `/v1/records`, `/v1/records/{key}`, `/v1/schema`,
`/v1/openapi.json`, `/docs`, `/`. The call's limits (set by the limits step) cap the page
size and the query's deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio.to_thread
import orjson

from claw402.datasets.engine import Dataset, QueryTimeout
from claw402.datasets.facets import summary
from claw402.datasets.indexed import SearchUnfinished
from claw402.datasets.output import render
from claw402.datasets.query import InvalidQuery, Query, format_from_accept, parse_query
from claw402.dispatch.errors import STATUS
from claw402.pages.render import SAMPLE_ROWS, prefers_html
from claw402.registry.models import Tenant
from claw402.tenant_api.answer import Answer, error_answer, html_answer, json_answer
from claw402.tenant_api.call import RECORDS, TenantCall, TenantFailure
from claw402.tenant_api.documents import (
    docs_page,
    index_document,
    openapi_document,
    schema_document,
    tenant_page,
)
from claw402.tenant_api.manners import cacheable

# cpuMs is CPU time at the edge; here it becomes a wall-clock deadline for the query, which also
# counts time spent waiting for a core on a busy machine. The factor keeps a plan's budget from
# tripping on scheduling noise while still stopping a runaway scan.
WALL_CLOCK_FACTOR = 4


class TenantRuntime:
    """What serves one tenant's version. The gateway keeps thousands and rebuilds one on a
    miss, so it is built with nothing but references; its documents are made when asked."""

    __slots__ = ("_samples", "_schema", "dataset", "tenant", "version")

    def __init__(self, tenant: Tenant, dataset: Dataset) -> None:
        assert tenant.dataset is not None
        self.tenant = tenant
        self.version = tenant.dataset
        self.dataset = dataset
        self._schema: bytes | None = None  # `/v1/schema`: the same bytes every call
        self._samples: tuple[tuple[object, ...], ...] | None = None  # the page's first rows

    def schema(self) -> bytes:
        """`/v1/schema`'s body, encoded on first use and kept at its length (orjson's output
        keeps its whole write buffer, several times a small document's size)."""
        if self._schema is None:
            self._schema = bytes(memoryview(orjson.dumps(schema_document(self.tenant))))
        return self._schema

    def check(self, call: TenantCall) -> None:
        """Before a guard: parse a records call's query, or keep its 400 in `call.invalid`."""
        if call.path == RECORDS and call.query is None and call.invalid is None:
            try:
                call.query = self._query(call)
            except InvalidQuery as exc:
                call.invalid = error_answer(400, "invalid_query", call.request_id, exc.detail)

    async def handle(self, call: TenantCall) -> Answer:
        path = call.path
        if call.method not in ("GET", "HEAD"):
            allow = {"allow": "GET"}
            return error_answer(405, "method_not_allowed", call.request_id, headers=allow)
        if path == RECORDS:
            self.check(call)
            if call.invalid is not None:
                return call.invalid
            assert isinstance(call.query, Query)
            return await self._records(call, call.query)
        if path.startswith("/v1/records/"):
            key = path[len("/v1/records/") :]  # the ASGI server decoded the path once
            return await self._record(call, key)
        if path == "/" and prefers_html(call.headers.get("accept")):
            answer = await self._page(call)
        else:
            answer = self._free(call, path)
        if path == "/":
            answer.set_headers({"Vary": "Accept"})
        if answer.status_code != 200:
            return answer
        return cacheable(answer, call.headers.get("if-none-match"))

    def _free(self, call: TenantCall, path: str) -> Answer:
        """The routes every caller may read unpaid: what the data is, and what it costs."""
        if path == "/v1/schema":
            return Answer(200, self.schema(), media_type="application/json")
        if path == "/v1/openapi.json":
            return json_answer(openapi_document(self.tenant, call.root_url))
        if path in ("/docs", "/docs/"):
            return html_answer(docs_page(self.tenant, call.root_url))
        if path == "/":
            return json_answer(index_document(self.tenant, call.root_url))
        return error_answer(404, "not_found", call.request_id, f"no route {path}")

    async def _page(self, call: TenantCall) -> Answer:
        """`GET /` for a browser: the tenant's page, with its first rows (free, read once)."""
        if self._samples is None:
            first = Query(limit=SAMPLE_ROWS)
            page = await self._read(call, lambda ms: self.dataset.records(first, timeout_ms=ms))
            if isinstance(page, Answer):
                return page
            self._samples = page.rows
        return html_answer(tenant_page(self.tenant, call.root_url, self._samples))

    def _query(self, call: TenantCall) -> Query:
        """The call's parameters against the dataset's schema; raises `InvalidQuery`."""
        return parse_query(
            call.query_items(),
            self.dataset.columns,
            max_limit=call.page_cap,
            version=str(self.version.version),
            default_format=format_from_accept(call.headers.get("accept")),
        )

    async def _records(self, call: TenantCall, query: Query) -> Answer:
        body: tuple[bytes, int] | Answer | None
        try:  # bounded work: on the event loop, no thread hop
            body = self.dataset.page_json(query, inline=True)
        except InvalidQuery as exc:
            return error_answer(400, "invalid_query", call.request_id, exc.detail)
        except SearchUnfinished:  # a long search: a thread, with the query's deadline
            body = await self._read(call, lambda ms: self.dataset.page_json(query, timeout_ms=ms))
        if isinstance(body, Answer):
            return body
        if body is not None:
            data, rows = body
            return Answer(200, data, media_type="application/json", rows=rows)
        page = await self._read(call, lambda ms: self.dataset.records(query, timeout_ms=ms))
        if isinstance(page, Answer):
            return page
        extras = None
        if query.count or query.facets:
            extras = await self._read(call, lambda ms: summary(self.dataset, query, ms))
            if isinstance(extras, Answer):
                return extras
        body, media_type = render(page, query.format, extras)
        return Answer(200, body, media_type=media_type, rows=len(page.rows))

    async def _record(self, call: TenantCall, key: str) -> Answer:
        if self.version.key is None:
            return error_answer(
                404, "record_not_found", call.request_id, "this dataset has no key column"
            )
        row = await self._read(call, lambda ms: self.dataset.record(key, timeout_ms=ms))
        if isinstance(row, Answer):
            return row
        if row is None:
            return error_answer(404, "record_not_found", call.request_id, f"no record {key!r}")
        answer = json_answer({"ok": True, "item": row})
        answer.rows = 1
        return answer

    async def _read(self, call: TenantCall, read: Callable[[int], Any]) -> Any:
        """`read(deadline_ms)` off the event loop; a query error or a timeout as its Answer."""
        timeout_ms = self._timeout_ms(call)
        try:
            return await self._run(lambda: read(timeout_ms))
        except InvalidQuery as exc:
            return error_answer(400, "invalid_query", call.request_id, exc.detail)
        except QueryTimeout:
            return self._over_budget(call)

    @staticmethod
    def _timeout_ms(call: TenantCall) -> int:
        return call.limits.cpu_ms * WALL_CLOCK_FACTOR

    def _over_budget(self, call: TenantCall) -> Answer:
        return error_answer(
            STATUS["tenant_limit_exceeded"],
            "tenant_limit_exceeded",
            call.request_id,
            f"the query ran over its {self._timeout_ms(call)} ms budget "
            f"({call.limits.cpu_ms} cpuMs on the {call.route.plan} plan)",
        )

    @staticmethod
    async def _run(fn: Callable[[], Any]) -> Any:
        try:
            return await anyio.to_thread.run_sync(fn)
        except (InvalidQuery, QueryTimeout):
            raise
        except Exception as exc:
            raise TenantFailure(f"{type(exc).__name__}: {exc}") from exc
