"""`402claw serve` as a user runs it: its own process on granian, configured by the environment,
paying through the real facilitator and chain, and stopping without losing an event.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from paidstack import Stack, free_port

from claw402.chain.token import usdc
from claw402.chain.wallet import Wallet
from claw402.events.store import EventStore
from procs import running

PRICE_A = usdc("0.01")
CLI = str(Path(sys.executable).with_name("402claw"))


def serve_env(stack: Stack) -> dict[str, str]:
    chain = stack.chain
    return {
        **os.environ,
        "CLAW402_HOME": str(stack.settings.home),
        "CLAW402_DATABASE_URL": stack.settings.database_url,
        "CLAW402_ENV": "dev",
        "CLAW402_NETWORK": chain.network,
        "CLAW402_ASSET": chain.token,
        "CLAW402_ASSET_NAME": chain.token_name,
        "CLAW402_ASSET_VERSION": chain.token_version,
        "CLAW402_FACILITATOR_URL": stack.facilitator_url,
        "CLAW402_TREASURY": chain.treasury.address,
        "CLAW402_RPC_URL": chain.rpc_url,
    }


@contextmanager
def served(env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    with running(
        [CLI, "serve", "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "402claw serve did not start"
            time.sleep(0.05)
        yield url, proc


def test_serve_takes_payments_and_keeps_every_event_when_stopped(stack: Stack, payer: Wallet):
    treasury = stack.chain.treasury.address
    treasury_before = stack.balance(treasury)
    with served(serve_env(stack)) as (url, proc):
        challenge = httpx.get(f"{url}/t/alpha/v1/records", timeout=10)
        assert challenge.status_code == 402
        assert challenge.headers["x-tenant-id"] == stack.tenants["alpha"].tenant_id
        assert challenge.headers["payment-required"]

        call = stack.pay(
            f"{url}/t/alpha/v1/records?country=Japan&_sort=-population", payer, PRICE_A
        )
        assert call.response.status_code == 200, call.response.text
        assert [i["city"] for i in call.response.json()["items"]] == ["Tokyo", "Osaka", "Nagoya"]
        assert call.settlement is not None and call.settlement.transaction.startswith("0x")

        report = stack.pay_js(f"{url}/t/alpha/v1/records?_limit=2", payer, PRICE_A)
        assert report["status"] == 200, report
        assert len(report["body"]["items"]) == 2
        assert report["paymentResponse"]["success"] is True

        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, output

    assert stack.balance(payer.address) == usdc(1) - 2 * PRICE_A
    assert stack.balance(treasury) == treasury_before + 2 * PRICE_A
    paid_id = call.response.headers["x-request-id"]
    (row,) = stack.payments(call.settlement.transaction)
    assert row["request_id"] == paid_id
    # Written by the server's event sink before it exited: nothing waits in memory.
    types = {e["type"] for e in EventStore(stack.registry.engine).read_events(request_id=paid_id)}
    assert {"dispatch_start", "payment_verified", "payment_settled", "dispatch_success"} <= types
    challenged = {
        e["type"]
        for e in EventStore(stack.registry.engine).read_events(
            request_id=challenge.headers["x-request-id"]
        )
    }
    assert {"dispatch_start", "payment_challenge"} <= challenged


@pytest.mark.parametrize("header", ["garbage!!", "A" * 100_000], ids=["garbage", "100KB"])
def test_serve_answers_unreadable_payment_headers_with_400(stack: Stack, header: str):
    with served(serve_env(stack)) as (url, _):
        r = httpx.get(
            f"{url}/t/alpha/v1/records", headers={"PAYMENT-SIGNATURE": header}, timeout=10
        )
    assert r.status_code == 400, r.text[:300]
    assert r.json()["error"] == "invalid_payment"
    assert r.headers["x-request-id"] and r.headers["x-tenant-id"]


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"CLAW402_ENV": "prod"}, "CLAW402_FACILITATOR_URL"),
        ({"CLAW402_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}, "registry database"),
    ],
    ids=["half-configured-payments", "database-down"],
)
def test_serve_refuses_to_start_misconfigured_and_says_what_to_fix(
    tmp_path: Path, overrides: dict[str, str], named: str
):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAW402_")}
    env.update({"CLAW402_HOME": str(tmp_path), **overrides})
    proc = subprocess.run(
        [CLI, "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert named in proc.stderr
    assert "Traceback" not in proc.stderr


def test_serve_killed_takes_its_workers_and_event_writer_with_it(stack: Stack):
    """A SIGKILLed `402claw serve` runs no clean-up: its granian worker must still stop (and
    its event writer with it) rather than go on serving the port as an orphan."""
    with served(serve_env(stack)) as (url, proc):
        group = proc.pid  # `running` starts serve as the leader of its own process group
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 15
        while True:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                break  # nothing of the group is left
            assert time.monotonic() < deadline, "serve's worker or event writer outlived it"
            time.sleep(0.1)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/healthz", timeout=1)
