"""The gateway's own cost on the 402 challenge path, without a server or a network.

Calls the Gateway ASGI callable directly, as uvicorn would, for an unpaid request to a priced
tenant (sample cities) with the real paywall and the real event sink writing to SQLite. No
chain is needed: the challenge never reaches the facilitator. `bench_paid_call.py` measures
the same path end to end under wrk; this one isolates what the gateway adds and, with
`--profile`, where it goes. By default every call after the first is answered from the
resource's replayable 402 (as repeated unpaid calls are); `--guarded` empties that memo before
each call, so each one resolves, routes and asks the paywall (as a first call does). `--no-sink`
drops the events instead of writing them, leaving the request path's own CPU (steadier on
a busy machine). The 402s carry the Bazaar extension as `serve` builds them; `--no-discovery`
leaves it out, to compare. The limits step runs as `CLAW402_LIMITS` says (the tenant's rate is
set high enough never to refuse: its cost, not its 429s); `--limits-both` times a gateway with
and one without it in alternating rounds of one run, and prints the ratio.

    python bench/bench_challenge_inprocess.py [--requests 40000] [--guarded] [--no-gc-tuning]
                                               [--no-sink] [--no-discovery] [--profile]
                                               [--limits-both [--rounds 5]]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

from claw402.config import Settings
from claw402.discovery.bazaar import tenant_bazaar
from claw402.events.sink import EventSink
from claw402.gateway.app import Gateway
from claw402.gc_tuning import tune_gc
from claw402.limits.counters import MemoryCounters
from claw402.limits.limiter import Limiter
from claw402.limits.usage import UsageBooks
from claw402.payments.config import PaymentConfig
from claw402.payments.paywall import Paywall
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.store import Registry
from claw402.samples import CITIES

ADDRESS = "0x" + "11" * 20
SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "server": ("127.0.0.1", 8402),
    "client": ("127.0.0.1", 50000),
    "scheme": "http",
    "method": "GET",
    "root_path": "",
    "path": "/t/bench/v1/records",
    "raw_path": b"/t/bench/v1/records",
    "query_string": b"",
    "headers": [(b"host", b"127.0.0.1:8402"), (b"user-agent", b"wrk"), (b"accept", b"*/*")],
}


def build(
    home: Path, discovery: bool = True, limits: bool | None = None
) -> tuple[Gateway, EventSink]:
    """`limits`: None as `CLAW402_LIMITS` says, else on or off."""
    settings = Settings(home, f"sqlite:///{home / 'registry.sqlite3'}")
    registry = Registry.open(settings)
    request = DeployRequest(source=CITIES, slug="bench", price="0.001", rate="999999999/s")
    deploy(registry, settings, request)
    sink = EventSink.in_process(registry.engine)
    config = PaymentConfig(
        network="eip155:31337",
        asset=ADDRESS,
        asset_name="USD Coin",
        asset_version="2",
        facilitator_url="http://127.0.0.1:9",  # never called on this path
        treasury=ADDRESS,
    )
    paywall = Paywall(config, registry.engine, discovery=tenant_bazaar if discovery else None)
    limiter: bool | None = True if limits is None else limits
    if limits is True:
        limiter = Limiter(MemoryCounters(), UsageBooks(registry.engine))
    return Gateway(registry, guard=paywall, sink=sink, limiter=limiter), sink


async def requests(gateway: Gateway, n: int, guarded: bool = False) -> set[int]:
    statuses: set[int] = set()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    for _ in range(n):
        if guarded:
            gateway.replays.clear()
        await gateway(SCOPE, receive, send)
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40_000)
    parser.add_argument("--guarded", action="store_true", help="no replayed 402s")
    parser.add_argument("--no-gc-tuning", action="store_true", help="skip tune_gc()")
    parser.add_argument("--profile", action="store_true", help="cProfile a second pass")
    parser.add_argument("--no-sink", action="store_true", help="drop events, write none")
    parser.add_argument("--no-discovery", action="store_true", help="402s without Bazaar")
    parser.add_argument("--limits-both", action="store_true", help="limits on vs off, alternated")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each (--limits-both)")
    args = parser.parse_args()
    if args.limits_both:
        both(args)
        return
    with tempfile.TemporaryDirectory(prefix="claw402-bench-") as scratch:
        gateway, sink = build(Path(scratch), discovery=not args.no_discovery)
        if args.no_sink:
            sink.emit = lambda trail: None  # type: ignore[method-assign]
        asyncio.run(requests(gateway, 1000))  # warm: offer, encoded challenge, dataset handle
        if not args.no_gc_tuning:
            tune_gc()
        wall, cpu = time.perf_counter(), time.process_time()
        statuses = asyncio.run(requests(gateway, args.requests, args.guarded))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert statuses == {402}, statuses
        print(
            f"402 challenge in-process: {wall / args.requests * 1e6:.1f} µs a request "
            f"(CPU incl. the event writer: {cpu / args.requests * 1e6:.1f} µs), "
            f"{'guarded' if args.guarded else 'replayed'}, "
            f"{'no event sink, ' if args.no_sink else ''}"
            f"{'no Bazaar, ' if args.no_discovery else ''}"
            f"GC tuning {'off' if args.no_gc_tuning else 'on'}"
        )
        if args.profile:
            profile = cProfile.Profile()
            profile.enable()
            asyncio.run(requests(gateway, args.requests, args.guarded))
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(20)
        sink.close()


def both(args: argparse.Namespace) -> None:
    """Limits on and off, one gateway each, in alternating rounds: the best CPU per request."""
    with tempfile.TemporaryDirectory(prefix="claw402-bench-") as scratch:
        built = {}
        for name, limits in (("on", True), ("off", False)):
            home = Path(scratch) / name
            home.mkdir()
            built[name] = build(home, discovery=not args.no_discovery, limits=limits)
        for gateway, sink in built.values():
            if args.no_sink:
                sink.emit = lambda trail: None  # type: ignore[method-assign]
            asyncio.run(requests(gateway, 1000))
        if not args.no_gc_tuning:
            tune_gc()
        best: dict[str, float] = {"on": float("inf"), "off": float("inf")}
        for _ in range(args.rounds):
            for name, (gateway, _) in built.items():
                cpu = time.process_time()
                statuses = asyncio.run(requests(gateway, args.requests, args.guarded))
                cpu = (time.process_time() - cpu) / args.requests * 1e6
                assert statuses == {402}, statuses
                best[name] = min(best[name], cpu)
        print(
            f"402 challenge in-process, {'guarded' if args.guarded else 'replayed'}, best of "
            f"{args.rounds} alternating rounds of {args.requests}: limits on "
            f"{best['on']:.1f} µs CPU a request, off {best['off']:.1f} µs "
            f"(on/off {best['on'] / best['off']:.2f})"
        )
        for _, sink in built.values():
            sink.close()


if __name__ == "__main__":
    main()
