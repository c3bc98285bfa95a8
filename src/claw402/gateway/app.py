"""The multi-tenant gateway: resolve the tenant, run its data API, stamp and log the answer.

A plain ASGI callable around Starlette's Request/Response: routing is the dispatcher's job,
so no router sits on the hot path.
"""

from __future__ import annotations

import itertools
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from claw402.datasets.engine import open_dataset
from claw402.dispatch.errors import STATUS
from claw402.dispatch.naming import (
    check_public_url,
    is_loopback_host,
    platform_hosts,
    request_host,
)
from claw402.dispatch.routing import Directory, TenantRoute
from claw402.events import kinds as ev
from claw402.events.compact import Trail, compact
from claw402.events.edge import InvalidEvents, authorized, ingest
from claw402.events.sink import EventSink
from claw402.events.store import EventStore
from claw402.gateway.directory import LiveDirectory
from claw402.gateway.responses import error_response, json_response
from claw402.gateway.tenant_api import (
    Guard,
    Produce,
    Replayable,
    TenantFailure,
    TenantRequest,
    TenantRuntime,
)
from claw402.registry.models import Tenant
from claw402.registry.store import Registry

# A caller's x-request-id kept as the request's correlation id; anything else is dropped.
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Request ids: a random per-process prefix plus a counter. Unique like uuid4, without a
# getrandom() call per request.
_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


EDGE_EVENTS_PATH = "/_claw402/events"  # not a tenant path: slugs never start with "_"
MAX_EVENTS_BODY = 256 * 1024
MAX_RUNTIMES = 256  # open tenant datasets kept in one process (least recently used go first)


async def unpriced_guard(call: TenantRequest, produce: Produce) -> Response:
    """Without a configured paywall a priced route cannot be served: answer 402, never data."""
    return error_response(
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
    ) -> None:
        """`public_url`: the gateway's address as callers see it (`402claw serve
        --public-url`), the root of every `/t/<slug>` resource URL; raises `InvalidName`."""
        self.registry = registry
        self.public_url = public_url
        self.directory = LiveDirectory(
            registry, reserved_hosts=platform_hosts(self._public_url, reserved_hosts)
        )
        self._origins: dict[tuple[object, ...], str] = {}  # local origins by what makes them
        self.guard = guard
        self.event_store = EventStore(registry.engine)
        self.sink = sink or EventSink(self.event_store.write_compact_trails)
        self.events_token = events_token
        self._runtimes: OrderedDict[tuple[str, int], TenantRuntime] = OrderedDict()
        self._replays = _Replays()

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
        response = await self.dispatch(scope, receive)
        await response(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                aclose = getattr(self.guard, "aclose", None)
                if aclose is not None:
                    await aclose()
                self.sink.close()
                self.directory.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def dispatch(self, scope: Scope, receive: Receive) -> Response:
        """The answer to one HTTP request (a Starlette `Request` is built only for handlers
        that read the query or the body: a 402 challenge needs neither)."""
        started = time.perf_counter()
        headers = header_map(scope["headers"])
        # Always our own id: a caller's (many calls may send the same) is a correlation id.
        request_id = new_request_id()
        correlation = headers.get("x-request-id")
        if correlation is not None and not _REQUEST_ID_RE.fullmatch(correlation):
            correlation = None
        path: str = scope["path"]
        if path == "/healthz":
            return self._stamp(json_response({"ok": True}), request_id, None, correlation)
        if path == EDGE_EVENTS_PATH and self.events_token:
            answer = await self._edge_events(Request(scope, receive), request_id)
            return self._stamp(answer, request_id, None, correlation)

        host = headers.get("host") or None
        directory = self.directory.current()
        # What the answer depends on: the resource URL's origin (which also tells a tenant's
        # own host from any other Host) and the path.
        origin = self._origin(scope, host, directory)
        replay_key = (origin, path)
        replay = self._replays.get(directory, replay_key)
        if replay is not None and replay.replayable.applies(scope["method"], headers):
            return self._replay(replay, request_id, correlation, started)
        resolution = directory.resolve(host, path)
        if resolution is None:  # maybe deployed a moment ago: look once more, uncached
            directory = self.directory.current(force=True)
            resolution = directory.resolve(host, path)
        if resolution is None:
            self.sink.emit([
                compact(ev.DISPATCH_FAILURE, request_id, None, status=404,
                        reason="tenant_not_found", correlation_id=correlation, path=path)
            ])  # fmt: skip
            failed = self._fail("tenant_not_found", request_id)
            return self._stamp(failed, request_id, None, correlation)

        route = resolution.tenant
        # The request's events (dispatch and payment steps) go to the sink together when it
        # ends, as one row: whatever ends it, even a cancelled call.
        trail = [
            compact(ev.DISPATCH_START, request_id, route, correlation_id=correlation,
                    path=resolution.path)
        ]  # fmt: skip
        try:
            response, reason, replayable = await self._run_tenant(
                scope, receive, headers, route, resolution.path, request_id, trail, origin
            )
            duration = (time.perf_counter() - started) * 1000
            kind = ev.DISPATCH_FAILURE if reason else ev.DISPATCH_SUCCESS
            trail.append(
                compact(kind, request_id, route, status=response.status_code,
                        duration_ms=duration, reason=reason)
            )  # fmt: skip
        finally:
            self.sink.emit(trail)
        if replayable is not None:
            self._replays.put(directory, replay_key, _Replay(replayable, route, resolution.path))
        return self._stamp(response, request_id, route, correlation)

    def _replay(
        self, replay: _Replay, request_id: str, correlation: str | None, started: float
    ) -> Response:
        """What `_run_tenant` would answer, from the guard's replayable answer: the same
        events (dispatch start, the guard's, dispatch success) and the same response, with
        this request's own id."""
        route = replay.route
        trail = [
            compact(ev.DISPATCH_START, request_id, route, correlation_id=correlation,
                    path=replay.path)
        ]  # fmt: skip
        response = replay.replayable.answer(request_id, trail)
        duration = (time.perf_counter() - started) * 1000
        trail.append(
            compact(ev.DISPATCH_SUCCESS, request_id, route, status=response.status_code,
                    duration_ms=duration)
        )  # fmt: skip
        self.sink.emit(trail)
        return self._stamp(response, request_id, route, correlation)

    async def _run_tenant(
        self,
        scope: Scope,
        receive: Receive,
        headers: dict[str, str],
        route: TenantRoute,
        path: str,
        request_id: str,
        trail: Trail,
        origin: str,
    ) -> tuple[Response, str | None, Replayable | None]:
        """The tenant's answer, the failure reason if it failed, and the guard's replayable
        answer if it gave one."""
        tenant: Tenant = route.extra["tenant"]
        if tenant.dataset is None:
            fail = self._fail("dispatcher_binding_missing", request_id)
            return fail, "no dataset deployed", None
        try:
            runtime = self._runtime(tenant)
            root = origin
            if path != scope["path"]:  # routed by /t/<slug>: the root keeps the prefix
                root += f"/t/{tenant.slug}"
            call = TenantRequest(scope, receive, headers, tenant, path, request_id, root, trail)
            response = await runtime.handle(call, self.guard)
        except TenantFailure as exc:
            return self._fail("tenant_worker_failure", request_id, str(exc)), str(exc), None
        except Exception as exc:  # a crash in a tenant must not take the gateway down
            reason = f"{type(exc).__name__}: {exc}"
            return self._fail("tenant_worker_failure", request_id), reason, None
        if response.status_code >= 500:  # the tenant or its paywall could not serve the call
            return response, _error_code(response), None
        return response, None, call.replayable

    def _origin(self, scope: Scope, host: str | None, directory: Directory) -> str:
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
        key = (scope.get("scheme", "http"), scope.get("root_path", ""), host, scope.get("server"))
        found = self._origins.get(key)
        if found is None:
            if len(self._origins) >= 1024:
                self._origins.clear()
            found = self._origins[key] = _local_origin(scope, host)
        return found

    def _runtime(self, tenant: Tenant) -> TenantRuntime:
        ds = tenant.dataset
        assert ds is not None
        key = (tenant.tenant_id, ds.version)
        runtime = self._runtimes.get(key)
        if runtime is not None and (runtime.tenant is tenant or runtime.tenant == tenant):
            self._runtimes.move_to_end(key)
            return runtime
        try:
            dataset = open_dataset(ds.data_path, ds.columns, ds.key, version=str(ds.version))
        except Exception as exc:
            raise TenantFailure(f"dataset unreadable: {exc}") from exc
        runtime = TenantRuntime(tenant, dataset)
        self._runtimes[key] = runtime
        while len(self._runtimes) > MAX_RUNTIMES:
            self._runtimes.popitem(last=False)
        return runtime

    async def _edge_events(self, request: Request, request_id: str) -> Response:
        """Lifecycle events from the dispatch Worker (EVENTS_URL), into the same durable sink."""
        if request.method != "POST":
            return error_response(405, "method_not_allowed", request_id, headers={"allow": "POST"})
        assert self.events_token is not None
        if not authorized(request.headers.get("authorization"), self.events_token):
            return error_response(401, "unauthorized", request_id, "a valid bearer token is needed")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_EVENTS_BODY:
                return error_response(413, "payload_too_large", request_id)
        try:  # written before answering: the ledger attributes edge settlements from them
            stored = await run_in_threadpool(ingest, self.event_store, body)
        except InvalidEvents as exc:
            return error_response(400, "invalid_events", request_id, str(exc))
        return json_response({"ok": True, "stored": stored})

    @staticmethod
    def _fail(code: str, request_id: str, detail: str | None = None) -> Response:
        return error_response(STATUS[code], code, request_id, detail)

    @staticmethod
    def _stamp(
        response: Response, request_id: str, route: TenantRoute | None, correlation: str | None
    ) -> Response:
        # Appended raw: no answer of ours sets these, so no MutableHeaders scan is needed.
        response.raw_headers.append((b"x-request-id", request_id.encode("latin-1")))
        if route is not None:
            response.raw_headers.append((b"x-tenant-id", route.tenant_id.encode("latin-1")))
        if correlation is not None:
            response.raw_headers.append((b"x-correlation-id", correlation.encode("latin-1")))
        return response


ReplayKey = tuple[str, str]  # (resource URL origin, path)


@dataclass(slots=True)
class _Replay:
    replayable: Replayable
    route: TenantRoute
    path: str  # the path the tenant saw


class _Replays:
    """Replayable answers by (resource URL origin, path), kept for one directory snapshot:
    a deploy, a price or plan change or a removal makes a new snapshot, and that empties them."""

    __slots__ = ("_by_key", "_snapshot")
    MAX = 4096  # resources (hosts x paths; record keys are paths): bounded, rebuilt on demand

    def __init__(self) -> None:
        self._by_key: dict[ReplayKey, _Replay] = {}
        self._snapshot: Directory | None = None

    def get(self, snapshot: Directory, key: ReplayKey) -> _Replay | None:
        if snapshot is not self._snapshot:
            self._by_key, self._snapshot = {}, snapshot
            return None
        return self._by_key.get(key)

    def clear(self) -> None:
        self._by_key.clear()

    def put(self, snapshot: Directory, key: ReplayKey, replay: _Replay) -> None:
        if snapshot is not self._snapshot:
            return  # made under a snapshot that has since been replaced
        if len(self._by_key) >= self.MAX:
            self._by_key.clear()
        self._by_key[key] = replay


def _error_code(response: Response) -> str:
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
