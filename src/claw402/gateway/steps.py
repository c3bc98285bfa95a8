"""The gateway's request path: its steps in order (`steps`), and the replay memo they consult.

resolve -> limits -> guard -> run, each a small object in `steps(gateway)`: a new step on
every request (a rate limit, a quota) is one entry there, and one in the dispatch Worker's
`STEPS` (`cloudflare/templates/dispatcher.js`); `tests/contract` checks both report the same
order. An unpaid call to a resource already challenged under this directory snapshot is
answered by the resolve and guard steps from the memo, but still passes every step before
the guard.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio.to_thread

from claw402.dispatch.plans import max_page_size
from claw402.dispatch.routing import Directory, TenantRoute
from claw402.events import kinds as ev
from claw402.events.compact import compact
from claw402.pages.paywall import PaywallUnavailable, paywall_html
from claw402.pages.render import prefers_html
from claw402.registry.models import Tenant
from claw402.tenant_api.answer import Answer, RawHeaders
from claw402.tenant_api.call import Pipeline, Replayable, TenantCall, paid_route
from claw402.tenant_api.manners import no_store, with_cors
from claw402.tenant_api.runtime import TenantRuntime

if TYPE_CHECKING:
    from starlette.types import Scope

    from claw402.gateway.app import Gateway

ReplayKey = tuple[str, str]  # (resource URL origin, path)
log = logging.getLogger(__name__)


class GatewayCall(TenantCall):
    """A call with what the gateway's steps keep between them."""

    __slots__ = ("correlation", "directory", "in_tenant", "reason", "replay", "replay_key",
                 "runtime", "scope", "stamped")  # fmt: skip
    directory: Directory[Tenant]
    replay_key: ReplayKey
    runtime: TenantRuntime

    def __init__(
        self,
        pipeline: Pipeline,
        scope: Scope,
        headers: dict[str, str],
        request_id: str,
        correlation: str | None,
    ) -> None:
        # The base's fields set here directly: this runs on every request, replays included.
        self._steps, self._names, self._at = pipeline.steps, pipeline.names, 0
        self.method, self.query_string = scope["method"], scope["query_string"]
        self.headers, self.request_id, self.trail = headers, request_id, []
        self.replayable = self.invalid = self.query = self.payment = self.books_kept = None
        self.scope = scope
        self.correlation = correlation
        self.in_tenant = False  # resolved: a dispatch_start is in the trail
        self.replay: _Replay | None = None
        self.reason: str | None = None  # why the tenant failed, for the last event
        self.stamped = False  # the answer already has the CORS headers (a replayed 402)


class ResolveStep:
    """The tenant by Host, then by `/t/<slug>` (404 tenant_not_found), and its runtime (500
    dispatcher_binding_missing without a dataset); or the memo's replayable answer."""

    name = "resolve"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, call: GatewayCall) -> Answer:  # type: ignore[override]
        gateway, scope = self.gateway, call.scope
        path: str = scope["path"]
        host = call.headers.get("host") or None
        directory = gateway.directory.current()
        # What the answer depends on: the resource URL's origin (which also tells a tenant's
        # own host from any other Host) and the path.
        origin = gateway.origin(scope, host, directory)
        call.directory, call.replay_key = directory, (origin, path)
        replay = gateway.replays.get(directory, call.replay_key)
        if replay is not None and replay.replayable.applies(call.method, call.headers):
            call.replay, call.route, call.path = replay, replay.route, replay.path
            self._start(call)
            return await call.next()
        resolution = directory.resolve(host, path)
        if resolution is None:  # maybe deployed a moment ago: look once more, uncached
            directory = call.directory = gateway.directory.current(force=True)
            resolution = directory.resolve(host, path)
        if resolution is None:  # junk: counted, and only a sample gets an event row
            if gateway.junk.count("tenant_not_found", host, path):
                call.trail.append(
                    compact(ev.DISPATCH_FAILURE, call.request_id, None, status=404,
                            reason="tenant_not_found", correlation_id=call.correlation,
                            path=path, steps=call.steps_passed)
                )  # fmt: skip
            return gateway.fail("tenant_not_found", call.request_id)
        entry = resolution.entry
        call.route, call.tenant, call.path = entry.route, entry.tenant, resolution.path
        # Routed by /t/<slug>: the root keeps the prefix.
        call.root_url = origin if resolution.path == path else f"{origin}/t/{entry.route.slug}"
        self._start(call)
        if entry.tenant.dataset is None:
            call.reason = "no dataset deployed"
            return gateway.fail("dispatcher_binding_missing", call.request_id)
        call.runtime = gateway.runtime(entry.tenant)  # raises TenantFailure
        return await call.next()

    def _start(self, call: GatewayCall) -> None:
        call.in_tenant = True
        call.trail.append(
            compact(ev.DISPATCH_START, call.request_id, call.route,
                    correlation_id=call.correlation, path=call.path)
        )  # fmt: skip


class LimitsStep:
    """The plan's limits for this call (the query's deadline, the page-size cap), then the
    caller's rate and the tenant's quotas and spend cap (`claw402.limits`), replays included."""

    name = "limits"

    def __init__(self, gateway: Gateway | None = None) -> None:
        self.gateway = gateway

    async def __call__(self, call: GatewayCall) -> Answer:  # type: ignore[override]
        route = call.route
        call.limits = route.limits
        call.page_cap = max_page_size(route.plan)
        gateway = self.gateway
        if gateway is None or gateway.limiter is None:
            return await call.next()
        policy = gateway.policy(call.directory, route)
        client = call.scope.get("client")
        return await gateway.limiter.run(call, policy, client[0] if client else None, call.next)


class GuardStep:
    """A priced tenant's paid routes go through the gateway's guard (the paywall), which
    runs the rest only once it is paid; a memoised answer is replayed here."""

    name = "guard"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, call: GatewayCall) -> Answer:  # type: ignore[override]
        replay = call.replay
        if replay is not None:
            answer = replay.replayable.answer(call.request_id, call.trail)
            if not prefers_html(call.headers.get("accept")):
                return replay.stamp(answer, call)
        elif call.tenant.call_price_atomic <= 0 or not paid_route(call.method, call.path):
            return await call.next()
        else:
            call.runtime.check(call)  # an invalid query is known before any payment
            answer = await self.gateway.guard(call, call.next)
        if answer.status_code == 402 and prefers_html(call.headers.get("accept")):
            # Off the event loop: the first page runs node to load the package (seconds).
            answer = await anyio.to_thread.run_sync(paywall_page, answer)
        # A 402, a paid answer or a payment error: for this caller and this payment only.
        return no_store(answer)


class RunStep:
    """The tenant's data API answers."""

    name = "run"

    async def __call__(self, call: GatewayCall) -> Answer:  # type: ignore[override]
        return await call.runtime.handle(call)


def paywall_page(answer: Answer) -> Answer:
    """A 402 for a browser: the x402 paywall page, its `PAYMENT-REQUIRED` header kept."""
    header = answer.header("payment-required")
    try:
        page = paywall_html(header) if header else None
    except PaywallUnavailable as exc:
        log.warning("paywall page unavailable, answering JSON: %s", exc)
        return answer
    if page is None:
        return answer
    headers = [h for h in answer.raw_headers if h[0] not in (b"content-type", b"vary")]
    return Answer(402, page.encode(), {"Vary": "Accept"}, media_type="text/html",
                  raw_headers=headers)  # fmt: skip


def steps(gateway: Gateway) -> Pipeline:
    return Pipeline([ResolveStep(gateway), LimitsStep(gateway), GuardStep(gateway), RunStep()])


@dataclass(slots=True)
class _Replay:
    replayable: Replayable
    route: TenantRoute
    path: str  # the path the tenant saw
    headers: RawHeaders | None = None  # the replayed answer's, stamped once

    def stamp(self, answer: Answer, call: GatewayCall) -> Answer:
        """`answer` with the headers every answer to this resource gets (`no-store`, CORS),
        made on the first replay and copied after: a replayable's headers never change."""
        if self.headers is None:
            self.headers = with_cors(no_store(answer)).raw_headers.copy()
        else:
            answer.raw_headers = self.headers.copy()
        call.stamped = True
        return answer


class Replays:
    """Replayable answers by (resource URL origin, path), kept for one directory snapshot:
    a deploy, a price or plan change or a removal makes a new snapshot, and that empties them."""

    __slots__ = ("_by_key", "_snapshot")
    MAX = 4096  # resources (hosts x paths; record keys are paths): bounded, rebuilt on demand

    def __init__(self) -> None:
        self._by_key: dict[ReplayKey, _Replay] = {}
        self._snapshot: Directory[Tenant] | None = None

    def get(self, snapshot: Directory[Tenant], key: ReplayKey) -> _Replay | None:
        if snapshot is not self._snapshot:
            self._by_key, self._snapshot = {}, snapshot
            return None
        return self._by_key.get(key)

    def clear(self) -> None:
        self._by_key.clear()

    def remember(self, call: GatewayCall) -> None:
        """Keep the call's replayable answer, if its guard gave one and it succeeded."""
        if call.replay is not None or call.replayable is None or call.reason is not None:
            return
        if call.directory is not self._snapshot:
            return  # made under a snapshot that has since been replaced
        if len(self._by_key) >= self.MAX:
            self._by_key.clear()
        self._by_key[call.replay_key] = _Replay(call.replayable, call.route, call.path)
