"""Anonymous memory of one process serving 10M-row datasets, under a budget, side by side.

    python bench/bench_memory.py                          # 10M rows; budgets 1GB, 256MB, 192MB
    python bench/bench_memory.py --rows 1000000 --budget 256MB --budget 128MB --datasets 3

For each budget a fresh child process opens `--datasets` copies of the ingested dataset
(hard links: one file on disk, each attached on its own, as different tenants' versions are)
with `Engine(**Budget(memory_limit=...).engine_options())` and the page cache off, runs
`--queries` mixed queries (first page, keyset page, equality on unindexed columns, range +
sort, `_q`, `__contains`, a rare value, a sort of everything, record by key; values varied per
call) spread over the datasets, each answered as the gateway does (the row store's `page_json`,
else DuckDB's `records`; the row store is built up front and hard-linked with the data, the
share it answered in parentheses), and reports each kind's median and the process's RssAnon
(/proc/self/status: DuckDB's buffer pool and everything Python holds; the search files are
memory-mapped, file-backed, not anonymous) after them.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_engine import CITIES, DATA, FIRST, WORDS, generate


def anon_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


TYPES = {"id": "integer", "price": "number", "quantity": "integer", "zip": "integer",
         "created": "date"}  # fmt: skip


def source_columns(folder: Path) -> list:
    """The bench CSV's columns (bench_engine.generate), as the ingest typed them."""
    from claw402.datasets.schema import Column

    header = (folder / "columns.txt").read_text().split(",")
    return [Column(n, TYPES.get(n, "string")) for n in header]  # type: ignore[arg-type]


def child(folder: Path, rows: int, budget: str, datasets: int, queries: int) -> None:
    from claw402.datasets.budget import Budget
    from claw402.datasets.engine import Engine
    from claw402.datasets.ingest import IngestResult  # noqa: F401  (imports as the gateway)
    from claw402.datasets.output import render
    from claw402.datasets.query import parse_query

    columns = source_columns(folder)
    start_anon = anon_mb()
    engine = Engine(**{**Budget(memory_limit=budget).engine_options(), "cache_rows": 0})
    handles = [
        engine.open(folder / f"copy-{i}" / "data.duckdb", columns, key="id", version=f"v{i}")
        for i in range(datasets)
    ]
    rnd = random.Random(7)
    terms = WORDS + CITIES[:20] + [n.lower() for n in FIRST]

    def phrase(i: int) -> str:
        n, t = len(WORDS), i * 97
        return f"{WORDS[t % n]} {WORDS[t // n % n]} {WORDS[t // n // n % n]}"

    kinds = {
        "first page": lambda i: [],
        "keyset page": lambda i: [("id__gt", str(rnd.randrange(rows - 200))), ("_limit", "100")],
        "equality, unindexed": lambda i: (
            [("city", CITIES[i % 100])] if i % 2 else [("quantity", str(i % 501))]
        ),
        "equality, 7,200 values": lambda i: [("zip", str(10_000 + rnd.randrange(7_200)))],
        "range + sort": lambda i: [
            ("price__gte", f"{i % 900}.5"),
            ("price__lt", f"{i % 900 + 50}.5"),
            ("_sort", "-created"),
        ],
        "_q": lambda i: [("_q", terms[i % len(terms)])],
        "__contains 3 words": lambda i: [("description__contains", phrase(i))],
        "rare value (full scan)": lambda i: [("price", f"{rnd.random() * 1000:.2f}")],
        "sort everything": lambda i: [("_sort", "name" if i % 2 else "-price")],
    }
    if "zip" not in {c.name for c in columns}:
        del kinds["equality, 7,200 values"]
    times: dict[str, list[float]] = defaultdict(list)
    stored: dict[str, int] = defaultdict(int)  # answered by the row store (indexed.py)
    names = [*kinds, "record(key)"]
    for i in range(queries):
        kind = names[i % len(names)]
        dataset = handles[(i // len(names)) % datasets]
        started = time.perf_counter()
        if kind == "record(key)":
            dataset.record(str(rnd.randrange(1, rows + 1)))
        else:
            made = kinds[kind](i // len(names))  # the kind's own call number: both halves
            query = parse_query(made, columns, max_limit=1000, version=dataset.version)
            if dataset.page_json(query, timeout_ms=30_000) is not None:  # as the gateway does
                stored[kind] += 1
            else:
                render(dataset.records(query, timeout_ms=30_000), "json")
        times[kind].append((time.perf_counter() - started) * 1000)
    after = anon_mb()
    medians = " ".join(
        f"{k.replace(' ', '_')}={statistics.median(v):.1f}({100 * stored[k] // len(v)}%)"
        for k, v in times.items()
    )
    print(f"{start_anon:.0f} {after:.0f} {medians}")
    engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--budget", action="append", help="memory limits to compare")
    parser.add_argument("--datasets", type=int, default=3)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "BUDGET"))
    args = parser.parse_args()
    folder = DATA / f"memory-{args.rows}"
    if args.child:
        child(Path(args.child[0]), args.rows, args.child[1], args.datasets, args.queries)
        return
    from claw402.datasets.ingest import ingest
    from claw402.datasets.rowstore import RowStore, build

    source = DATA / f"bench-{args.rows}.csv"
    if not source.exists():
        DATA.mkdir(exist_ok=True)
        generate(source, args.rows)
    if not (folder / "copy-0" / "data.duckdb").exists():
        started = time.perf_counter()
        result = ingest(source, folder / "copy-0", key="id")
        (folder / "columns.txt").write_text(",".join(c.name for c in result.columns))
        print(f"ingested in {time.perf_counter() - started:.0f} s", flush=True)
    data = folder / "copy-0" / "data.duckdb"
    if RowStore.open(data) is None:  # what the gateway builds in the background on first use
        started = time.perf_counter()
        build(data, source_columns(folder))
        print(f"row store built in {time.perf_counter() - started:.0f} s", flush=True)
    for i in range(1, args.datasets):  # another version of the same bytes: hard links
        copy = folder / f"copy-{i}"
        for path in (folder / "copy-0").rglob("*"):
            target = copy / path.relative_to(folder / "copy-0")
            if path.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            elif not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, target)
    print(
        f"{args.rows:,} rows x {args.datasets} datasets, {args.queries} mixed queries, "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    for budget in args.budget or ["1GB", "256MB", "192MB"]:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--rows",
                str(args.rows),
                "--datasets",
                str(args.datasets),
                "--queries",
                str(args.queries),
                "--child",
                str(folder),
                budget,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        print(
            f"memory_limit {budget:>6}: RssAnon {out[0]} MB at start -> {out[1]} MB after; "
            f"median ms: {' '.join(out[2:])}"
        )
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
