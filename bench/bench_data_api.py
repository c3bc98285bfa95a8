"""The data API through HTTP on 1M rows, side by side with Datasette on the same data.

    python bench/bench_data_api.py                # 1M rows, 200 requests per query
    python bench/bench_data_api.py --rows 200000 --requests 100 --no-datasette

It generates the CSV (bench_engine.generate, fixed seed, reused), times `402claw deploy`
(the ingest), serves it with `402claw serve` (uvicorn, its own process) and Datasette
(installed into bench/data/datasette-venv for this script only, over a SQLite copy of the same
rows), then sends the same four queries to both, sequentially over one keep-alive connection
each (`Client`), the two sides taking turns in blocks of 20 requests (see `measure`), with the
filter values varied per request so neither side answers from a cache (the unfiltered first
page is one URL and may be cached on both). Prints medians and p99 in milliseconds.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_engine import DATA, WORDS, generate

# One load generator is one caller: the per-caller rate limit would answer it 429. The limits
# cost is measured by bench_limits.py; here the paths are measured without them.
os.environ.setdefault("CLAW402_LIMITS", "off")

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


def sqlite_copy(source: Path, target: Path) -> None:
    """The same rows, typed, in a SQLite table Datasette can serve (no indexes, like ours)."""
    if target.exists():
        return
    tmp = target.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    types = {"id": "INTEGER PRIMARY KEY", "price": "REAL", "quantity": "INTEGER",
             "zip": "INTEGER"}  # fmt: skip
    with source.open() as fh:
        rows = csv.reader(fh)
        header = next(rows)
        columns = ", ".join(f"{c} {types.get(c, 'TEXT')}" for c in header)
        con.execute(f"CREATE TABLE data ({columns})")
        con.executemany(f"INSERT INTO data VALUES ({','.join('?' * len(header))})", rows)
    con.commit()
    con.close()
    tmp.replace(target)


def datasette_bin() -> Path:
    venv = DATA / "datasette-venv"
    exe = venv / "bin" / "datasette"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "datasette==0.65.*"], check=True
        )
    return exe


class Client:
    """One keep-alive connection from the standard library's `http.client`: a few hundred µs
    less per request than httpx (measured 0.13-0.24 ms of client CPU against 0.5-0.85 ms on
    a 100-row page), and that time is the client's, not the server's latency."""

    def __init__(self, base: str) -> None:
        host, _, port = base.removeprefix("http://").partition(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)

    def get(self, url: str) -> bytes:
        self.conn.request("GET", quote(url, safe="/?&=:,._-"))
        response = self.conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {url}: {response.status} {body[:200]!r}")
        return body

    def close(self) -> None:
        self.conn.close()


def measure(
    clients: dict[str, Client], urls: dict[str, Callable[[int], str]], n: int, block: int = 20
) -> dict[str, tuple[float, float]]:
    """Median and p99 per target. The targets take turns, `block` requests at a time: a
    shared machine's speed drifts by tens of percent from minute to minute, so each side
    sees the same machine; whole blocks, because a server's leftover work after an answer
    (seen from Datasette) would otherwise land on the other side's next request."""
    names = list(clients)
    for name in names:
        for i in range(5):
            clients[name].get(urls[name](10_000 + i))
    times: dict[str, list[float]] = {name: [] for name in names}
    for start in range(0, n, block):
        turn = start // block % len(names)
        for name in names[turn:] + names[:turn]:
            for i in range(start, min(n, start + block)):
                url = urls[name](i)
                began = time.perf_counter()
                clients[name].get(url)
                times[name].append((time.perf_counter() - began) * 1000)
    out = {}
    for name, samples in times.items():
        samples.sort()
        out[name] = (statistics.median(samples), samples[min(n - 1, int(n * 0.99))])
    return out


def queries(datasette: str | None = None) -> dict[str, Callable[[int], str]]:
    """The four queries, as URLs for 402claw, or for Datasette serving database `datasette`."""

    # Selective values, so no engine can stop early: a price matches ~10 of 1M rows, a
    # three-word phrase ~170 (descriptions are 7 random words of 31).
    def price(i: int) -> str:
        return f"{(i * 3779) % 100_000 / 100:.2f}"

    def phrase(i: int) -> str:  # a different phrase for each of the first 300 requests
        n, t = len(WORDS), i * 97
        return f"{WORDS[t % n]} {WORDS[t // n % n]} {WORDS[t // n // n % n]}"

    if datasette:
        # _nocount/_nofacet/_nosuggest skip the count(*) and facet work Datasette does per page by
        # default: the comparison favours Datasette.
        base = f"/{datasette}/data.json?_shape=objects&_size=100&_nocount=1&_nofacet=1&_nosuggest=1"
        return {
            "first page": lambda i: base,
            "equality (unindexed)": lambda i: f"{base}&price={price(i)}",
            "range + sort": lambda i: (
                f"{base}&price__gte={i % 900}&price__lt={i % 900 + 50}&_sort_desc=quantity"
            ),
            "substring": lambda i: f"{base}&description__contains={phrase(i)}",
        }
    base = "/t/bench/v1/records?_limit=100"
    return {
        "first page": lambda i: base,
        "equality (unindexed)": lambda i: f"{base}&price={price(i)}",
        "range + sort": lambda i: (
            f"{base}&price__gte={i % 900}&price__lt={i % 900 + 50}&_sort=-quantity"
        ),
        "substring": lambda i: f"{base}&description__contains={phrase(i)}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--no-datasette", action="store_true")
    args = parser.parse_args()

    DATA.mkdir(exist_ok=True)
    source = DATA / f"bench-{args.rows}.csv"
    if not source.exists():
        print(f"generating {args.rows:,} rows ...", flush=True)
        generate(source, args.rows)
    print(f"source: {source} ({source.stat().st_size / 1e6:.0f} MB)")

    home = Path(tempfile.mkdtemp(prefix="402claw-bench-"))
    env = {**os.environ, "CLAW402_HOME": str(home)}
    env.pop("CLAW402_DATABASE_URL", None)
    start = time.perf_counter()
    subprocess.run(
        [
            str(BIN / "402claw"),
            "deploy",
            str(source),
            "--tenant",
            "bench",
            "--price",
            "0",
            "--plan",
            "enterprise",
            "--json",
        ],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    print(f"402claw deploy (ingest + registry): {time.perf_counter() - start:.2f} s")

    servers: list[subprocess.Popen[bytes]] = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on kill too
    try:
        port = free_port()
        servers.append(
            subprocess.Popen(
                [str(BIN / "402claw"), "serve", "--port", str(port)], env=env, cwd=ROOT
            )
        )
        ours = f"http://127.0.0.1:{port}"
        wait_ready(ours + "/healthz", servers[-1])
        targets = {"402claw": (ours, queries())}
        if not args.no_datasette:
            db = DATA / f"bench-{args.rows}.db"
            sqlite_copy(source, db)
            dport = free_port()
            servers.append(
                subprocess.Popen(
                    [
                        str(datasette_bin()),
                        "serve",
                        str(db),
                        "--port",
                        str(dport),
                        "--setting",
                        "sql_time_limit_ms",
                        "20000",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            wait_ready(f"http://127.0.0.1:{dport}/-/versions.json", servers[-1])
            targets["datasette"] = (f"http://127.0.0.1:{dport}", queries(db.stem))

        results: dict[str, dict[str, tuple[float, float]]] = {name: {} for name in targets}
        clients = {name: Client(base) for name, (base, _) in targets.items()}
        try:
            for q in queries():
                found = measure(
                    clients, {n: urls[q] for n, (_, urls) in targets.items()}, args.requests
                )
                for name, result in found.items():
                    results[name][q] = result
                    print(f"  {name:<10} {q:<22} {result[0]:7.2f} ms median", flush=True)
        finally:
            for client in clients.values():
                client.close()

        print(f"\n{args.requests} sequential requests per query, ms (median / p99)")
        header = (
            f"{'query':<22}"
            + "".join(f"{n:>22}" for n in results)
            + ("   speed-up" if len(results) > 1 else "")
        )
        print(header)
        for q in queries():
            row = f"{q:<22}" + "".join(
                f"{results[n][q][0]:>12.2f} / {results[n][q][1]:>7.2f}" for n in results
            )
            if "datasette" in results:
                row += f"   {results['datasette'][q][0] / results['402claw'][q][0]:>6.1f}x"
            print(row)
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
