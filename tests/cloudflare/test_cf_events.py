"""Edge lifecycle events through EVENTS_URL (bearer secret) into the registry's events table."""

from __future__ import annotations

import time

import httpx
import pytest
from cfhelpers import add_tenant, js_worker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from claw402.cloudflare.dispatcher import DispatcherOptions, build_dispatcher
from claw402.cloudflare.events import InvalidEvents, authorized, check_batch, ingest_events
from claw402.cloudflare.workerd import LocalEdge
from claw402.serving import ServerThread

TOKEN = "edge-events-token"
ECHO = 'export default { async fetch(r) { return new Response("hi"); } };'


def sink_app(registry) -> Starlette:
    """What the gateway would mount: check the bearer token, then ingest."""

    async def receive(request: Request) -> JSONResponse:
        if not authorized(request.headers.get("authorization"), TOKEN):
            return JSONResponse({"ok": False, "error": "unauthorized"}, status_code=401)
        try:
            stored = ingest_events(registry, await request.json())
        except InvalidEvents as exc:
            return JSONResponse({"ok": False, "error": "invalid_events", "detail": str(exc)},
                                status_code=400)
        return JSONResponse({"ok": True, "stored": stored})

    return Starlette(routes=[Route("/edge-events", receive, methods=["POST"])])


def test_events_reach_the_registry(registry):
    tenant = add_tenant(registry, "acme", plan="pro")
    with ServerThread(sink_app(registry)) as sink:
        options = DispatcherOptions(events_url=f"{sink.url}/edge-events", secrets=["EVENTS_TOKEN"])
        dispatcher = build_dispatcher(registry.list_tenants(), options)
        with LocalEdge(dispatcher, [js_worker("tenant-acme-worker", ECHO)],
                       events_to_recorder=False,
                       secrets={"claw402-dispatcher": {"EVENTS_TOKEN": TOKEN}}) as edge:
            hit = httpx.get(f"{edge.url}/t/acme/", headers={"x-request-id": "e-1"})
            assert hit.text == "hi"
            miss = httpx.get(f"{edge.url}/t/nobody/", headers={"x-request-id": "e-2"})
            deadline = time.monotonic() + 5
            while len(registry.read_events()) < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
    events = registry.read_events()
    hit_id, miss_id = hit.headers["x-request-id"], miss.headers["x-request-id"]
    assert [(e["type"], e["requestId"], e["correlationId"]) for e in events] == [
        ("dispatch_start", hit_id, "e-1"), ("dispatch_success", hit_id, "e-1"),
        ("dispatch_failure", miss_id, "e-2")]
    assert [e["requestId"] for e in registry.read_events(request_id="e-1")] == [hit_id] * 2
    assert events[1]["tenantId"] == tenant.tenant_id and events[1]["source"] == "edge"
    assert registry.read_events(tenant_id=tenant.tenant_id, kind="dispatch_success")[0][
        "limits"]["cpuMs"] == 200


def test_wrong_token_is_refused_and_the_answer_unaffected(registry):
    add_tenant(registry, "acme")
    with ServerThread(sink_app(registry)) as sink:
        options = DispatcherOptions(events_url=f"{sink.url}/edge-events", secrets=["EVENTS_TOKEN"])
        with LocalEdge(build_dispatcher(registry.list_tenants(), options),
                       [js_worker("tenant-acme-worker", ECHO)], events_to_recorder=False,
                       secrets={"claw402-dispatcher": {"EVENTS_TOKEN": "wrong"}}) as edge:
            assert httpx.get(f"{edge.url}/t/acme/").status_code == 200
            time.sleep(0.3)
    assert registry.read_events() == []


@pytest.mark.parametrize(("payload", "message"), [
    ([], "expected"),
    ({"events": []}, "expected"),
    ({"events": ["x"]}, "event 0 is not an object"),
    ({"events": [{"type": "dispatch_start", "ts": 1.0}]}, "requestId is missing"),
    ({"events": [{"type": "drop_tables", "ts": 1, "requestId": "r"}]}, "unknown type"),
    ({"events": [{"type": "dispatch_start", "ts": True, "requestId": "r"}]}, "ts is missing"),
])
def test_bad_batches_are_refused(payload, message):
    with pytest.raises(InvalidEvents, match=message):
        check_batch(payload)
    assert not authorized("Bearer nope", TOKEN) and authorized(f"bearer {TOKEN}", TOKEN)
