"""A dataset too large to embed, served by its tenant Worker from R2 under workerd: latency of
the data API and workerd's memory, per R2 chunk size, beside the same rows embedded (when they
fit). Chooses `cloudflare.storage.CHUNK_BYTES` against the 128 MB isolate.

    python bench/bench_edge_r2.py                      # 200k rows, chunks of 1, 4 and 16 MiB
    python bench/bench_edge_r2.py --rows 50000 --chunks-mib 2 4 --iterations 10

Every run is one process: the variants are measured side by side, each in its own workerd
(bucket objects on local disk, so R2's network latency is not in these numbers). Results are
noisy on a loaded machine: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from claw402.cloudflare import sizes
from claw402.cloudflare.storage import stored_tenant
from claw402.cloudflare.tenant import build_tenant
from claw402.cloudflare.workerd import LocalEdge
from claw402.config import Settings
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.store import Registry

QUERIES = {
    "first page": "/v1/records?_limit=50",
    "equality": "/v1/records?city=Portville&_limit=50",
    "range + sort": "/v1/records?amount__gte=900&_sort=-amount&_limit=50",
    "substring": "/v1/records?_q=ada%20n&_limit=50",
    "by key": "/v1/records/123457",
}


def write_csv(path: Path, rows: int) -> None:
    rng = random.Random(7)
    cities = [p + s for p in ("North", "South", "Port", "Lake") for s in ("ville", "ford", "ton")]
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["id", "name", "city", "amount", "day"])
        for i in range(rows):
            out.writerow(
                [
                    i,
                    f"{rng.choice(['Ada', 'Bob', 'Chen'])} {rng.choice(['N', 'S'])}",
                    rng.choice(cities),
                    round(rng.uniform(0, 1000), 2),
                    f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}",
                ]
            )


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(edge: LocalEdge, iterations: int) -> dict[str, float]:
    results = {}
    with httpx.Client(base_url=edge.url, timeout=120) as client:
        for name, path in QUERIES.items():
            first = client.get(path)
            assert first.status_code in (200, 404), first.text
            times = []
            for _ in range(iterations):
                started = time.perf_counter()
                client.get(path)
                times.append((time.perf_counter() - started) * 1000)
            results[name] = statistics.median(times)
    assert edge._process is not None
    results["rss MiB"] = rss_mib(edge._process.pid)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--chunks-mib", type=float, nargs="+", default=[1, 4, 16])
    parser.add_argument("--iterations", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        source = home / "rows.csv"
        write_csv(source, args.rows)
        settings = Settings(home=home, database_url=f"sqlite:///{home / 'registry.sqlite3'}")
        registry = Registry.open(settings)
        tenant = deploy(
            registry,
            settings,
            DeployRequest(source=source, slug="big", key="id", price="0", plan="business"),
        )
        variants: dict[str, dict[str, float]] = {}
        try:
            sizes.MAX_EMBEDDED_DATA = 1 << 40  # measure embedding even past the limit
            embedded = build_tenant(tenant)
            json_mib = len(embedded.module("dataset.json").content) / sizes.MiB
            with LocalEdge(None, [embedded]) as edge:
                variants["embedded"] = measure(edge, args.iterations)
        except Exception as exc:  # a dataset the isolate cannot hold
            print(f"embedded: failed ({exc.__class__.__name__}: {str(exc)[:120]})")
            json_mib = float("nan")
        for mib in args.chunks_mib:
            bundle, stored = stored_tenant(tenant, "bench", int(mib * sizes.MiB))
            with LocalEdge(None, [bundle], r2={"bench": stored.objects}) as edge:
                variants[f"r2 {mib:g} MiB x{len(stored.objects)}"] = measure(edge, args.iterations)
        registry.close()
    print(f"{args.rows:,} rows, {json_mib:.1f} MiB of JSON; medians in ms, workerd RSS after")
    names = [*QUERIES, "rss MiB"]
    print(f"{'variant':<22}" + "".join(f"{n:>14}" for n in names))
    for variant, results in variants.items():
        print(f"{variant:<22}" + "".join(f"{results[n]:>14.1f}" for n in names))


if __name__ == "__main__":
    main()
