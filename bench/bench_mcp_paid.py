"""A paid MCP tool call through the x402 SDK's MCP payment wrapper (`mcp.paid.McpAttempt`)
against the same call through the paywall's plain `Attempt` (the path before the wrapper), and
the same payment over HTTP as the yardstick, side by side in one run, on anvil.

Each call presents a payment signed beforehand (one streamable-HTTP MCP request with the
official `mcp` client, or one HTTP GET): verify, query, settle on anvil, booking. The three
paths are measured in interleaved rounds; median and p90 per path. Also the cost of what the
wrapper path adds per call in process (an `x402ResourceServer` with its hooks and the
wrapper), timed alone.

    python bench/bench_mcp_paid.py [--calls 30] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import httpx

os.environ.setdefault("CLAW402_LIMITS", "off")  # one caller: the per-caller rate is not measured
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "payments")]

from mcp import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from paidstack import Stack, encode, open_stack  # noqa: E402
from x402.mcp import MCP_PAYMENT_META_KEY  # noqa: E402

from claw402.chain.token import usdc  # noqa: E402
from claw402.mcp import paid  # noqa: E402
from claw402.payments.attempt import Attempt  # noqa: E402


async def _mcp_calls(stack: Stack, payments: list[dict[str, Any]]) -> list[float]:
    took = []
    async with (
        httpx.AsyncClient(timeout=60) as http,
        streamable_http_client(f"{stack.url}/t/alpha/mcp", http_client=http) as (r, w, _),
        ClientSession(r, w) as session,
    ):
        await session.initialize()
        for payment in payments:
            started = time.perf_counter()
            result = await session.call_tool(
                "query", {"_limit": 1}, meta={MCP_PAYMENT_META_KEY: payment}
            )
            took.append(time.perf_counter() - started)
            assert not result.isError, result.content
    return took


def _http_calls(stack: Stack, payments: list[dict[str, Any]]) -> list[float]:
    took = []
    with httpx.Client(timeout=60) as http:
        for payment in payments:
            started = time.perf_counter()
            r = http.get(
                f"{stack.url}/t/alpha/v1/records?_limit=1",
                headers={"PAYMENT-SIGNATURE": encode(payment)},
            )
            took.append(time.perf_counter() - started)
            assert r.status_code == 200, r.text
    return took


def _stats(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {"median_ms": statistics.median(ms), "p90_ms": ms[int(len(ms) * 0.9) - 1]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    wrapper = paid.McpAttempt
    times: dict[str, list[float]] = {"mcp-wrapper": [], "mcp-plain-attempt": [], "http": []}
    with tempfile.TemporaryDirectory() as home, open_stack(Path(home)) as stack:
        payer = stack.payer(usdc(100))
        for _ in range(args.rounds):
            for path in times:
                payments = [stack.sign(payer, "alpha") for _ in range(args.calls)]
                paid.McpAttempt = Attempt if path == "mcp-plain-attempt" else wrapper
                try:
                    if path == "http":
                        times[path] += _http_calls(stack, payments)
                    else:
                        times[path] += asyncio.run(_mcp_calls(stack, payments))
                finally:
                    paid.McpAttempt = wrapper
        build = _build_cost(stack)
    load = os.getloadavg()
    report = {
        "calls_per_path": args.calls * args.rounds,
        "load_1_5_15": [round(x, 2) for x in load],
        **{path: _stats(seconds) for path, seconds in times.items()},
        "wrapper_build_us": round(build * 1e6, 1),
    }
    print(json.dumps(report, indent=None if args.json else 2))


def _build_cost(stack: Stack) -> float:
    """Seconds to build one call's resource server, hooks and wrapper (no network)."""
    attempt = paid.McpAttempt.__new__(paid.McpAttempt)
    attempt.paywall, attempt.offer = stack.paywall, stack.paywall.offer(stack.tenants["alpha"])
    r = attempt.offer.requirements

    def build() -> None:
        facilitator = paid._Facilitator(stack.paywall.facilitator, r)
        config = paid.PaymentWrapperConfig(accepts=[r])
        paid.create_payment_wrapper(attempt._server(facilitator), config)

    runs = 2000
    return min(timeit.repeat(build, number=runs, repeat=3)) / runs


if __name__ == "__main__":
    main()
