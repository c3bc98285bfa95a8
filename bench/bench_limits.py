"""What the limits cost, side by side in one run, and one gateway against two replicas.

Configurations, every gateway a granian child as `402claw serve` runs it, all on one
PostgreSQL schema (the machine's, `CLAW402_TEST_POSTGRES_URL` or postgresql://127.0.0.1/test,
dropped afterwards) and one dev chain with 402claw's facilitator:
- `off`: one gateway with `CLAW402_LIMITS=off`;
- `on`: one gateway with the limits on (rate counters in memory);
- `replicas`: two gateways with the limits on, their counters in a private redis-server,
  behind a small asyncio round-robin TCP balancer (a child of this script);
- `replicas_off`: the same two-replica setup with `CLAW402_LIMITS=off` (its yardstick);
- with `--compare-src DIR`, `off_base` and `on_base`: `off` and `on` on another checkout's
  `src` (e.g. `git archive <commit> src | tar -x -C /tmp/base`), a before/after in one run.
Tenants: `free` (price 0, `--rate` high enough never to refuse: the counting is measured)
and `bench` ($0.001, the same rate plus `--quota-day` and `--spend-cap-day`, so every paid
call also takes and keeps its slots in the usage books).

Measured per configuration, the configurations alternated round by round (this machine is
shared: compare the ratios of one run, not numbers across runs):
- the free query (`/t/free/v1/records?_limit=1`) and the 402 path (`/t/bench/v1/records`, no
  payment) under wrk (2 threads, `--connections`, `--duration` s): requests/s and p99;
- a paid request (a payload signed beforehand, sent once), sequentially: median and p99,
  `--calls` per configuration split over the same alternating rounds.
The machine's load average is noted at every round: the ratios on/off (and replicas against
replicas_off) are the result, each configuration's numbers alone are not.

    python bench/bench_limits.py [--duration 5] [--connections 32] [--rounds 2] [--calls 60]
                                 [--compare-src DIR]
    python bench/bench_limits.py --inprocess 5000   # the limits step's own CPU, no server
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import bench_paid_call as bp  # the shared launcher and measurements

POSTGRES_URL = os.environ.get("CLAW402_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
HIGH_RATE = "1000000/s"


def serve_child(kind: str, port: int) -> None:
    if kind == "lb":
        asyncio.run(balance(port, [int(p) for p in os.environ["BENCH_BACKENDS"].split(",")]))
        return
    bp.serve_child(kind, port)


async def balance(port: int, backends: list[int]) -> None:
    """Round robin per connection (wrk keeps its connections alive: they spread evenly)."""
    turn = 0

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal turn
        backend = backends[turn % len(backends)]
        turn += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", backend)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def wrk(url: str, duration: int, connections: int, expect: int) -> dict[str, Any]:
    import httpx

    assert httpx.get(url, timeout=10).status_code == expect
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([0-9.]+)(us|ms|s)\b", out)
    assert p99 is not None, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": round(rate), "p99_ms": round(float(p99.group(1)) * scale, 2),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0}  # fmt: skip


@contextmanager
def child(kind: str, env: dict[str, str], ready_path: str) -> Iterator[str]:
    """`bench_limits.py _serve KIND PORT` in a child process (bench_paid_call's launcher
    waits 30 s; a loaded machine needs more for four gateways)."""
    import httpx

    port = bp.free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "_serve", kind, str(port)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent), **env},
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{kind} server exited with {proc.returncode}")
            try:
                httpx.get(url + ready_path, timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def redis_server() -> Iterator[str]:
    """A private redis-server (no persistence) on a free port, until the block ends."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed"
    port = bp.free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def pg_schema() -> Iterator[str]:
    import sqlalchemy as sa

    from claw402.registry.db import make_engine

    schema = "bench_" + uuid.uuid4().hex[:10]
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def run(
    duration: int, connections: int, rounds: int, calls: int, compare_src: str | None = None
) -> dict[str, Any]:
    from claw402.chain.devchain import start_dev_chain
    from claw402.config import Settings
    from claw402.registry.deploy import DeployRequest, deploy
    from claw402.registry.store import Registry
    from claw402.samples import CITIES

    home = Path(tempfile.mkdtemp(prefix="claw402-bench-limits-"))
    results: dict[str, Any] = {"duration": duration, "connections": connections,
                               "rounds": rounds, "calls": calls}  # fmt: skip
    try:
        with start_dev_chain(payers=6) as chain, pg_schema() as database_url, ExitStack() as up:
            base = {**bp.facilitator_env(chain), "BENCH_SERVER": "granian"}
            facilitator = up.enter_context(child("facilitator", base, "/health"))
            settings = Settings(home, database_url)
            registry = Registry.open(settings)
            deploy(registry, settings, DeployRequest(source=CITIES, slug="free", price="0",
                                                     rate=HIGH_RATE))  # fmt: skip
            deploy(registry, settings, DeployRequest(
                source=CITIES, slug="bench", price=bp.PRICE, schemes="exact", rate=HIGH_RATE,
                quota_day=10**12, spend_cap_day="1000000"))  # fmt: skip
            registry.close()
            env = {**base, **bp.gateway_env(chain, settings, facilitator)}
            redis_url = up.enter_context(redis_server())
            off = {**env, "CLAW402_LIMITS": "off"}
            urls = {
                "off": up.enter_context(child("gateway", off, "/healthz")),
                "on": up.enter_context(child("gateway", env, "/healthz")),
            }
            if compare_src:  # the same two on another checkout's code
                path = {"PYTHONPATH": f"{Path(__file__).parent}:{Path(compare_src).resolve()}"}
                for name, config in (("off_base", off), ("on_base", env)):
                    urls[name] = up.enter_context(child("gateway", {**config, **path}, "/healthz"))
            shared = {**env, "CLAW402_REDIS_URL": redis_url,
                      "CLAW402_REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}:"}  # fmt: skip
            for name, replica_env in (("replicas", shared), ("replicas_off", off)):
                backends = [up.enter_context(child("gateway", replica_env, "/healthz"))
                            for _ in range(2)]  # fmt: skip
                ports = ",".join(u.rsplit(":", 1)[1] for u in backends)
                urls[name] = up.enter_context(
                    child("lb", {**base, "BENCH_BACKENDS": ports}, "/healthz")
                )
            samples: dict[str, dict[str, list[dict[str, Any]]]] = {
                name: {"free": [], "challenge": []} for name in urls
            }
            clients = {
                name: bp.payment_client(chain.payers[index].private_key, chain.network, chain.token)
                for index, name in enumerate(urls)
            }
            paid: dict[str, list[float]] = {name: [] for name in urls}
            for name, url in urls.items():  # warm up
                asyncio.run(bp.paid_requests(f"{url}/t/bench/v1/records", clients[name], 3))
            results["load"] = [os.getloadavg()]
            for _ in range(rounds):
                for name, url in urls.items():
                    samples[name]["free"].append(
                        wrk(f"{url}/t/free/v1/records?_limit=1", duration, connections, 200)
                    )
                    samples[name]["challenge"].append(
                        wrk(f"{url}/t/bench/v1/records", duration, connections, 402)
                    )
                    each = max(1, calls // rounds)
                    paid[name] += asyncio.run(
                        bp.paid_requests(f"{url}/t/bench/v1/records", clients[name], each)
                    )
                results["load"].append(os.getloadavg())
            for name in urls:
                results[name] = {
                    kind: {"rps": round(statistics.median(s["rps"] for s in runs)),
                           "p99_ms": round(statistics.median(s["p99_ms"] for s in runs), 2),
                           "runs": [s["rps"] for s in runs],
                           "non_2xx": sum(s["non_2xx"] for s in runs)}
                    for kind, runs in samples[name].items()
                }  # fmt: skip
                results[name]["paid_request"] = bp.summary(paid[name])
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return results


def inprocess(requests: int, repeats: int) -> dict[str, Any]:
    """`Gateway.dispatch` called directly (no server, events dropped), limits off against on,
    interleaved, min of `repeats` runs of `requests` calls: the limits step's own CPU per
    call on the free query and the replayed 402; and one usage-books take + give back."""
    from claw402.clock import now
    from claw402.config import Settings
    from claw402.events.sink import EventSink
    from claw402.gateway.app import Gateway
    from claw402.limits.counters import MemoryCounters
    from claw402.limits.limiter import Limiter
    from claw402.limits.policy import policy_for
    from claw402.limits.usage import UsageBooks, slots
    from claw402.registry.deploy import DeployRequest, deploy
    from claw402.registry.store import Registry
    from claw402.samples import CITIES

    home = Path(tempfile.mkdtemp(prefix="claw402-bench-limits-"))
    try:
        settings = Settings(home, f"sqlite:///{home / 'registry.sqlite3'}")
        registry = Registry.open(settings)
        deploy(registry, settings, DeployRequest(source=CITIES, slug="free", price="0",
                                                 rate=HIGH_RATE))  # fmt: skip
        paid = deploy(registry, settings, DeployRequest(
            source=CITIES, slug="bench", price=bp.PRICE, rate=HIGH_RATE, quota_day=10**12,
            spend_cap_day="1000000"))  # fmt: skip
        sink = EventSink.in_process(registry.engine)
        sink.emit = lambda trail: None  # type: ignore[method-assign]
        books = UsageBooks(registry.engine)
        gateways = {
            "off": Gateway(registry, sink=sink, limiter=None),
            "on": Gateway(registry, sink=sink, limiter=Limiter(MemoryCounters(), books)),
        }
        paths = {"free": b"/t/free/v1/records", "challenge": b"/t/bench/v1/records"}
        best: dict[str, dict[str, float]] = {n: {k: float("inf") for k in paths} for n in gateways}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def burst(gateway: Gateway, path: bytes, query: bytes) -> float:
            scope = {"type": "http", "method": "GET", "path": path.decode(), "raw_path": path,
                     "query_string": query, "headers": [(b"host", b"127.0.0.1:8402")],
                     "scheme": "http", "root_path": "", "server": ("127.0.0.1", 8402),
                     "client": ("127.0.0.1", 50000)}  # fmt: skip
            started = time.perf_counter()
            for _ in range(requests):
                await gateway.dispatch(scope, receive)
            return (time.perf_counter() - started) / requests * 1e6

        for _ in range(repeats):
            for name, gateway in gateways.items():
                for kind, path in paths.items():
                    query = b"_limit=1" if kind == "free" else b""
                    took = asyncio.run(burst(gateway, path, query))
                    best[name][kind] = min(best[name][kind], took)
        policy = policy_for(paid)
        wanted = slots(policy, now())
        started = time.perf_counter()
        for _ in range(200):
            assert books.take(paid.tenant_id, wanted) is None
            books.give_back(paid.tenant_id, wanted)
        books_us = (time.perf_counter() - started) / 200 * 1e6
        registry.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return {
        "requests": requests, "repeats": repeats,
        "us_per_call": {n: {k: round(v, 1) for k, v in b.items()} for n, b in best.items()},
        "books_take_and_give_back_us_sqlite": round(books_us, 1),
    }  # fmt: skip


def report(results: dict[str, Any]) -> str:
    lines = ["config        free req/s (p99 ms)   402 req/s (p99 ms)   paid median / p99 ms"]
    for name in ("off", "on", "replicas_off", "replicas", "off_base", "on_base"):
        if name not in results:
            continue
        r = results[name]
        lines.append(
            f"{name:<13} {r['free']['rps']:>8} ({r['free']['p99_ms']:>6})     "
            f"{r['challenge']['rps']:>8} ({r['challenge']['p99_ms']:>6})     "
            f"{r['paid_request']['median_ms']:>6} / {r['paid_request']['p99_ms']}"
        )
    pairs = (("one process", "on", "off"), ("two replicas", "replicas", "replicas_off"),
             ("one process, --compare-src", "on_base", "off_base"))  # fmt: skip
    for label, on_name, off_name in pairs:
        if on_name not in results:
            continue
        off, on = results[off_name], results[on_name]
        lines.append(
            f"limits on / off, {label}: req/s free {on['free']['rps'] / off['free']['rps']:.2f}, "
            f"402 {on['challenge']['rps'] / off['challenge']['rps']:.2f}; p99 free "
            f"{on['free']['p99_ms'] / off['free']['p99_ms']:.2f}, 402 "
            f"{on['challenge']['p99_ms'] / off['challenge']['p99_ms']:.2f}; paid median "
            f"{on['paid_request']['median_ms'] / off['paid_request']['median_ms']:.2f}"
        )
    loads = ", ".join(str(tuple(round(x, 1) for x in load)) for load in results["load"])
    lines.append(f"load average (1, 5, 15 min) at the start and after each round: {loads}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--compare-src", help="also off/on on this checkout's src folder")
    parser.add_argument("--inprocess", type=int, metavar="N", default=0,
                        help="instead: N in-process calls per run, limits off vs on")  # fmt: skip
    args = parser.parse_args()
    if args.inprocess:
        print(json.dumps(inprocess(args.inprocess, 5), indent=2))
        return
    results = run(args.duration, args.connections, args.rounds, args.calls, args.compare_src)
    print(json.dumps(results, indent=2) if args.json else report(results))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_serve":
        serve_child(sys.argv[2], int(sys.argv[3]))
    else:
        main()
