"""Throughput under load and sequential latency, 402claw beside Datasette, in one run.

    python bench/bench_load.py                       # 1M rows, wrk 10 s per query, 200 seq.
    python bench/bench_load.py --workers 2 --duration 10 --requests 200 \\
        --datasette /tmp/datasette-venv/bin/datasette

Servers, each its own process tree on 127.0.0.1: a bare ASGI hello-world on granian (the
ceiling, same worker count), `402claw serve --workers N` over the deployed CSV (a free tenant:
the paid path is measured in bench_paid_call.py), and Datasette over a SQLite copy of the same
rows (`id INTEGER PRIMARY KEY`, the one index it gets by default; bench_data_api.sqlite_copy).
Datasette is not a project dependency: `--datasette` names its executable, else it is
installed into bench/data/datasette-venv.

Under wrk (2 threads, `--connections`, `--duration` s) each query kind reads its paths from a
file of `--paths` URLs with values drawn at random (fixed seed; a Lua script cycles through
them from a random start per thread), so no page cache answers; the servers take turns per
kind, `--rounds` times, and the median rate counts. Then every kind sequentially, one
keep-alive connection per server, sides alternating in blocks (bench_data_api.measure).
wrk shares the 2 cores with the servers: compare ratios from one run, not absolute rates
across runs.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_data_api import Client, datasette_bin, free_port, measure, sqlite_copy, wait_ready
from bench_engine import DATA, WORDS, ZIPS, generate

# One load generator is one caller: the per-caller rate limit would answer it 429. The limits
# cost is measured by bench_limits.py; here the paths are measured without them.
os.environ.setdefault("CLAW402_LIMITS", "off")

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DS_FLAGS = "_shape=objects&_nocount=1&_nofacet=1&_nosuggest=1"  # no count/facets: favours it
STRINGS = ("name", "city", "category", "description")

LUA = """
local paths, n, i = {}, 0, 0
function init(args)
  for line in io.lines(args[1]) do n = n + 1; paths[n] = line end
  math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1e6))
  i = math.random(n)
end
function request()
  i = i % n + 1
  return wrk.format("GET", paths[i])
end
"""

Kind = tuple[Callable[[random.Random], str], Callable[[random.Random], str]]


def _pair(rnd: random.Random) -> str:
    return f"{rnd.choice(WORDS)} {rnd.choice(WORDS)}"


def kinds(rows: int, db: str) -> dict[str, Kind]:
    """Each query kind as (402claw path, Datasette path) from a random source."""
    ours, theirs = "/t/bench/v1/records?_limit=100", f"/{db}/data.json?_size=100&{DS_FLAGS}"

    def both(ours_q: Callable[[random.Random], str], ds_q: Callable[[random.Random], str]) -> Kind:
        return (lambda r: f"{ours}&{ours_q(r)}"), (lambda r: f"{theirs}&{ds_q(r)}")

    def price(r: random.Random) -> str:
        return f"{r.randrange(100_000) / 100:.2f}"

    def low(r: random.Random) -> float:
        return r.randrange(95_000) / 100

    def zipcode(r: random.Random) -> str:
        return f"zip={10_000 + r.randrange(ZIPS)}"

    def keyset(r: random.Random) -> str:
        return f"id__gt={r.randrange(rows - 100)}"

    def ranged(r: random.Random) -> tuple[float, float]:
        a = low(r)
        return a, a + 50

    def q_where(text: str) -> str:  # Datasette has no _q without FTS: the same as a WHERE
        return " or ".join(f"{c} like '%{text}%'" for c in STRINGS)

    return {
        "keyset page (id__gt)": both(keyset, keyset),
        "equality (unindexed)": both(lambda r: f"price={price(r)}", lambda r: f"price={price(r)}"),
        "equality, 7,200 values": both(zipcode, zipcode),
        "range + sort": both(
            lambda r: "price__gte={}&price__lt={}&_sort=-quantity".format(*ranged(r)),
            lambda r: "price__gte={}&price__lt={}&_sort_desc=quantity".format(*ranged(r)),
        ),
        "substring (common)": both(
            lambda r: f"description__contains={_pair(r)}",
            lambda r: f"description__contains={_pair(r)}",
        ),
        "_q (common)": both(lambda r: f"_q={_pair(r)}", lambda r: f"_where={q_where(_pair(r))}"),
        "first page": both(lambda r: "", lambda r: ""),
    }


LOAD_KINDS = (
    "keyset page (id__gt)",
    "equality (unindexed)",
    "equality, 7,200 values",
    "range + sort",
)


def path_file(folder: Path, name: str, make: Callable[[random.Random], str], n: int) -> Path:
    rnd = random.Random(402)
    target = folder / (re.sub(r"\W+", "-", name) + ".txt")
    target.write_text("".join(quote(make(rnd), safe="/?&=:,._-") + "\n" for _ in range(n)))
    return target


class Retrying(Client):
    """`Client` that opens a new connection once when the server dropped the kept-alive one."""

    def get(self, url: str) -> bytes:
        try:
            return super().get(url)
        except (http.client.RemoteDisconnected, ConnectionError):
            self.conn.close()
            return super().get(url)


def wrk(url: str, paths: Path | None, duration: int, connections: int) -> dict[str, float]:
    """Requests/s (errors counted apart) of wrk at `url`, with `paths` cycled per request."""
    args = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "30s", "--latency"]
    if paths is not None:
        script = paths.with_suffix(".lua")
        script.write_text(LUA)
        args += ["-s", str(script), url, "--", str(paths)]
    else:
        args.append(url)
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    # What wrk left queued is served before the next run: one more query of the kind waits
    # behind it (a slow server may still hold dozens).
    first = paths.read_text().split("\n", 1)[0] if paths is not None else ""
    httpx.get(url + first, timeout=600)
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    p50 = re.search(r"50%\s+([0-9.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {
        "rps": rate,
        "non2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": 1 if errors else 0,
        "p50_ms": float(p50.group(1)) * scale[p50.group(2)] if p50 else float("nan"),
    }


@contextmanager
def server(args: list[str], ready: str, env: dict[str, str] | None = None) -> Iterator[None]:
    proc = subprocess.Popen(args, env=env, start_new_session=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_ready(ready, proc)
        yield
    finally:
        if proc.poll() is None:
            proc.terminate()
            with suppress(subprocess.TimeoutExpired):
                proc.wait(15)
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def hello_app() -> object:
    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"13")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"Hello, world!"})

    return app


def serve_hello(port: int, workers: int) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    Granian("bench_load:hello_app", factory=True, address="127.0.0.1", port=port,
            interface=Interfaces.ASGI, workers=workers, log_level="warning").serve()  # fmt: skip


def deploy(source: Path, home: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([str(BIN / "402claw"), "deploy", str(source), "--tenant", "bench",
                    "--price", "0", "--plan", "enterprise", "--json"],
                   check=True, env=env, stdout=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1, help="wrk runs per server and kind")
    # At ~1 answer/s, 50 connections wait ~50 s for Datasette's, and wrk counts only what is
    # answered within its run: Datasette's runs are longer.
    parser.add_argument("--ds-duration", type=int, default=30, help="seconds per Datasette run")
    parser.add_argument("--requests", type=int, default=200, help="sequential, per kind")
    parser.add_argument("--paths", type=int, default=100_000, help="distinct URLs per kind")
    parser.add_argument("--datasette", help="the datasette executable (else installed)")
    parser.add_argument("--no-datasette", action="store_true")
    parser.add_argument("--home", help="a 402claw home already holding tenant `bench`")
    parser.add_argument("--only", action="append", help="query kinds to run (repeatable)")
    args = parser.parse_args()

    DATA.mkdir(exist_ok=True)
    source = DATA / f"load-{args.rows}.csv"  # with `zip` (older bench-*.csv lack it)
    if not source.exists():
        generate(source, args.rows)
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="402claw-load-"))
    env = {**os.environ, "CLAW402_HOME": str(home)}
    env.pop("CLAW402_DATABASE_URL", None)
    work = Path(tempfile.mkdtemp(prefix="402claw-load-paths-"))
    try:
        if not args.home:
            print(f"402claw deploy: {deploy(source, home, env):.1f} s", flush=True)
        db = source.with_suffix(".db")
        all_kinds = kinds(args.rows, db.stem)
        chosen = {k: v for k, v in all_kinds.items() if not args.only or k in args.only}
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

        p_ours, p_hello, p_ds = free_port(), free_port(), free_port()
        ours, hello, ds = (f"http://127.0.0.1:{p}" for p in (p_ours, p_hello, p_ds))
        serve = [
            str(BIN / "402claw"),
            "serve",
            "--port",
            str(p_ours),
            "--workers",
            str(args.workers),
        ]
        hello_cmd = [sys.executable, "-c", f"import bench_load; bench_load.serve_hello({p_hello}, "
                     f"{args.workers})"]  # fmt: skip
        hello_env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
        with (
            server(serve, ours + "/healthz", env),
            server(hello_cmd, hello + "/", hello_env),
            _datasette(args, db, source, p_ds),
        ):
            targets = {"402claw": ours} | ({} if args.no_datasette else {"datasette": ds})
            _row_store(home, ours)
            load: dict[str, dict[str, list[float]]] = {}
            print(f"\nwrk -t2 -c{args.connections} -d{args.duration}s, {args.workers} workers",
                  flush=True)  # fmt: skip
            for name, url in (
                ("hello-world", hello + "/"),
                ("/v1/schema", ours + "/t/bench/v1/schema"),
            ):
                result = wrk(url, None, args.duration, args.connections)
                print(f"  {name:<24} {result['rps']:>9.0f} req/s", flush=True)
            for kind in [k for k in LOAD_KINDS if k in chosen]:
                files = {side: path_file(work, f"{kind}-{side}", chosen[kind][i], args.paths)
                         for i, side in enumerate(("402claw", "datasette"))}  # fmt: skip
                load[kind] = {side: [] for side in targets}
                for _ in range(args.rounds):
                    for side, url in targets.items():
                        seconds = args.duration if side == "402claw" else args.ds_duration
                        result = wrk(url, files[side], seconds, args.connections)
                        load[kind][side].append(result["rps"])
                        flag = f"  ({result['non2xx']:.0f} non-2xx!)" if result["non2xx"] else ""
                        print(f"  {kind:<24} {side:<10} {result['rps']:>9.0f} req/s  "
                              f"p50 {result['p50_ms']:.1f} ms{flag}", flush=True)  # fmt: skip
            sequential = _sequential(targets, chosen, args.requests)
        _report(load, sequential, args)
    finally:  # the deployed copy and the URL files: hundreds of MB per million rows
        shutil.rmtree(work, ignore_errors=True)
        if not args.home:
            shutil.rmtree(home, ignore_errors=True)


def _row_store(home: Path, url: str, timeout: float = 600) -> None:
    """Wait for the version's row store (built in the background on first use)."""
    httpx.get(url + "/t/bench/v1/records?_limit=1", timeout=120)
    started = time.monotonic()
    while not list(home.glob("datasets/bench/*/rows/meta.json")):
        if time.monotonic() - started > timeout:
            raise TimeoutError("the row store was not built")
        time.sleep(0.5)
    print(f"row store ready after {time.monotonic() - started:.1f} s", flush=True)


@contextmanager
def _datasette(args: argparse.Namespace, db: Path, source: Path, port: int) -> Iterator[None]:
    if args.no_datasette:
        yield
        return
    sqlite_copy(source, db)
    exe = args.datasette or str(datasette_bin())
    cmd = [exe, "serve", str(db), "--port", str(port), "--setting", "sql_time_limit_ms", "60000"]
    with server(cmd, f"http://127.0.0.1:{port}/-/versions.json"):
        yield


def _sequential(
    targets: dict[str, str], chosen: dict[str, Kind], n: int
) -> dict[str, dict[str, tuple[float, float]]]:
    clients: dict[str, Client] = {name: Retrying(url) for name, url in targets.items()}
    out: dict[str, dict[str, tuple[float, float]]] = {}
    try:
        for kind, pair in chosen.items():
            urls: dict[str, Callable[[int], str]] = {}
            for i, side in enumerate(targets):
                made = [pair[i](random.Random(7_000 + j)) for j in range(n + 10)]
                urls[side] = lambda j, made=made: made[j % len(made)]
            out[kind] = measure(clients, urls, n)
            shown = "  ".join(f"{s} {m[0]:.2f} ms" for s, m in out[kind].items())
            print(f"  sequential {kind:<24} {shown}", flush=True)
    finally:
        for client in clients.values():
            client.close()
    return out


def _report(
    load: dict[str, dict[str, list[float]]],
    sequential: dict[str, dict[str, tuple[float, float]]],
    args: argparse.Namespace,
) -> None:
    print(f"\nUnder wrk (req/s, median of {args.rounds}), {args.workers} workers")
    print(f"{'query':<24}{'402claw':>10}{'datasette':>11}{'ratio':>8}")
    for kind, sides in load.items():
        ours = statistics.median(sides["402claw"])
        theirs = statistics.median(sides["datasette"]) if "datasette" in sides else float("nan")
        ratio = f"{ours / theirs:>7.1f}x" if theirs else "  (none)"  # none answered in time
        print(f"{kind:<24}{ours:>10.0f}{theirs:>11.1f}{ratio}")
    print(f"\nSequential ({args.requests} requests, ms median / p99)")
    print(f"{'query':<24}{'402claw':>18}{'datasette':>18}{'speed-up':>10}")
    for kind, sides in sequential.items():
        ours = sides["402claw"]
        theirs = sides.get("datasette", (float("nan"), float("nan")))
        print(f"{kind:<24}{ours[0]:>9.2f} / {ours[1]:>6.2f}{theirs[0]:>9.2f} / {theirs[1]:>6.2f}"
              f"{theirs[0] / ours[0]:>9.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
