"""The multi-tenant gateway: the tenant-API core (`claw402.tenant_api`) adapted to ASGI.

A plain ASGI callable: each request becomes a `GatewayCall` that goes through the gateway's
steps (`gateway/steps.py`), and its `Answer` is sent as is; routing is the dispatcher's job,
so no router sits on the hot path. Stamps `x-request-id`/`x-tenant-id` and logs the trail.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import anyio.to_thread
import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from claw402.discovery.manifest import Manifests, is_manifest_path
from claw402.dispatch.errors import STATUS
from claw402.dispatch.naming import (
    CORRELATION_ID_RE,
    check_public_url,
    is_loopback_host,
    platform_hosts,
    request_host,
)
from claw402.dispatch.routing import Directory, TenantRoute
from claw402.events import kinds as ev
from claw402.events.compact import DETAILS, Compact, compact
from claw402.events.edge import InvalidEvents, authorized, ingest
from claw402.events.sink import EventSink
from claw402.events.store import EventStore
from claw402.gateway.catalogue import Catalogue, paywall_asset
from claw402.gateway.directory import LiveDirectory
from claw402.gateway.metrics import PATH as METRICS_PATH
from claw402.gateway.metrics import GatewayMetrics
from claw402.gateway.runtimes import Runtimes
from claw402.gateway.steps import GatewayCall, Replays, steps
from claw402.limits.junk import JunkCounter
from claw402.limits.limiter import Limiter
from claw402.limits.notify import REDIS_URL_ENV, RegistryListener, prefix
from claw402.limits.policy import Policy, policy_for
from claw402.mcp.paths import mcp_suffix
from claw402.pages.paywall import ASSET_PREFIX
from claw402.registry.models import Tenant
from claw402.registry.store import Registry
from claw402.tenant_api.answer import Answer, error_answer, json_answer
from claw402.tenant_api.call import Guard, Produce, TenantCall, TenantFailure
from claw402.tenant_api.manners import preflight, with_cors
from claw402.tenant_api.runtime import TenantRuntime

if TYPE_CHECKING:
    from claw402.mcp.server import McpEndpoints

# Request ids: a random per-process prefix plus a counter. Unique like uuid4, without a
# getrandom() call per request.
_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count(1)
log = logging.getLogger(__name__)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


EDGE_EVENTS_PATH = "/_claw402/events"  # not a tenant path: slugs never start with "_"
MAX_EVENTS_BODY = 256 * 1024


async def unpriced_guard(call: TenantCall, produce: Produce) -> Answer:
    """Without a configured paywall a priced route cannot be served: answer 402, never data."""
    return error_answer(
        402,
        "payment_required",
        call.request_id,
        f"{call.resource_url} costs ${call.tenant.price_usd} per call; this gateway has no "
        "payment network configured (run `402claw dev` or set CLAW402_ENV)",
    )


class Gateway:
    def __init__(
        self,
        registry: Registry,
        *,
        guard: Guard = unpriced_guard,
        sink: EventSink | None = None,
        events_token: str | None = None,
        public_url: str | None = None,
        reserved_hosts: Iterable[str] = (),
        limiter: Limiter | bool | None = True,
        runtimes: int | None = None,
    ) -> None:
        """`public_url`: the gateway's address as callers see it (`402claw serve
        --public-url`), the root of every `/t/<slug>` resource URL; raises `InvalidName`.
        `limiter`: True builds one from the environment (`Limiter.from_env`), False or None
        runs without limits. `runtimes`: how many tenant runtimes to keep (default
        `CLAW402_RUNTIMES`, else `gateway.runtimes.MAX_RUNTIMES`)."""
        self.registry = registry
        self.public_url = public_url
        self.directory = LiveDirectory(
            registry, reserved_hosts=platform_hosts(self._public_url, reserved_hosts)
        )
        self._origins: dict[tuple[object, ...], str] = {}  # local origins by what makes them
        self.guard = guard
        self.event_store = EventStore(registry.engine)
        self.sink = sink or EventSink(self.event_store.write_compact_trails)
        self.metrics = GatewayMetrics()  # `/metrics`
        self.events_token = events_token
        self.runtimes = Runtimes(runtimes)  # raises ValueError on a bad size
        self.replays = Replays()
        self.limiter = Limiter.from_env(registry.engine) if limiter is True else limiter or None
        self._policies: dict[str, Policy] = {}
        self._policy_snapshot: Directory[Tenant] | None = None
        self._listener: RegistryListener | None = None
        self.junk = JunkCounter(registry.engine)
        self.catalogue = Catalogue()
        self.steps = steps(self)
        self.manifests = Manifests(getattr(guard, "offer", None))  # `/.well-known/x402`
        self._mcp: McpEndpoints | None = None  # `/mcp`, `/t/<slug>/mcp`, built on first use

    @property
    def mcp(self) -> McpEndpoints:
        """Tenants as MCP tools; the `mcp` SDK loads with the first MCP request."""
        if self._mcp is None:
            from claw402.mcp.server import McpEndpoints

            self._mcp = McpEndpoints(self)
        return self._mcp

    @property
    def public_url(self) -> str | None:
        return self._public_url

    @public_url.setter
    def public_url(self, url: str | None) -> None:
        """Set before serving (`402claw dev` learns its port once its server started)."""
        self._public_url = check_public_url(url) if url else None
        parts = urlsplit(self._public_url or "")
        # A tenant's own host goes with the public scheme and port: `{scheme}://{host}{port}`.
        self._host_origin = (f"{parts.scheme}://", f":{parts.port}" if parts.port else "")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if "/mcp" in scope["path"] and mcp_suffix(scope["path"]) is not None:
            await self.mcp(scope, receive, send)  # streams (SSE): not one Answer
            return
        answer = await self.dispatch(scope, receive)
        headers = answer.raw_headers
        headers.append((b"content-length", str(len(answer.body)).encode()))
        await send({"type": "http.response.start", "status": answer.status_code,
                    "headers": headers})  # fmt: skip
        await send({"type": "http.response.body", "body": answer.body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._listen()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                aclose = getattr(self.guard, "aclose", None)
                if aclose is not None:
                    await aclose()
                self.metrics.flush()
                self.sink.close()
                self.directory.close()
                if self.limiter is not None:
                    self.limiter.close()
                if self._listener is not None:
                    self._listener.stop()
                self.junk.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def dispatch(self, scope: Scope, receive: Receive) -> Answer:
        """The answer to one HTTP request (a Starlette `Request` is built only for the edge's
        event posts: a tenant call reads its query string, never a body)."""
        started = time.perf_counter()
        headers = header_map(scope["headers"])
        # Always our own id: a caller's (many calls may send the same) is a correlation id.
        request_id = new_request_id()
        correlation = headers.get("x-request-id")
        if correlation is not None and not CORRELATION_ID_RE.fullmatch(correlation):
            correlation = None
        path: str = scope["path"]
        try:  # a failure here (the registry, the events store) still gets our answer
            if path == "/healthz":
                return self._stamp(json_answer({"ok": True}), request_id, None, correlation)
            if path == METRICS_PATH:
                answer = await self.metrics.answer(headers.get("authorization"), request_id)
                return self._stamp(answer, request_id, None, correlation)
            if path.startswith(ASSET_PREFIX):  # the paywall page's script, from our own origin
                answer = await anyio.to_thread.run_sync(paywall_asset, path, request_id)
                return self._stamp(answer, request_id, None, correlation)
            if scope["method"] == "OPTIONS":  # a browser's CORS preflight, before any tenant step
                return self._stamp(preflight(), request_id, None, correlation)
            if path == "/" and scope["method"] in ("GET", "HEAD"):
                host = headers.get("host")
                directory = self.directory.current()
                if request_host(host) not in directory.by_host:  # a tenant's host: its own page
                    origin = self.origin(scope, host, directory)
                    query = scope["query_string"]
                    answer = self.catalogue.answer(directory, origin, headers, query)
                    return self._stamp(answer, request_id, None, correlation)
            if path == EDGE_EVENTS_PATH and self.events_token:
                answer = await self._edge_events(Request(scope, receive), request_id)
                return self._stamp(answer, request_id, None, correlation)

            if is_manifest_path(path):
                answer = self._manifest(scope, headers, path, request_id)
                return self._stamp(answer, request_id, None, correlation)
        except Exception as exc:
            self.sink.emit([self._crashed(exc, request_id, correlation, path, ())])
            answer = self.fail("internal_error", request_id)
            return self._stamp(answer, request_id, None, correlation)

        call = GatewayCall(self.steps, scope, headers, request_id, correlation)
        # The request's events (dispatch and payment steps) go to the sink together when it
        # ends, as one row: whatever ends it, even a cancelled call.
        try:
            try:
                answer = await call.next()
            except Exception as exc:  # a crash in a tenant must not take the gateway down
                if not call.in_tenant:  # resolving failed (the registry): 500 internal_error
                    call.trail.append(self._crashed(exc, request_id, correlation, path,
                                                    call.steps_passed))  # fmt: skip
                    answer = self.fail("internal_error", request_id)
                elif isinstance(exc, TenantFailure):
                    call.reason = str(exc)
                    answer = self.fail("tenant_worker_failure", request_id, str(exc))
                else:
                    call.reason = f"{type(exc).__name__}: {exc}"
                    log.exception("request %s: %s", request_id, call.reason)
                    answer = self.fail("tenant_worker_failure", request_id)
            if not call.in_tenant:
                self._observe(call, answer, started)
                return self._stamp(answer, request_id, None, correlation)
            if call.reason is None and answer.status_code >= 500:
                call.reason = _error_code(answer)  # the tenant or its paywall could not serve
            duration = (time.perf_counter() - started) * 1000
            kind = ev.DISPATCH_FAILURE if call.reason else ev.DISPATCH_SUCCESS
            call.trail.append(
                compact(kind, request_id, call.route, status=answer.status_code,
                        duration_ms=duration, reason=call.reason, steps=call.steps_passed)
            )  # fmt: skip
            if call.books_kept is not None:  # slots not given back (limits/limiter.py)
                call.trail[-1][DETAILS]["booksKept"] = call.books_kept
        finally:
            if call.trail:
                self.sink.emit(call.trail)
        self._observe(call, answer, started)
        if call.replayable is not None and call.replay is None:
            self.replays.remember(call)
        return self._stamp(answer, request_id, call.route, correlation, cors=not call.stamped)

    def _observe(self, call: GatewayCall, answer: Answer, started: float) -> None:
        seconds = time.perf_counter() - started
        route = call.route if call.in_tenant else None  # unset before a tenant is resolved
        self.metrics.observe(route, answer.status_code, seconds, call.trail, self.sink.backlog)

    def origin(self, scope: Scope, host: str | None, directory: Directory[Tenant]) -> str:
        """`scheme://host[:port][/prefix]` of the request's resource URLs, never a Host header
        a caller made up. A tenant's own host (routable in `directory`): that name, with the
        public URL's scheme and port if one is configured, else the request's scheme. Any
        other request: the public URL; without one (development), the Host header only when
        it names a loopback address (`localhost:8402`, `127.0.0.1:8402`, `[::1]:8402`), else
        the address the server accepted the connection on."""
        name = request_host(host)
        if name is not None and name in directory.by_host:
            if self._public_url is not None:
                return f"{self._host_origin[0]}{name}{self._host_origin[1]}"
            return f"{scope.get('scheme', 'http')}://{name}{scope.get('root_path', '')}"
        if self._public_url is not None:
            return self._public_url
        server = scope.get("server")  # a tuple, or a list under some servers (unhashable)
        key = (scope.get("scheme", "http"), scope.get("root_path", ""), host,
               tuple(server) if server else None)  # fmt: skip
        found = self._origins.get(key)
        if found is None:
            if len(self._origins) >= 1024:
                self._origins.clear()
            found = self._origins[key] = _local_origin(scope, host)
        return found

    def _listen(self) -> None:
        """With Redis, registry changes arrive by pub/sub: the per-request generation check
        becomes a once-a-second safety net, back to every request while unsubscribed."""
        url = os.environ.get(REDIS_URL_ENV)
        if not url or self._listener is not None:
            return
        live = self.directory

        def state(subscribed: bool) -> None:
            live.set_interval(1.0 if subscribed else LiveDirectory.MIN_INTERVAL)

        self._listener = RegistryListener(url, prefix(), live.expire, state).start()

    def policy(self, directory: Directory[Tenant], route: TenantRoute) -> Policy:
        """The limits of `route`'s tenant in `directory`, built once per snapshot."""
        if directory is not self._policy_snapshot:
            self._policies, self._policy_snapshot = {}, directory
        found = self._policies.get(route.slug)
        if found is None:
            found = self._policies[route.slug] = policy_for(directory.by_slug[route.slug].tenant)
        return found

    def runtime(self, tenant: Tenant) -> TenantRuntime:
        """`tenant`'s runtime (kept in `self.runtimes`); raises `TenantFailure`."""
        return self.runtimes.get(tenant)

    def _manifest(
        self, scope: Scope, headers: dict[str, str], path: str, request_id: str
    ) -> Answer:
        """`/.well-known/x402` of this host, or of the tenant under `/t/<slug>/`."""
        if scope["method"] not in ("GET", "HEAD"):
            return error_answer(405, "method_not_allowed", request_id, headers={"allow": "GET"})
        host = headers.get("host") or None
        directory = self.directory.current()
        origin = self.origin(scope, host, directory)
        answer = self.manifests.answer(directory, host, path, origin, headers.get("if-none-match"))
        return answer or self.fail("tenant_not_found", request_id)

    async def _edge_events(self, request: Request, request_id: str) -> Answer:
        """Lifecycle events from the dispatch Worker (EVENTS_URL), into the same durable sink."""
        if request.method != "POST":
            return error_answer(405, "method_not_allowed", request_id, headers={"allow": "POST"})
        assert self.events_token is not None
        if not authorized(request.headers.get("authorization"), self.events_token):
            return error_answer(401, "unauthorized", request_id, "a valid bearer token is needed")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_EVENTS_BODY:
                return error_answer(413, "payload_too_large", request_id)
        try:  # written before answering: the ledger attributes edge settlements from them
            stored = await run_in_threadpool(ingest, self.event_store, body)
        except InvalidEvents as exc:
            return error_answer(400, "invalid_events", request_id, str(exc))
        return json_answer({"ok": True, "stored": stored})

    @staticmethod
    def _crashed(
        exc: Exception, request_id: str, correlation: str | None, path: str, steps: Iterable[str]
    ) -> Compact:
        """The dispatch_failure event of an exception raised before any tenant was resolved
        (the dispatch Worker's `crashed` does the same), logged with its traceback."""
        reason = f"{type(exc).__name__}: {exc}"
        log.exception("request %s: %s", request_id, reason)
        return compact(ev.DISPATCH_FAILURE, request_id, None, status=500, reason=reason,
                       correlation_id=correlation, path=path, steps=tuple(steps))  # fmt: skip

    @staticmethod
    def fail(code: str, request_id: str, detail: str | None = None) -> Answer:
        return error_answer(STATUS[code], code, request_id, detail)

    @staticmethod
    def _stamp(
        response: Answer,
        request_id: str,
        route: TenantRoute | None,
        correlation: str | None,
        cors: bool = True,
    ) -> Answer:
        if cors:
            with_cors(response)
        # Appended raw: no answer of ours sets these, so no MutableHeaders scan is needed.
        response.raw_headers.append((b"x-request-id", request_id.encode("latin-1")))
        if route is not None:
            response.raw_headers.append((b"x-tenant-id", route.tenant_id.encode("latin-1")))
        if correlation is not None:
            response.raw_headers.append((b"x-correlation-id", correlation.encode("latin-1")))
        return response


def _error_code(response: Answer) -> str:
    """The `error` of a JSON error answer, for the failure event's reason."""
    try:
        return str(orjson.loads(response.body)["error"])
    except (ValueError, KeyError, TypeError):
        return f"status_{response.status_code}"


def header_map(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request headers as one dict, read once (the first of repeated names wins, as in
    Starlette's `Headers.get`); ASGI servers give the names in lower case."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in reversed(raw)}


def _local_origin(scope: Scope, host: str | None) -> str:
    """Without a public URL: the Host header if it is a loopback name with at most a numeric
    port (what a developer typed), else the server's own address."""
    scheme, root_path = scope.get("scheme", "http"), scope.get("root_path", "")
    if host:
        value = host.strip().lower()
        if value.startswith("["):
            name, _, port = value[1:].partition("]")
            port = port.removeprefix(":") if port.startswith(":") else port
            shown = f"[{name}]"
        else:
            name, _, port = value.partition(":")
            shown = name
        if is_loopback_host(name) and (port == "" or (port.isdigit() and len(port) <= 5)):
            return f"{scheme}://{shown}{':' + port if port else ''}{root_path}"
    server = scope.get("server") or ("localhost", 80)
    address = f"[{server[0]}]" if ":" in str(server[0]) else server[0]
    return f"{scheme}://{address}:{server[1]}{root_path}"
