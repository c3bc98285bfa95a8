"""What the dispatch Worker's limits step costs under workerd, side by side in one run.

Two local edges built from one registry: `on`, the generated dispatcher as uploaded (the
caller's rate in a `CallerRate` Durable Object, the books in `TenantBooks` when a call needs
them), and `off`, the same bundle with the limits step handing straight on (its line in
`dispatcher.js` replaced, checked). Tenants: `free` (price 0, `--rate` high enough never to
refuse: the counting is measured) and `bench` ($0.001 with `--quota-day` and
`--spend-cap-day`; no payment settings, so a bare call is the 402 path, which takes nothing
from the books but passes the rate). Sequential keep-alive GETs, configurations alternated
round by round (the machine is shared: compare the ratios of one run):

    python bench/bench_edge_limits.py [--calls 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from claw402.cloudflare.bundle import Module, WorkerBundle
from claw402.cloudflare.dispatcher import build_dispatcher
from claw402.cloudflare.tenant import build_tenant
from claw402.cloudflare.workerd import LocalEdge
from claw402.config import Settings
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.store import Registry
from claw402.samples import CITIES

STEP_ON = "return limit(call, { records, paid }, () => next(call));"
PATHS = {"free query": "/t/free/v1/records?_limit=1", "402 path": "/t/bench/v1/records"}


def without_limits(bundle: WorkerBundle) -> WorkerBundle:
    text = bundle.module("dispatcher.js").content.decode()
    assert text.count(STEP_ON) == 1, "the limits step's line moved: update this benchmark"
    changed = Module("dispatcher.js", text.replace(STEP_ON, "return next(call);").encode())
    modules = tuple(changed if m.name == "dispatcher.js" else m for m in bundle.modules)
    return WorkerBundle(bundle.script_name, modules, bundle.metadata)


def measure(client: httpx.Client, path: str, calls: int) -> list[float]:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        r = client.get(path)
        times.append(time.perf_counter() - start)
        assert r.status_code in (200, 402), (r.status_code, r.text)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        settings = Settings(home=home, database_url=f"sqlite:///{home / 'registry.sqlite3'}")
        registry = Registry.open(settings)
        for spec in ({"slug": "free", "price": "0", "rate": "100000000/s"},
                     {"slug": "bench", "price": "0.001", "rate": "100000000/s",
                      "quota_day": 10**9, "spend_cap_day": "1000000"}):  # fmt: skip
            deploy(registry, settings, DeployRequest(source=CITIES, **spec))
        tenants = registry.list_tenants()
        workers = [build_tenant(t) for t in tenants]
        on = build_dispatcher(tenants)
        results: dict[tuple[str, str], list[float]] = {}
        with LocalEdge(on, workers) as edge_on, LocalEdge(without_limits(on), workers) as edge_off:
            clients = {name: httpx.Client(base_url=e.url, timeout=30)
                       for name, e in (("on", edge_on), ("off", edge_off))}  # fmt: skip
            for client in clients.values():  # warm both
                for path in PATHS.values():
                    measure(client, path, 20)
            for _ in range(args.rounds):
                for label, path in PATHS.items():
                    for name, client in clients.items():
                        results.setdefault((label, name), []).extend(
                            measure(client, path, args.calls)
                        )
            for client in clients.values():
                client.close()
        registry.close()
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; "
          f"{args.rounds} rounds x {args.calls} sequential calls per cell")  # fmt: skip
    for label in PATHS:
        cells = {}
        for name in ("off", "on"):
            times = sorted(results[(label, name)])
            median = statistics.median(times) * 1000
            p99 = times[int(len(times) * 0.99) - 1] * 1000
            cells[name] = median
            print(f"{label:10} limits {name:3}: median {median:6.2f} ms  p99 {p99:6.2f} ms  "
                  f"{len(times) / sum(times):7.0f} req/s")  # fmt: skip
        print(f"{label:10} on/off median: {cells['on'] / cells['off']:.2f}")


if __name__ == "__main__":
    main()
