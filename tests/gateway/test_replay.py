"""Unpaid calls to one resource are answered from the paywall's replayable 402.

A replayed answer must be indistinguishable from a guarded one: the same challenge and the
same event trail, never for a call that carries a payment, and never after the tenant changed.
No facilitator is needed: none of these calls gets as far as verifying a payment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gwpriced import count_guarded, priced_gateway
from x402.http.utils import decode_payment_required_header

from claw402.config import Settings
from claw402.events.store import EventStore
from claw402.gateway.app import Gateway
from claw402.registry.deploy import DeployRequest, deploy, remove
from claw402.registry.store import Registry
from claw402.samples import CITIES


@pytest.fixture
def priced(tmp_path: Path) -> Iterator[tuple[Settings, Registry, Gateway, httpx.Client]]:
    with priced_gateway(tmp_path) as served:
        yield served


def trails(registry: Registry, request_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each request's events, once all of them reached the sink."""
    deadline = time.monotonic() + 5
    while True:
        events = EventStore(registry.engine).read_events(limit=1000)
        found = {rid: [e for e in events if e["requestId"] == rid] for rid in request_ids}
        if all(len(trail) == 3 for trail in found.values()) or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def without_timing(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in ("id", "ts", "requestId", "durationMs")}


def _fixed_headers(answer) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    varying = {"x-request-id", "content-length", "date", "ratelimit"}
    return sorted((k, v) for k, v in answer.headers.multi_items() if k not in varying)


def test_a_replayed_challenge_is_the_guarded_one(priced) -> None:
    _, registry, gateway, client = priced
    guarded = count_guarded(gateway)
    # The caller sends one id on every call: each answer, replayed or not, has its own.
    answers = [client.get("/t/cities/v1/records", headers={"x-request-id": "agent-run"})
               for _ in range(3)]  # fmt: skip
    assert len(guarded) == 1  # the second and third calls were replays
    first = answers[0]
    ids = [r.headers["x-request-id"] for r in answers]
    assert len(set(ids)) == 3 and "agent-run" not in ids
    for r, rid in zip(answers, ids, strict=True):
        assert r.status_code == 402
        assert r.json()["requestId"] == rid
        assert r.headers["x-correlation-id"] == "agent-run"
        assert r.headers["payment-required"] == first.headers["payment-required"]
        assert r.headers["x-tenant-id"] == first.headers["x-tenant-id"]
        assert {**r.json(), "requestId": "-"} == {**first.json(), "requestId": "-"}
        assert int(r.headers["content-length"]) == len(r.content)
        # Every header but the per-request ones is the guarded answer's, stamped once.
        assert _fixed_headers(r) == _fixed_headers(first)
        assert r.headers.get_list("cache-control") == ["no-store"]
        assert r.headers.get_list("access-control-allow-origin") == ["*"]
        assert len(r.headers.get_list("access-control-expose-headers")) == 1
    by_request = trails(registry, ids)
    full = by_request[ids[0]]
    assert {e["correlationId"] for e in full} == {"agent-run"}
    assert [e["type"] for e in full] == ["dispatch_start", "payment_challenge",
                                         "dispatch_success"]  # fmt: skip
    for rid in ids[1:]:
        replayed = by_request[rid]
        assert [without_timing(e) for e in replayed] == [without_timing(e) for e in full]
        assert replayed[-1]["durationMs"] > 0
        assert replayed[0]["ts"] <= replayed[1]["ts"] <= replayed[2]["ts"]


def test_a_replay_is_per_scheme_host_and_path(priced) -> None:
    _, _, _, client = priced
    for _ in range(2):
        by_path = client.get("/t/cities/v1/records")
        by_host = client.get("/v1/records", headers={"host": "cities.test"})
        by_key = client.get("/t/cities/v1/records/7")
        urls = [
            decode_payment_required_header(r.headers["payment-required"]).resource.url  # type: ignore[union-attr]
            for r in (by_path, by_host, by_key)
        ]
        root = str(client.base_url).rstrip("/")
        assert urls == [
            f"{root}/t/cities/v1/records",
            "http://cities.test/v1/records",
            f"{root}/t/cities/v1/records/7",
        ]


def test_a_call_with_a_payment_is_never_answered_from_a_replay(priced) -> None:
    _, _, _, client = priced
    assert client.get("/t/cities/v1/records").status_code == 402
    assert client.get("/t/cities/v1/records").status_code == 402
    for name in ("PAYMENT-SIGNATURE", "X-PAYMENT"):
        r = client.get("/t/cities/v1/records", headers={name: "not base64 json"})
        assert r.status_code == 400 and r.json()["error"] == "invalid_payment"
    assert client.post("/t/cities/v1/records").status_code == 405
    assert client.head("/t/cities/v1/records").status_code == 402
    assert client.get("/t/cities/v1/schema").status_code == 200  # free routes stay free


def test_a_new_price_and_a_removal_are_live_at_once(priced) -> None:
    settings, registry, _, client = priced

    def amount() -> str:
        r = client.get("/t/cities/v1/records")
        return decode_payment_required_header(r.headers["payment-required"]).accepts[0].amount

    assert amount() == amount() == "1000"
    deploy(registry, settings, DeployRequest(source=CITIES, slug="cities", price="0.002"))
    deadline = time.monotonic() + 1  # the gateway re-reads the registry within 10 ms
    while amount() != "2000":
        assert time.monotonic() < deadline, "the new price was not live within a second"
        time.sleep(0.005)
    remove(registry, settings, "cities")
    deadline = time.monotonic() + 1
    while client.get("/t/cities/v1/records").status_code != 404:
        assert time.monotonic() < deadline, "the removal was not live within a second"
        time.sleep(0.005)


def test_a_replay_keeps_the_scheme_the_caller_used(priced) -> None:
    _, _, gateway, _ = priced

    async def resources() -> list[str]:
        urls = []
        for scheme in ("http", "https", "http", "https"):
            transport = httpx.ASGITransport(app=gateway)
            async with httpx.AsyncClient(transport=transport) as client:
                r = await client.get(f"{scheme}://cities.test/v1/records")
            required = decode_payment_required_header(r.headers["payment-required"])
            urls.append(required.resource.url)  # type: ignore[union-attr]
        return urls

    assert (
        asyncio.run(resources())
        == [
            "http://cities.test/v1/records",
            "https://cities.test/v1/records",
        ]
        * 2
    )


def test_without_a_host_header_the_resource_is_the_servers_address(priced) -> None:
    _, _, gateway, _ = priced

    async def resource(server: tuple[str, int]) -> str:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.0",
                 "method": "GET", "scheme": "http", "path": "/t/cities/v1/records",
                 "raw_path": b"/t/cities/v1/records", "root_path": "", "query_string": b"",
                 "headers": [], "server": server, "client": ("127.0.0.1", 5000)}  # fmt: skip
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await gateway(scope, receive, send)
        headers = dict(sent[0]["headers"])
        return decode_payment_required_header(headers[b"payment-required"].decode()).resource.url  # type: ignore[union-attr]

    async def both_twice() -> list[str]:
        return [await resource(s) for s in [("127.0.0.2", 80), ("127.0.0.3", 8402)] * 2]

    assert (
        asyncio.run(both_twice())
        == [
            "http://127.0.0.2:80/t/cities/v1/records",
            "http://127.0.0.3:8402/t/cities/v1/records",
        ]
        * 2
    )
