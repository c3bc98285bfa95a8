"""Paid-call latency and 402-challenge throughput, side by side in one run, on anvil.

Servers, each in its own process on the same HTTP server (`--server`: granian, as
`402claw serve` runs, or uvicorn), on 127.0.0.1 only:
- `hello`: a bare ASGI hello-world (the ceiling);
- `gateway`: the 402claw gateway with its paywall, serving a priced tenant (sample cities);
- `gateway-static402`: the same gateway with a constant-402 guard instead of the paywall
  (challenge throughput only), which separates the gateway's cost from the paywall's;
- `sdk`: FastAPI with the x402 SDK's own `PaymentMiddlewareASGI` (stock settings) guarding
  an equivalent endpoint that returns the same first page, precomputed.
All of them pay through the same facilitator process (402claw's, on the same anvil).

Measured:
- a paid call end to end with the official Python client (`x402HttpxClient`: request, 402,
  sign, paid retry, 200): median and p99 over `--calls` sequential calls;
- the paid request alone (a payload signed beforehand, one request): median and p99;
- requests/s of the 402 challenge path (no payment header) under `wrk` (2 threads,
  `--connections`, `--duration` s), or a bounded httpx loop when wrk is not installed;
  the three local servers are measured in turn for `--rounds` rounds and compared by median.
  A gateway's rate counts the time its event sink needs after the run to write the backlog
  (requests / (run + drain)): a rate that leaves events unwritten is not sustainable.
Every server process gets the same GC tuning as `402claw serve` (`tune_gc`).
`--compare-src DIR` adds `gateway_base`: the same gateway on another checkout's `src` (e.g.
`git archive <commit> src | tar -x -C /tmp/base`), its 402 path measured in the same rounds,
for a before/after of one run. The machine's load average is noted before and after.

The SDK middleware needs `fastapi` (and `jsonschema`, which `x402.extensions` imports). They
are not project dependencies: install them outside the project's venv, e.g.
`pip install --no-deps --target ~/.cache/claw402-bench-deps fastapi jsonschema
jsonschema-specifications referencing rpds-py opentelemetry-api`; this script appends that
folder (or `$CLAW402_BENCH_DEPS`) to `sys.path`. Without them the `sdk` column is skipped.

    python bench/bench_paid_call.py [--calls 200] [--duration 10] [--connections 50]
                                     [--rounds 3] [--server granian|uvicorn] [--json]
                                     [--compare-src DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

# One load generator is one caller: the per-caller rate limit would answer it 429. The limits
# cost is measured by bench_limits.py; here the paths are measured without them.
os.environ.setdefault("CLAW402_LIMITS", "off")

BENCH_DEPS = os.environ.get("CLAW402_BENCH_DEPS", str(Path.home() / ".cache/claw402-bench-deps"))
PRICE = "0.001"
SLUG = "bench"


# -- the servers (each runs in a child process: `bench_paid_call.py _serve KIND PORT`) ------


def hello_app() -> Any:
    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
            }
        )
        await send({"type": "http.response.body", "body": b"Hello, world!"})

    return app


def gateway_app(static_guard: bool = False) -> Any:
    """The gateway as `402claw serve` builds it; `static_guard` swaps the paywall for a
    constant 402 (no x402 work at all), to tell the gateway's cost from the paywall's."""
    from starlette.responses import Response

    from claw402.config import load_settings
    from claw402.events.sink import EventSink
    from claw402.gateway.app import Gateway
    from claw402.payments.env import paywall_from_env
    from claw402.registry.store import Registry

    registry = Registry.open(load_settings())
    sink = EventSink.in_child(registry.engine)
    paywall = paywall_from_env(registry.engine)
    assert paywall is not None, "the bench sets CLAW402_ENV=dev and the payment variables"
    if static_guard:

        async def constant_402(call: Any, produce: Any) -> Response:
            return Response(b'{"ok":false}', status_code=402, media_type="application/json")

        return Gateway(registry, guard=constant_402, sink=sink)
    return Gateway(registry, guard=paywall, sink=sink)


def sdk_app() -> Any:
    sys.path.append(BENCH_DEPS)
    from fastapi import FastAPI
    from fastapi.responses import Response
    from x402 import x402ResourceServer
    from x402.http import FacilitatorConfig, HTTPFacilitatorClient
    from x402.http.middleware.fastapi import PaymentMiddlewareASGI
    from x402.mechanisms.evm.exact import ExactEvmServerScheme

    env = os.environ
    server = x402ResourceServer(HTTPFacilitatorClient(FacilitatorConfig(url=env["BENCH_FAC"])))
    server.register(env["CLAW402_NETWORK"], ExactEvmServerScheme())
    price = {
        "amount": str(int(float(PRICE) * 1_000_000)),
        "asset": env["CLAW402_ASSET"],
        "extra": {"name": env["BENCH_TOKEN_NAME"], "version": env["BENCH_TOKEN_VERSION"]},
    }
    routes = {
        "GET /records": {
            "accepts": {
                "scheme": "exact",
                "payTo": env["CLAW402_TREASURY"],
                "price": price,
                "network": env["CLAW402_NETWORK"],
            },
            "description": "cities, first page",
            "mime_type": "application/json",
        }
    }
    body = Path(env["BENCH_PAGE"]).read_bytes()
    app = FastAPI()
    app.add_middleware(PaymentMiddlewareASGI, routes=routes, server=server)

    @app.get("/records")
    async def records() -> Response:
        return Response(body, media_type="application/json")

    return app


APPS: dict[str, Callable[[], Any]] = {
    "hello": hello_app,
    "gateway": gateway_app,
    "gateway-static402": lambda: gateway_app(static_guard=True),
    "sdk": sdk_app,
}


def app_from_env() -> Any:
    """The app a child serves (`BENCH_KIND`), tuned as `402claw serve` tunes the gateway's
    collector: the same for every server compared. granian's worker calls this factory."""
    from claw402.gc_tuning import tune_gc

    app = APPS[os.environ["BENCH_KIND"]]()
    tune_gc()
    return app


def serve_child(kind: str, port: int) -> None:
    if kind == "facilitator":
        from claw402.facilitator.server import serve
        from claw402.facilitator.settings import FacilitatorSettings

        env = os.environ
        settings = FacilitatorSettings(
            rpc_url=env["BENCH_RPC"], private_key=env["BENCH_FAC_KEY"], network=env["BENCH_NET"]
        )
        serve(settings, port=port, log_level="warning")
        return
    os.environ["BENCH_KIND"] = kind
    if os.environ["BENCH_SERVER"] == "granian":  # as `402claw serve` runs it
        serve_granian("bench_paid_call:app_from_env", port)
        return
    import uvicorn

    app = app_from_env()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- process plumbing ----------------------------------------------------------------------


def serve_granian(factory: str, port: int) -> None:
    """Serve the ASGI app `factory` ("module:function") on granian, as `402claw serve` does."""
    from granian import Granian
    from granian.constants import Interfaces

    Granian(
        factory,
        factory=True,
        address="127.0.0.1",
        port=port,
        interface=Interfaces.ASGI,
        log_level="warning",
    ).serve()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def child(
    kind: str, env: dict[str, str], ready_path: str = "/", script: str = __file__
) -> Iterator[str]:
    """`script _serve KIND PORT` in a child process, until the block ends."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, script, "_serve", kind, str(port)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent), **env},
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a loaded machine starts Python slowly
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{kind} server exited with {proc.returncode}")
            try:
                httpx.get(url + ready_path, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} server did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


# -- measurements --------------------------------------------------------------------------


def summary(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "median_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(p99, 2),
        "n": len(ordered),
    }


def payment_client(private_key: str, network: str, asset: str) -> Any:
    from eth_account import Account
    from x402 import x402Client
    from x402.mechanisms.evm.exact import ExactEvmClientScheme

    client = x402Client()
    client.register(network, ExactEvmClientScheme(Account.from_key(private_key)))
    client.set_spend_controls({"allowed_assets": [{"network": network, "asset": asset}]})
    return client


async def paid_calls(url: str, client: Any, calls: int) -> tuple[list[float], bytes]:
    """The whole flow with the official client, sequentially: request, 402, sign, pay.

    Returns the latencies and the last body (the data a paid call buys).
    """
    from x402.http.clients import x402HttpxClient

    samples, body = [], b""
    async with x402HttpxClient(client, timeout=30) as http:
        for _ in range(calls):
            started = time.perf_counter()
            response = await http.get(url)
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (response.status_code, response.text[:300])
            assert "payment-response" in response.headers
            body = response.content
    return samples, body


async def paid_requests(url: str, client: Any, calls: int) -> list[float]:
    """The paid request alone: payloads are signed first, then each is sent once."""
    from x402.http.utils import decode_payment_required_header, encode_payment_signature_header

    samples = []
    async with httpx.AsyncClient(timeout=30) as http:
        required = decode_payment_required_header((await http.get(url)).headers["payment-required"])
        headers = [
            encode_payment_signature_header(await client.create_payment_payload(required))
            for _ in range(calls)
        ]
        for header in headers:
            started = time.perf_counter()
            response = await http.get(url, headers={"PAYMENT-SIGNATURE": header})
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (response.status_code, response.text[:300])
    return samples


def rps(url: str, duration: int, connections: int, expect: int) -> dict[str, Any]:
    """Requests/s at `url` under wrk, or an httpx loop when wrk is missing."""
    assert httpx.get(url).status_code == expect
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run(
            [wrk, "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
        done = re.search(r"(\d+) requests in ([0-9.]+)(m?s)", out)
        assert done is not None, out
        seconds = float(done.group(2)) / (1000 if done.group(3) == "ms" else 1)
        p50 = re.search(r"50%\s+([0-9.]+)(us|ms|s)", out)
        return {
            "rps": round(rate),
            "requests": int(done.group(1)),
            "seconds": seconds,
            "tool": "wrk",
            "p50": "".join(p50.groups()) if p50 else None,
        }
    return {"rps": round(asyncio.run(_httpx_rps(url, duration, connections))), "tool": "httpx"}


async def _httpx_rps(url: str, duration: int, connections: int) -> float:
    done = 0
    deadline = time.monotonic() + duration

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await http.get(url)
            done += 1

    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(limits=limits) as http:
        started = time.monotonic()
        await asyncio.gather(*(worker(http) for _ in range(connections)))
    return done / (time.monotonic() - started)


# -- the run -------------------------------------------------------------------------------


def facilitator_env(chain: Any) -> dict[str, str]:
    """What the `facilitator` child needs."""
    return {
        "BENCH_RPC": chain.rpc_url,
        "BENCH_NET": chain.network,
        "BENCH_FAC_KEY": chain.facilitator.private_key,
    }


def gateway_env(chain: Any, settings: Any, facilitator: str) -> dict[str, str]:
    """The `CLAW402_*` settings a gateway child pays with, on `chain` through `facilitator`."""
    return {
        "CLAW402_HOME": str(settings.home),
        "CLAW402_DATABASE_URL": settings.database_url,
        "CLAW402_ENV": "dev",
        "CLAW402_NETWORK": chain.network,
        "CLAW402_ASSET": chain.token,
        "CLAW402_ASSET_NAME": chain.token_name,
        "CLAW402_ASSET_VERSION": chain.token_version,
        "CLAW402_FACILITATOR_URL": facilitator,
        "CLAW402_TREASURY": chain.treasury.address,
    }


class EventCount:
    """Rows in the events table, polled until no gateway is writing any more."""

    def __init__(self, database_url: str) -> None:
        from claw402.registry.db import make_engine

        self.engine = make_engine(database_url)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM events").scalar_one())

    def wait_until_idle(self, quiet: float = 0.5) -> float:
        """Seconds until the count stops moving (minus the quiet period that proves it)."""
        started = time.monotonic()
        last, last_change = self.count(), time.monotonic()
        while time.monotonic() - last_change < quiet:
            time.sleep(0.05)
            now = self.count()
            if now != last:
                last, last_change = now, time.monotonic()
        return last_change - started


def median_rps(samples: list[dict[str, Any]]) -> dict[str, Any]:
    result = {
        "rps": round(statistics.median(sample["rps"] for sample in samples)),
        "runs": [sample["rps"] for sample in samples],
        "tool": samples[0]["tool"],
    }
    if "drain_s" in samples[0]:
        result["drain_s"] = [sample["drain_s"] for sample in samples]
    return result


def run(
    calls: int,
    duration: int,
    connections: int,
    rounds: int = 3,
    server: str = "granian",
    compare_src: str | None = None,
) -> dict[str, Any]:
    from claw402.chain.devchain import start_dev_chain
    from claw402.config import Settings
    from claw402.registry.deploy import DeployRequest, deploy
    from claw402.registry.store import Registry
    from claw402.samples import CITIES

    results: dict[str, Any] = {"calls": calls, "price": PRICE, "server": server,
                               "load_before": os.getloadavg()}  # fmt: skip
    home = Path(tempfile.mkdtemp(prefix="claw402-bench-"))
    try:
        with start_dev_chain(payers=2) as chain:
            base_env = {**facilitator_env(chain), "BENCH_SERVER": server}
            with child("facilitator", base_env, "/health") as facilitator:
                settings = Settings(home, f"sqlite:///{home / 'registry.sqlite3'}")
                registry = Registry.open(settings)
                deploy(registry, settings, DeployRequest(source=CITIES, slug=SLUG, price=PRICE))
                registry.close()
                env = {
                    **base_env,
                    **gateway_env(chain, settings, facilitator),
                    "BENCH_FAC": facilitator,
                    "BENCH_TOKEN_NAME": chain.token_name,
                    "BENCH_TOKEN_VERSION": chain.token_version,
                }
                with (
                    child("gateway", env, "/healthz") as gateway,
                    child("gateway-static402", env, "/healthz") as static,
                    child("hello", env) as hello,
                    ExitStack() as extra,
                ):
                    url = f"{gateway}/t/{SLUG}/v1/records"
                    page = home / "page.json"
                    client = payment_client(chain.payers[0].private_key, chain.network, chain.token)
                    _, body = asyncio.run(paid_calls(url, client, 5))  # warm up
                    page.write_bytes(body)
                    results["gateway"] = {
                        "paid_call": summary(asyncio.run(paid_calls(url, client, calls))[0]),
                        "paid_request": summary(asyncio.run(paid_requests(url, client, calls))),
                    }
                    # Throughput on a shared machine drifts from minute to minute: alternate
                    # the servers round by round and compare medians, not one run of each.
                    targets = {
                        "gateway": (url, 402),
                        "gateway_static_402": (f"{static}/t/{SLUG}/v1/records", 402),
                        "hello": (hello, 200),
                    }
                    if compare_src:  # the same gateway on another checkout's code
                        path = f"{Path(__file__).parent}:{Path(compare_src).resolve()}"
                        base = extra.enter_context(
                            child("gateway", {**env, "PYTHONPATH": path}, "/healthz")
                        )
                        targets["gateway_base"] = (f"{base}/t/{SLUG}/v1/records", 402)
                    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
                    events = EventCount(settings.database_url)
                    for _ in range(rounds):
                        for name, (target, status) in targets.items():
                            sample = rps(target, duration, connections, status)
                            if name != "hello" and "seconds" in sample:
                                # The gateways log every request through their event sink:
                                # count the time it takes to write the backlog, so the rate
                                # is one the gateway can sustain (and the next run starts
                                # on an idle machine).
                                drain = events.wait_until_idle()
                                sample["drain_s"] = round(drain, 2)
                                sample["rps"] = round(
                                    sample["requests"] / (sample["seconds"] + drain)
                                )
                            runs[name].append(sample)
                    events.engine.dispose()
                    for name, samples in runs.items():
                        key = "rps" if name == "hello" else "challenge"
                        results.setdefault(name, {})[key] = median_rps(samples)
                    results["load_after_rounds"] = os.getloadavg()
                results["sdk"] = _sdk(env, page, chain, calls, duration, connections)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return results


def _sdk(
    env: dict[str, str], page: Path, chain: Any, calls: int, duration: int, connections: int
) -> dict[str, Any]:
    sys.path.append(BENCH_DEPS)
    try:
        import fastapi  # noqa: F401
        import jsonschema  # noqa: F401
    except ImportError:
        return {"skipped": f"fastapi/jsonschema not found (install them into {BENCH_DEPS})"}
    with child("sdk", {**env, "BENCH_PAGE": str(page)}, "/docs") as sdk:
        url = f"{sdk}/records"
        client = payment_client(chain.payers[1].private_key, chain.network, chain.token)
        asyncio.run(paid_calls(url, client, 5))
        return {
            "paid_call": summary(asyncio.run(paid_calls(url, client, calls))[0]),
            "paid_request": summary(asyncio.run(paid_requests(url, client, calls))),
            "challenge": rps(url, duration, connections, 402),
        }


def report(results: dict[str, Any]) -> str:
    lines = [
        f"paid calls on anvil, price ${results['price']}, {results['calls']} calls each; "
        f"every server on {results['server']}"
    ]
    for name in ("gateway", "sdk"):
        r = results.get(name, {})
        if "skipped" in r:
            lines.append(f"{name:8} skipped: {r['skipped']}")
            continue
        lines.append(
            f"{name:8} paid call (client end to end) median {r['paid_call']['median_ms']} ms, "
            f"p99 {r['paid_call']['p99_ms']} ms | paid request alone median "
            f"{r['paid_request']['median_ms']} ms, p99 {r['paid_request']['p99_ms']} ms | "
            f"402 challenge {r['challenge']['rps']} req/s"
        )
    static = results["gateway_static_402"]["challenge"]
    lines.append(
        f"gateway with a constant-402 guard (no paywall): {static['rps']} req/s {static['runs']}"
    )
    hello = results["hello"]["rps"]
    lines.append(f"hello    {hello['rps']} req/s {hello['runs']} ({hello['tool']})")
    gateway = results["gateway"]["challenge"]
    lines.append(
        f"gateway 402 challenge runs: {gateway['runs']}, event backlog written in "
        f"{gateway.get('drain_s')} s after each (counted in the rate)"
    )
    ratio = gateway["rps"] / hello["rps"]
    # Each round measures the servers one after the other: a round's own ratio is the least
    # exposed to this machine's drift from minute to minute.
    paired = [round(g / h, 2) for g, h in zip(gateway["runs"], hello["runs"], strict=True)]
    lines.append(
        f"gateway challenge / hello-world (medians): {ratio:.2f}; round by round: {paired}"
    )
    if "gateway_base" in results:
        base = results["gateway_base"]["challenge"]
        lines.append(
            f"gateway_base (--compare-src) 402 challenge {base['rps']} req/s {base['runs']}, "
            f"/ hello {base['rps'] / hello['rps']:.2f}; gateway / gateway_base "
            f"{gateway['rps'] / base['rps']:.2f}"
        )
    load = results.get("load_before"), results.get("load_after_rounds")
    lines.append(f"load average (1, 5, 15 min) before: {load[0]}, after the rounds: {load[1]}")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "_serve":
        serve_child(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per server, alternated")
    parser.add_argument("--server", choices=("granian", "uvicorn"), default="granian")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--compare-src", help="also a gateway on this checkout's src folder")
    args = parser.parse_args()
    results = run(args.calls, args.duration, args.connections, args.rounds, args.server,
                  args.compare_src)  # fmt: skip
    print(json.dumps(results, indent=2) if args.json else report(results))


if __name__ == "__main__":
    main()
