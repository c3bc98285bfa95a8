"""CPU the event writer's child process spends per lifecycle event, on SQLite.

Feeds `python -m claw402.events.writer` the frames `402claw serve` would send it for
402 challenges (one trail per request: dispatch_start, payment_challenge, dispatch_success;
`--batch` trails a frame), through the real pipe protocol, and reports the child's CPU time
per request and per event (start-up excluded) and the database's size per request. Under wrk
the child shares the machine with the gateway and the load generator, so its cost per request
bounds how many requests a 2-core machine can log while serving (bench/bench_paid_call.py).

    python bench/bench_event_writer.py [--requests 100000] [--batch 500]
"""

from __future__ import annotations

import argparse
import marshal
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from claw402.dispatch.plans import effective_limits
from claw402.dispatch.routing import TenantRoute
from claw402.events.compact import Compact, Trail, compact
from claw402.events.kinds import DISPATCH_START, DISPATCH_SUCCESS, PAYMENT_CHALLENGE
from claw402.registry.db import make_engine, migrate

ROUTE = TenantRoute("tnt_" + "a" * 16, "bench", "tenant-bench-worker", "free",
                    effective_limits("free"))  # fmt: skip


def challenge_events(i: int) -> list[Compact]:
    rid = f"{'ab' * 8}{i:016x}"
    return [
        compact(DISPATCH_START, rid, ROUTE, path="/v1/records"),
        compact(PAYMENT_CHALLENGE, rid, ROUTE, status=402),
        compact(DISPATCH_SUCCESS, rid, ROUTE, status=402, duration_ms=0.123456),
    ]


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "little") + payload


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(requests: int, batch: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="claw402-bench-") as scratch:
        database = Path(scratch) / "registry.sqlite3"
        url = f"sqlite:///{database}"
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        pending: list[Trail] = []
        frames: list[bytes] = []
        for i in range(requests):
            pending.append(challenge_events(i))
            if len(pending) >= batch:
                frames.append(frame(marshal.dumps(pending)))
                pending = []
        if pending:
            frames.append(frame(marshal.dumps(pending)))
        events = requests * 3

        # Start-up (imports, engine) is measured alone first and taken off the total.
        idle = subprocess.Popen([sys.executable, "-m", "claw402.events.writer"],
                                stdin=subprocess.PIPE)  # fmt: skip
        assert idle.stdin is not None
        idle.stdin.write(frame(marshal.dumps({"url": url})))
        idle.stdin.close()
        idle.wait()
        startup = children_cpu()

        child = subprocess.Popen([sys.executable, "-m", "claw402.events.writer"],
                                 stdin=subprocess.PIPE)  # fmt: skip
        assert child.stdin is not None
        child.stdin.write(frame(marshal.dumps({"url": url})))
        started = time.perf_counter()
        for item in frames:
            child.stdin.write(item)
        child.stdin.close()
        assert child.wait() == 0
        wall = time.perf_counter() - started
        cpu = children_cpu() - 2 * startup
        size = database.stat().st_size + sum(
            p.stat().st_size for p in database.parent.glob(database.name + "-*")
        )
    return {
        "requests": requests,
        "events": events,
        "cpu_us_per_request": round(cpu / requests * 1e6, 2),
        "cpu_us_per_event": round(cpu / events * 1e6, 2),
        "events_per_s": round(events / wall),
        "bytes_per_request": round(size / requests),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500, help="trails per frame, as the sink")
    args = parser.parse_args()
    result = run(args.requests, args.batch)
    print(
        f"event writer child: {result['cpu_us_per_request']} µs CPU a 402 challenge "
        f"({result['cpu_us_per_event']} µs an event), {result['events_per_s']} events/s, "
        f"{result['bytes_per_request']} bytes a request on disk "
        f"({result['requests']} requests, {result['events']} events, {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
