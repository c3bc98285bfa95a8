"""In-process benchmark of the datasets layer on a 1M-row, ~100 MB CSV.

    python bench/bench_engine.py                 # generate (once), ingest (timed), query
    python bench/bench_engine.py --rows 200000 --iterations 100

Each query runs parse_query + Dataset.records + render(json), the work the gateway does per
call, with the page cache off (every call reaches DuckDB) and filter values varied per
iteration. The CSV is generated with a fixed seed into bench/data/ (gitignored) and reused.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from claw402.datasets.cursor import encode_cursor
from claw402.datasets.engine import Engine
from claw402.datasets.ingest import ingest
from claw402.datasets.output import render
from claw402.datasets.query import parse_query

DATA = Path(__file__).parent / "data"
ZIPS = 7_200  # distinct values of the `zip` column
FIRST = [
    "Ada",
    "Bob",
    "Chen",
    "Dana",
    "Eve",
    "Femi",
    "Gus",
    "Hana",
    "Ivan",
    "Jia",
    "Kofi",
    "Lena",
    "Mateo",
    "Nora",
    "Omar",
    "Pia",
    "Quinn",
    "Ravi",
    "Sara",
    "Tomas",
    "Uma",
    "Vera",
    "Wen",
    "Xavi",
    "Yara",
    "Zane",
]
LAST = [
    "Smith",
    "Garcia",
    "Okafor",
    "Tanaka",
    "Muller",
    "Rossi",
    "Novak",
    "Silva",
    "Kim",
    "Dubois",
    "Jensen",
    "Haddad",
    "Kowalski",
    "Nguyen",
    "Ivanova",
    "Costa",
]
CITIES = [
    p + s
    for p in ("North", "South", "East", "West", "New", "Old", "Port", "Lake", "San", "Fort")
    for s in ("haven", "ford", "ville", "burg", "field", "mouth", "ton", "wick", "stead", "bridge")
]
CATEGORIES = [
    "books",
    "music",
    "garden",
    "toys",
    "tools",
    "food",
    "health",
    "sports",
    "auto",
    "office",
    "pets",
    "baby",
]
WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
    "amber",
    "cobalt",
    "saffron",
    "umber",
    "teal",
]


def generate(path: Path, rows: int, seed: int = 402) -> None:
    """id, name, city, category, price, quantity, created, description, zip: ~105 bytes a
    row; zip: an integer with 7,200 distinct values (the issue's equality column)."""
    rnd = random.Random(seed)
    start = date(2015, 1, 1)
    days = [(start + timedelta(days=d)).isoformat() for d in range(3650)]
    names = [f"{f} {la}" for f in FIRST for la in LAST]
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as fh:
        fh.write("id,name,city,category,price,quantity,created,description,zip\n")
        for base in range(0, rows, 10_000):
            n = min(10_000, rows - base)
            pick = rnd.choices
            lines = zip(
                range(base + 1, base + n + 1),
                pick(names, k=n),
                pick(CITIES, k=n),
                pick(CATEGORIES, k=n),
                (rnd.random() * 1000 for _ in range(n)),
                (rnd.randint(0, 500) for _ in range(n)),
                pick(days, k=n),
                (" ".join(pick(WORDS, k=7)) for _ in range(n)),
                (10_000 + rnd.randrange(ZIPS) for _ in range(n)),
                strict=True,
            )
            fh.write(
                "".join(
                    f"{i},{nm},{c},{cat},{p:.2f},{q},{d},{t},{z}\n"
                    for i, nm, c, cat, p, q, d, t, z in lines
                )
            )
    tmp.replace(path)


def measure(fn: Callable[[int], object], iterations: int) -> tuple[float, float, float]:
    """Median and p99 wall time, and median CPU time of the whole process (all DuckDB
    threads): wall time grows when other work shares the cores, CPU time much less."""
    times, cpu = [], []
    for i in range(iterations):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn(i)
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return statistics.median(times), p99, statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--ingest-runs", type=int, default=3)
    args = parser.parse_args()

    DATA.mkdir(exist_ok=True)
    source = DATA / f"bench-{args.rows}.csv"
    if not source.exists():
        started = time.perf_counter()
        generate(source, args.rows)
        print(f"generated {source} in {time.perf_counter() - started:.1f} s")
    size_mb = source.stat().st_size / 1e6
    print(
        f"source: {args.rows:,} rows, {size_mb:.0f} MB; load average {os.getloadavg()[0]:.2f}"
        f" on {os.cpu_count()} cores"
    )

    ingest_times, ingest_cpu = [], []
    for run in range(args.ingest_runs):
        dest = DATA / f"ingest-{run}"
        shutil.rmtree(dest, ignore_errors=True)
        started, started_cpu = time.perf_counter(), time.process_time()
        result = ingest(source, dest, key="id")
        ingest_times.append(time.perf_counter() - started)
        ingest_cpu.append(time.process_time() - started_cpu)
    for run in range(args.ingest_runs - 1):
        shutil.rmtree(DATA / f"ingest-{run}", ignore_errors=True)
    runs = ", ".join(f"{t:.2f}" for t in ingest_times)
    print(
        f"ingest (key=id): median {statistics.median(ingest_times):.2f} s of {runs} "
        f"(CPU {statistics.median(ingest_cpu):.2f} s); file "
        f"{result.path.stat().st_size / 1e6:.0f} MB"
    )

    engine = Engine(cache_rows=0)
    dataset = engine.open(result.path, result.columns, key=result.key, version="bench")
    columns = result.columns
    rnd = random.Random(7)

    def call(params: list[tuple[str, str]]) -> None:
        query = parse_query(params, columns, max_limit=1000, version="bench")
        render(dataset.records(query, timeout_ms=10_000), query.format)

    call([])
    call([("_q", "warm")])  # read every block once: the buffer pool is warm, as in serving
    binding = parse_query([], columns, max_limit=1000, version="bench").binding
    cursors = [encode_cursor(binding, [], rnd.randrange(args.rows - 200)) for _ in range(50)]
    terms = WORDS + CITIES[:20] + [n.lower() for n in FIRST] + ["ana", "son", "er t"]
    prices = [rnd.random() * 950 for _ in range(100)]
    rare = [f"{rnd.random() * 1000:.2f}" for _ in range(100)]

    def phrase(i: int) -> str:  # ~170 of 1M rows, as bench_data_api.py asks
        n, t = len(WORDS), i * 97
        return f"{WORDS[t % n]} {WORDS[t // n % n]} {WORDS[t // n // n % n]}"

    cases: list[tuple[str, Callable[[int], object]]] = [
        ("first page (no params)", lambda i: call([])),
        ("keyset page at a random offset", lambda i: call([("_cursor", cursors[i % 50])])),
        (
            "equality, unindexed: city= / quantity=",
            lambda i: call([("city", CITIES[i % 100])] if i % 2 else [("quantity", str(i % 501))]),
        ),
        (
            "range + sort + 100: price range, -created",
            lambda i: call(
                [
                    ("price__gte", f"{prices[i % 100]:.2f}"),
                    ("price__lt", f"{prices[i % 100] + 50:.2f}"),
                    ("_sort", "-created"),
                ]
            ),
        ),
        ("substring _q (words, names, cities)", lambda i: call([("_q", terms[i % len(terms)])])),
        ("substring _q matching nothing (worst)", lambda i: call([("_q", f"zq{i}x")])),
        (
            "substring: description__contains 3 words",
            lambda i: call([("description__contains", phrase(i))]),
        ),
        (
            "substring, sorted: + _sort=-price",
            lambda i: call([("description__contains", phrase(i)), ("_sort", "-price")]),
        ),
        ("equality, rare value (full scan)", lambda i: call([("price", rare[i % 100])])),
        ("sort, no filter: _sort=name", lambda i: call([("_sort", "name")])),
        ("record(key)", lambda i: dataset.record(str(rnd.randrange(1, args.rows + 1)))),
    ]
    print(
        f"\nin-process, uncached, {args.iterations} iterations each (ms; cpu = process CPU"
        " time, all threads):"
    )
    print(f"{'query':44s} {'median':>8s} {'p99':>8s} {'cpu':>8s}")
    for name, fn in cases:
        median, p99, cpu = measure(fn, args.iterations)
        print(f"{name:44s} {median:8.2f} {p99:8.2f} {cpu:8.2f}")
    cached = Engine()
    cached_ds = cached.open(result.path, result.columns, version="bench")
    query = parse_query([], columns, max_limit=1000, version="bench")
    median, p99, cpu = measure(lambda i: render(cached_ds.records(query), "json"), args.iterations)
    print(f"{'first page, page cache on':44s} {median:8.2f} {p99:8.2f} {cpu:8.2f}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nmax RSS {rss:.0f} MB; load average {os.getloadavg()[0]:.2f}")
    engine.close()
    cached.close()


if __name__ == "__main__":
    sys.exit(main())
