"""The Redis side of the limits: counters atomic across replicas (the machine's Redis, keys
under a prefix of this test's own), failing closed while Redis is down and recovering by
themselves (a private redis-server stopped and started), and registry announcements heard."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from claw402.limits.counters import CountersDown, RedisCounters
from claw402.limits.notify import RegistryListener, announce
from redisproc import MACHINE_REDIS, free_port, redis_server


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}:"


def test_two_replicas_share_one_count_exactly(prefix: str) -> None:
    replicas = [RedisCounters(MACHINE_REDIS, prefix=prefix) for _ in range(2)]
    try:
        with ThreadPoolExecutor(8) as pool:
            hits = list(pool.map(lambda i: replicas[i % 2].hit("t1:a", 25, 3600), range(100)))
        assert sum(h.allowed for h in hits) == 25
        assert sorted(h.remaining for h in hits if h.allowed) == list(range(25))
        assert all(h.remaining == 0 for h in hits if not h.allowed)
        assert replicas[0].hit("t1:b", 25, 3600).remaining == 24  # another caller
    finally:
        client = redis.Redis.from_url(MACHINE_REDIS)
        keys = list(client.scan_iter(f"{prefix}*"))
        assert keys and all(0 < client.pttl(k) <= 3_601_000 + 1000 for k in keys)  # they expire
        client.delete(*keys)
        client.close()
        for r in replicas:
            r.close()


def test_counters_fail_closed_while_down_and_recover(tmp_path: Path, prefix: str) -> None:
    port = free_port()
    with redis_server(port, tmp_path) as url:
        counters = RedisCounters(url, prefix=prefix, retry_after=0.2)
        assert counters.hit("t:a", 5, 3600).remaining == 4
    with pytest.raises(CountersDown):
        counters.hit("t:a", 5, 3600)
    with pytest.raises(CountersDown):  # marked down: no connection attempt meanwhile
        counters.hit("t:a", 5, 3600)
    with redis_server(port, tmp_path):
        deadline = time.monotonic() + 5
        while True:
            try:
                hit = counters.hit("t:a", 5, 3600)
                break
            except CountersDown:
                assert time.monotonic() < deadline, "did not recover"
                time.sleep(0.05)
        assert hit.allowed and hit.remaining == 4  # a fresh Redis: the window starts again
    counters.close()


def test_announcements_reach_a_listener_within_a_second(
    tmp_path: Path, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    heard: list[float] = []
    states: list[bool] = []
    changed = threading.Event()

    def on_change() -> None:
        heard.append(time.monotonic())
        changed.set()

    with redis_server(port, tmp_path) as url:
        monkeypatch.setenv("CLAW402_REDIS_URL", url)
        monkeypatch.setenv("CLAW402_REDIS_PREFIX", prefix)
        listener = RegistryListener(url, prefix, on_change, states.append).start()
        try:
            assert changed.wait(5) and states == [True]  # subscribing counts as a change
            changed.clear()
            sent = time.monotonic()
            assert announce("tenant:acme")
            assert changed.wait(1) and heard[-1] - sent < 1
        finally:
            listener.stop()
    assert not announce("tenant:acme")  # Redis gone: best effort, no error


def test_a_gateway_fails_closed_on_paid_routes_only_and_recovers(
    tmp_path: Path, prefix: str
) -> None:
    from gwlimits import open_gateway

    from claw402.limits.limiter import Limiter
    from claw402.limits.usage import UsageBooks
    from claw402.registry.deploy import DeployRequest, deploy
    from claw402.samples import CITIES

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with open_gateway(tmp_path) as (settings, registry, gateway, client):
        gateway.limiter = Limiter(RedisCounters(url, prefix=prefix, retry_after=0.1),
                                  UsageBooks(registry.engine))  # fmt: skip
        deploy(registry, settings, DeployRequest(source=CITIES, slug="paid", price="0.01"))
        deploy(registry, settings, DeployRequest(source=CITIES, slug="free", price="0"))
        with redis_server(port, tmp_path / "r"):
            assert client.get("/t/paid/v1/records").status_code == 402
        down = client.get("/t/paid/v1/records")  # Redis stopped
        assert down.status_code == 503 and down.json()["error"] == "limits_unavailable"
        assert client.get("/t/paid/v1/schema").status_code == 200  # a free route of it
        free = client.get("/t/free/v1/records?_limit=1")
        assert free.status_code == 200 and "ratelimit" not in free.headers
        with redis_server(port, tmp_path / "r"):
            deadline = time.monotonic() + 5
            while client.get("/t/paid/v1/records").status_code != 402:
                assert time.monotonic() < deadline, "the gateway did not recover"
                time.sleep(0.05)
            assert "ratelimit" in client.get("/t/free/v1/records?_limit=1").headers
