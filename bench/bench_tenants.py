"""Many small tenants on one gateway: disk per dataset, latency spread over all, memory.

    python bench/bench_tenants.py                          # 10,000 tenants of 20 rows
    python bench/bench_tenants.py --tenants 1000 --open-datasets 64 --page-cache 32MB

Deploys `--tenants` free tenants of 20 rows each into a home under bench/data/ (reused on the
next run; the first `--deployed` for real, the others clones of a deployed version, see
`deploy_all`), reports the disk they take (allocated blocks and bytes, beside one 20-row
version written as a DuckDB file), serves them with `402claw serve` (its own process;
`--open-datasets` / `--page-cache` (bytes) / `--cache-rows` / `--runtimes` set the worker's
budget through the environment), touches every tenant once, then times repeat calls of
`/t/<slug>/v1/records` sequentially over one keep-alive connection: blocks of 200 calls
cycling over 10 tenants and blocks of 200 over all of them in random order take turns, so
both see the same machine load. Prints medians and the worker's RssAnon after 10 tenants and
after all of them. `--layouts` compares opening one version stored either way (20, 1,000,
10,000 rows).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_data_api import BIN, ROOT, Client, free_port, wait_ready
from bench_engine import DATA

# One load generator is one caller: the per-caller rate limit would answer it 429. The limits
# cost is measured by bench_limits.py; here the paths are measured without them.
os.environ.setdefault("CLAW402_LIMITS", "off")

ROWS = 20


def write_source(path: Path, tenant: int) -> None:
    rnd = random.Random(tenant)
    lines = ["id,name,city,price,created"]
    for i in range(ROWS):
        lines.append(
            f"{i + 1},name {rnd.randrange(10**6)},city{rnd.randrange(100)},"
            f"{rnd.random() * 100:.2f},2026-01-{1 + i % 28:02d}"
        )
    path.write_text("\n".join(lines) + "\n")


def deploy_all(home: Path, tenants: int, deployed: int) -> float:
    """The tenants not there yet: the first `deployed` by `deploy` (ingest included), the
    others as clones of the last one's version (its file copied into a version folder of
    their own, registered as `deploy` does): a DuckDB connection alone costs 0.1-0.5 s on
    these loaded machines, hours for 10,000 deploys. Seconds per real deploy (0: none)."""
    from claw402.config import load_settings
    from claw402.registry.deploy import DeployRequest, build_spec, deploy
    from claw402.registry.store import NewVersion, Registry

    settings = load_settings(home)
    registry = Registry.open(settings)
    try:
        have = {t.slug for t in registry.list_tenants()}
        todo = [n for n in range(tenants) if f"t{n:05d}" not in have]
        real = [n for n in todo if n < deployed]
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as scratch:
            source = Path(scratch) / "rows.csv"
            for n in real:
                write_source(source, n)
                deploy(registry, settings, DeployRequest(source, f"t{n:05d}", price="0"))
        per_deploy = (time.perf_counter() - started) / len(real) if real else 0.0
        model = registry.get(f"t{deployed - 1:05d}")
        assert model is not None and model.dataset is not None
        version = model.dataset
        for n in (n for n in todo if n >= deployed):
            slug = f"t{n:05d}"
            folder = settings.datasets_dir / slug / uuid.uuid4().hex
            folder.mkdir(parents=True)
            data = folder / Path(version.data_path).name
            shutil.copyfile(version.data_path, data)
            spec = build_spec(DeployRequest(Path(version.source_path), slug, price="0"), None)
            registry.deploy(
                spec,
                NewVersion(
                    source_path=version.source_path,
                    format=version.format,
                    rows=version.rows,
                    bytes=version.bytes,
                    columns=version.columns,
                    key=version.key,
                    data_path=str(data),
                ),
            )
        return per_deploy
    finally:
        registry.close()


def disk(folder: Path) -> tuple[int, int, int]:
    """Allocated bytes, apparent bytes, files."""
    blocks = size = files = 0
    for path in folder.rglob("*"):
        if path.is_file():
            stat = path.stat()
            blocks, size, files = blocks + stat.st_blocks * 512, size + stat.st_size, files + 1
    return blocks, size, files


def duckdb_layout_bytes() -> int:
    from claw402.datasets.ingest import ingest

    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "rows.csv"
        write_source(source, 0)
        ingest(source, Path(scratch) / "v", compact_rows=0)
        return disk(Path(scratch) / "v")[0]


def layouts(sizes: tuple[int, ...] = (20, 1000, 10_000), rounds: int = 30) -> None:
    """Attach + first page of one version, both layouts side by side, in turns on one engine
    that keeps one open (so every call attaches): what a tenant costs when it is not open;
    and each layout's disk."""
    from claw402.datasets.engine import Engine
    from claw402.datasets.ingest import ingest
    from claw402.datasets.query import parse_query

    with tempfile.TemporaryDirectory() as scratch:
        for rows in sizes:
            source = Path(scratch) / f"{rows}.csv"
            rnd = random.Random(rows)
            source.write_text(
                "id,name,price\n"
                + "".join(
                    f"{i},name {rnd.randrange(10**6)},{rnd.random():.4f}\n" for i in range(rows)
                )
            )
            results = {
                layout: ingest(
                    source, Path(scratch) / f"{rows}-{layout}", key="id", compact_rows=limit
                )
                for layout, limit in (("parquet", rows), ("duckdb", 0))
            }
            times: dict[str, list[float]] = {k: [] for k in results}
            engine = Engine(cache_rows=0, max_open=1)  # each open detaches the other
            handles = {k: engine.open(r.path, r.columns, key="id") for k, r in results.items()}
            query = parse_query([], results["duckdb"].columns, max_limit=100)
            for _ in range(rounds):
                for layout, handle in handles.items():
                    started = time.perf_counter()
                    handle.records(query)
                    times[layout].append((time.perf_counter() - started) * 1000)
            engine.close()
            print(
                f"{rows:>6} rows: open + first page "
                + ", ".join(
                    f"{k} {statistics.median(v):.2f} ms "
                    f"({disk(results[k].path.parent)[0] // 1024} KB)"
                    for k, v in times.items()
                )
            )


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            children = [int(c) for c in task.read_text().split()]
            found += children
            todo += children
    return found


def anon_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker_anon(server: subprocess.Popen[bytes]) -> float:
    """RssAnon of the largest process under `serve` (the granian worker)."""
    return max((anon_mb(p) for p in descendants(server.pid)), default=0.0)


class Retrying:
    """`Client.get`, again on a 503: under this machine's load a first touch can run past the
    free plan's 200 ms budget. Counts the retries, which the report prints."""

    def __init__(self, client: Client) -> None:
        self.client, self.retries = client, 0

    def get(self, url: str) -> bytes:
        for _ in range(3):
            try:
                return self.client.get(url)
            except RuntimeError as exc:
                if ": 503 " not in str(exc):
                    raise
                self.retries += 1
        return self.client.get(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--open-datasets", type=int)
    parser.add_argument("--page-cache", help="the worker's answers cache, e.g. 32MB")
    parser.add_argument("--cache-rows", type=int)
    parser.add_argument("--runtimes", type=int, help="tenant runtimes a worker keeps")
    parser.add_argument("--layouts", action="store_true", help="only compare the layouts")
    parser.add_argument("--deployed", type=int, default=100, help="tenants deployed for real")
    parser.add_argument("--blocks", type=int, default=10, help="blocks of 200 calls per side")
    args = parser.parse_args()
    if args.layouts:
        layouts()
        return
    home = DATA / f"tenants-{args.tenants}"
    per_deploy = deploy_all(home, args.tenants, args.deployed)
    if per_deploy:
        print(
            f"{args.deployed} tenants deployed in {per_deploy * 1000:.0f} ms each, the rest cloned"
        )
    allocated, apparent, files = disk(home / "datasets")
    print(
        f"{args.tenants:,} tenants x {ROWS} rows: {allocated / 1e6:,.1f} MB allocated "
        f"({allocated / args.tenants / 1024:.1f} KB a tenant, {files / args.tenants:.1f} files, "
        f"{apparent / args.tenants / 1024:.1f} KB apparent); as a DuckDB file: "
        f"{duckdb_layout_bytes() / 1024:.0f} KB a tenant"
    )
    env = {**os.environ, "CLAW402_HOME": str(home)}
    env.pop("CLAW402_DATABASE_URL", None)
    if args.open_datasets:
        env["CLAW402_OPEN_DATASETS"] = str(args.open_datasets)
    if args.page_cache:
        env["CLAW402_PAGE_CACHE"] = args.page_cache
    if args.runtimes:
        env["CLAW402_RUNTIMES"] = str(args.runtimes)
    if args.cache_rows is not None:
        env["CLAW402_PAGE_CACHE_ROWS"] = str(args.cache_rows)
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "402claw"), "serve", "--port", str(port)], env=env, cwd=ROOT
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/healthz", server)
        client = Retrying(Client(base))
        slugs = [f"t{n:05d}" for n in range(args.tenants)]
        few = slugs[:10]
        for slug in few * 3:
            client.get(f"/t/{slug}/v1/records")
        anon_few = worker_anon(server)
        order = slugs[:]
        random.Random(1).shuffle(order)
        started = time.perf_counter()
        for slug in order:  # every tenant once: the calls below are repeats
            client.get(f"/t/{slug}/v1/records")
        touch_ms = (time.perf_counter() - started) * 1000 / len(order)
        anon_all = worker_anon(server)
        times: dict[str, list[float]] = {"10 tenants": [], f"all {args.tenants:,}": []}
        rnd = random.Random(2)
        for block in range(2 * args.blocks):
            side = list(times)[block % 2]
            for i in range(200):
                slug = few[i % 10] if block % 2 == 0 else rnd.choice(slugs)
                t0 = time.perf_counter()
                client.get(f"/t/{slug}/v1/records")
                times[side].append((time.perf_counter() - t0) * 1000)
        client.client.close()
        print(f"{client.retries} calls retried after a 503 (over the plan's time budget)")
        print(f"first touch of every tenant: {touch_ms:.2f} ms a call (mean)")
        for side, values in times.items():
            values.sort()
            print(
                f"repeat calls over {side:>12}: median {statistics.median(values):.3f} ms, "
                f"p90 {values[int(len(values) * 0.9)]:.3f} ms"
            )
        print(
            f"worker RssAnon: {anon_few:.0f} MB after 10 tenants, {anon_all:.0f} MB after "
            f"{args.tenants:,}, {worker_anon(server):.0f} MB at the end; load average "
            f"{os.getloadavg()[0]:.2f}"
        )
    finally:
        server.terminate()
        server.wait(30)
    shutil.rmtree(home / "tmp", ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
