"""Edge lifecycle events through EVENTS_URL (bearer secret) into the events table, by way of
the gateway's own `POST /_claw402/events`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from cfhelpers import add_tenant, js_worker

from claw402.cloudflare.dispatcher import DispatcherOptions, build_dispatcher
from claw402.cloudflare.workerd import LocalEdge
from claw402.events.sink import EventSink
from claw402.events.store import EventStore
from claw402.gateway.app import EDGE_EVENTS_PATH, Gateway
from claw402.serving import ServerThread

TOKEN = "edge-events-token"
ECHO = 'export default { async fetch(r) { return new Response("hi"); } };'


@contextmanager
def gateway_sink(registry) -> Iterator[str]:
    """A gateway taking edge events with TOKEN; yields the Worker's EVENTS_URL."""
    sink = EventSink.in_process(registry.engine, interval=0.02)
    try:
        with ServerThread(Gateway(registry, sink=sink, events_token=TOKEN)) as server:
            yield f"{server.url}{EDGE_EVENTS_PATH}"
    finally:
        sink.close()


def test_events_reach_the_registry(registry):
    tenant = add_tenant(registry, "acme", plan="pro")
    store = EventStore(registry.engine)
    with gateway_sink(registry) as events_url:
        options = DispatcherOptions(events_url=events_url)  # its bearer: a secret by default
        assert options.all_secrets == ["CLAW402_EVENTS_TOKEN"]  # the gateway's own variable
        dispatcher = build_dispatcher(registry.list_tenants(), options)
        with LocalEdge(
            dispatcher,
            [js_worker("tenant-acme-worker", ECHO)],
            events_to_recorder=False,
            secrets={"claw402-dispatcher": {"CLAW402_EVENTS_TOKEN": TOKEN}},
        ) as edge:
            hit = httpx.get(f"{edge.url}/t/acme/", headers={"x-request-id": "e-1"})
            assert hit.text == "hi"
            miss = httpx.get(f"{edge.url}/t/nobody/", headers={"x-request-id": "e-2"})
            deadline = time.monotonic() + 5
            while len(store.read_events()) < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
    events = store.read_events()
    hit_id, miss_id = hit.headers["x-request-id"], miss.headers["x-request-id"]
    assert [(e["type"], e["requestId"], e["correlationId"]) for e in events] == [
        ("dispatch_start", hit_id, "e-1"),
        ("dispatch_success", hit_id, "e-1"),
        ("dispatch_failure", miss_id, "e-2"),
    ]
    assert [e["requestId"] for e in store.read_events(request_id="e-1")] == [hit_id] * 2
    assert events[1]["tenantId"] == tenant.tenant_id and events[1]["source"] == "edge"
    assert (
        store.read_events(tenant_id=tenant.tenant_id, kind="dispatch_success")[0]["limits"]["cpuMs"]
        == 200
    )


def test_wrong_token_is_refused_and_the_answer_unaffected(registry):
    """(Under the secret's earlier name, `--secret EVENTS_TOKEN`, which still works.)"""
    add_tenant(registry, "acme")
    store = EventStore(registry.engine)
    with gateway_sink(registry) as events_url:
        options = DispatcherOptions(events_url=events_url, secrets=["EVENTS_TOKEN"])
        with LocalEdge(
            build_dispatcher(registry.list_tenants(), options),
            [js_worker("tenant-acme-worker", ECHO)],
            events_to_recorder=False,
            secrets={"claw402-dispatcher": {"EVENTS_TOKEN": "wrong"}},
        ) as edge:
            assert httpx.get(f"{edge.url}/t/acme/").status_code == 200
            time.sleep(0.3)
    assert store.read_events() == []
