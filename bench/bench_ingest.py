"""Ingest time and peak memory: the bench CSV (bench_engine.py's) of 1M and 10M rows.

    python bench/bench_ingest.py                   # 1M and 10M rows, 2 runs each
    python bench/bench_ingest.py --rows 1000000 --runs 3

Each ingest runs in a child process (`--child`), so its peak RSS (ru_maxrss from wait4) is the
ingest's alone, DuckDB's threads included. The CSVs are generated once into bench/data/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_engine import DATA, generate


def child(source: Path, dest: Path) -> None:
    from claw402.datasets.ingest import ingest

    started = time.perf_counter()
    result = ingest(source, dest, key="id")
    print(f"{time.perf_counter() - started:.3f} {result.rows} {result.path.stat().st_size}")


def run_once(source: Path, dest: Path) -> tuple[float, int, int, float, float]:
    """Seconds inside ingest(), rows, file bytes, the child's peak RSS in MB and its CPU
    seconds (all threads: under load wall time grows, CPU time much less)."""
    shutil.rmtree(dest, ignore_errors=True)
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", str(source), str(dest)], stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    out = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"ingest failed ({process.returncode})")
    seconds, rows, size = out.split()
    cpu = usage.ru_utime + usage.ru_stime
    return float(seconds), int(rows), int(size), usage.ru_maxrss / 1024, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("SOURCE", "DEST"))
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]))
        return
    DATA.mkdir(exist_ok=True)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for rows in args.rows or [1_000_000, 10_000_000]:
        source = DATA / f"bench-{rows}.csv"
        if not source.exists():
            started = time.perf_counter()
            generate(source, rows)
            print(f"generated {source} in {time.perf_counter() - started:.0f} s")
        dest = DATA / f"ingest-bench-{rows}"
        runs = [run_once(source, dest) for _ in range(args.runs)]
        times = [r[0] for r in runs]
        print(
            f"{rows:>11,} rows, {source.stat().st_size / 1e6:,.0f} MB CSV: ingest median "
            f"{statistics.median(times):.2f} s of {', '.join(f'{t:.2f}' for t in times)}; "
            f"CPU {statistics.median(r[4] for r in runs):.1f} s; "
            f"peak RSS max {max(r[3] for r in runs):,.0f} MB; file {runs[-1][2] / 1e6:,.0f} MB"
        )
        shutil.rmtree(dest, ignore_errors=True)
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
