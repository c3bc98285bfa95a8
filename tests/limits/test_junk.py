"""Junk traffic is counted, not stored a row per request: 10,000 requests to random unknown
tenants grow the database by a few KB, every one of them counted, a few sampled as events."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from pathlib import Path

from claw402.config import Settings
from claw402.events.sink import EventSink
from claw402.events.store import EventStore
from claw402.gateway.app import Gateway
from claw402.limits.junk import EVENTS_PER_MINUTE
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.store import Registry
from claw402.samples import CITIES

MISSES = 10_000


def _size(path: Path) -> int:
    with sqlite3.connect(path) as conn:  # the WAL folded in, so the file is the whole database
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


async def _receive() -> dict[str, object]:
    return {"type": "http.request", "body": b"", "more_body": False}


def _scope(path: str, host: str) -> dict[str, object]:
    return {"type": "http", "method": "GET", "path": path, "query_string": b"",
            "headers": [(b"host", host.encode())], "scheme": "http", "root_path": "",
            "server": ("127.0.0.1", 8402), "client": ("203.0.113.9", 5555)}  # fmt: skip


def test_ten_thousand_unknown_tenants_grow_the_database_by_a_few_kb(tmp_path: Path) -> None:
    db = tmp_path / "registry.sqlite3"
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{db}")
    registry = Registry.open(settings)
    deploy(registry, settings, DeployRequest(source=CITIES, slug="cities", price="0"))
    sink = EventSink.in_process(registry.engine, interval=0.02)
    gateway = Gateway(registry, sink=sink)
    try:
        before = _size(db)

        async def scan() -> list[int]:
            codes = []
            for i in range(MISSES):
                name = secrets.token_hex(6)
                path, host = ((f"/t/{name}/v1/records", "localhost") if i % 2 else
                              ("/v1/records", f"{name}.example"))  # fmt: skip
                codes.append((await gateway.dispatch(_scope(path, host), _receive)).status_code)
            return codes

        assert set(asyncio.run(scan())) == {404}
        served = asyncio.run(gateway.dispatch(_scope("/t/cities/v1/schema", "localhost"),
                                              _receive))  # fmt: skip
        assert served.status_code == 200  # real tenants are untouched
    finally:
        sink.close()
        gateway.junk.close()
    assert gateway.junk.totals() == {"tenant_not_found": MISSES}
    events = EventStore(registry.engine).read_events(limit=10_000)
    misses = [e for e in events if e.get("reason") == "tenant_not_found"]
    assert 1 <= len(misses) <= 2 * EVENTS_PER_MINUTE  # the run may straddle a minute
    grown = _size(db) - before
    registry.close()
    print(f"10,000 misses grew the database by {grown} bytes")
    assert grown <= 16 * 1024, f"the database grew by {grown} bytes"
