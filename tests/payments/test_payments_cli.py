"""The local stack's commands as a new user runs them: `402claw dev --json`, `deploy` into the
running stack, `call` (refused, then paid), `facilitator serve`, Ctrl-C, and `402claw demo`.
Each is its own process, as typed in a terminal; money is read back from the chain.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from paidstack import free_port

from claw402.chain.token import Token
from claw402.chain.tx import connect

CLI = str(Path(sys.executable).with_name("402claw"))
PRICE = 1000  # $0.001 in atomic units


def user_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAW402_")}
    return {**env, "CLAW402_HOME": str(home), "COLUMNS": "80", **extra}


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)


class Output:
    """What a running process has printed on one stream, read with a deadline (never hangs)."""

    def __init__(self, stream: Any) -> None:
        self.fd = stream.fileno()
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.fd, selectors.EVENT_READ)
        self.text = b""

    def until(self, done: Any, timeout: float = 60) -> Any:
        """Read until `done(text)` returns something other than None, and return that."""
        deadline = time.monotonic() + timeout
        while (found := done(self.text)) is None:
            assert time.monotonic() < deadline, f"not within {timeout} s: {self.text!r}"
            if self.selector.select(timeout=0.5):
                chunk = os.read(self.fd, 65536)
                assert chunk, f"stream closed: {self.text!r}"
                self.text += chunk
        return found


def json_object(text: bytes) -> dict[str, Any] | None:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None  # not all of it yet


def read_json_object(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    """The first JSON object a process prints (pretty-printed over several lines)."""
    return Output(proc.stdout).until(json_object)


def refused(address: str) -> bool:
    try:
        httpx.get(address, timeout=1)
    except httpx.TransportError:
        return True
    return False


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[tuple[dict[str, Any], dict[str, str], subprocess.Popen[bytes]]]:
    env = user_env(tmp_path / "home")
    proc = subprocess.Popen(
        [CLI, "dev", "--json", "--port", "0"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield read_json_object(proc), env, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_dev_deploy_call_and_ctrl_c(dev, tmp_path: Path) -> None:
    info, env, proc = dev
    assert info["chain_id"] == 31337 and info["network"] == "eip155:31337"
    for payer in info["payers"]:
        assert Account.from_key(payer["private_key"]).address == payer["address"]
    token = Token(connect(info["rpc_url"]), info["asset"])
    payer, treasury = info["payers"][0], info["treasury_address"]
    before = token.balance_of(payer["address"]), token.balance_of(treasury)

    data = tmp_path / "data.csv"
    data.write_text("id,city,country\n1,Tokyo,Japan\n2,Paris,France\n3,Osaka,Japan\n")
    deployed = run("deploy", str(data), "--tenant", "acme", "--price", "0.001", env=env)
    assert deployed.returncode == 0, deployed.stderr
    url = f"{info['gateway_url']}/t/acme/v1/records?country=Japan"
    assert httpx.get(url).status_code == 402  # live at once in the running stack

    paying = {**env, "CLAW402_PAYER_KEY": payer["private_key"]}
    allow = f"{info['network']}={info['asset']}"
    # The local token is not a USDC the official client knows: refused, and told how to allow it.
    unknown = run("call", url, "--json", env=paying)
    assert unknown.returncode == 1
    error = json.loads(unknown.stdout)
    assert error["error"] == "asset_not_allowed" and f"--asset {allow}" in error["detail"]
    too_dear = run("call", url, "--max-price", "0.0001", "--asset", allow, "--json", env=paying)
    assert too_dear.returncode == 1 and json.loads(too_dear.stdout)["error"] == "price_too_high"
    assert (token.balance_of(payer["address"]), token.balance_of(treasury)) == before

    paid = run("call", url, "--max-price", "0.01", "--asset", allow, env=paying)
    assert paid.returncode == 0, paid.stderr
    # stdout is the data alone, as the API sent it (pipeable); the receipt goes to stderr.
    assert json.loads(paid.stdout)["items"] == [
        {"id": 1, "city": "Tokyo", "country": "Japan"},
        {"id": 3, "city": "Osaka", "country": "Japan"},
    ]
    assert "paid tx 0x" in paid.stderr
    after = token.balance_of(payer["address"]), token.balance_of(treasury)
    assert after == (before[0] - PRICE, before[1] + PRICE)

    balance = run("balance", "--tenant", "acme", "--json", env=env)
    assert balance.returncode == 0, balance.stderr
    assert json.loads(balance.stdout)["balance"]["availableAtomic"] == "950"  # less the 5% fee

    proc.send_signal(signal.SIGINT)  # Ctrl-C stops every process the stack started
    assert proc.wait(30) == 0
    for address in (info["gateway_url"], info["facilitator_url"], info["rpc_url"]):
        assert refused(address), f"{address} still answers after Ctrl-C"


def test_facilitator_serve_on_the_dev_chain(dev) -> None:
    info, env, _ = dev
    signer = info["payers"][2]
    port = free_port()
    proc = subprocess.Popen(
        [CLI, "facilitator", "serve", "--rpc-url", info["rpc_url"], "--private-key-env",
         "GAS_KEY", "--network", info["network"], "--port", str(port)],
        env={**env, "GAS_KEY": signer["private_key"]},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while refused(f"http://127.0.0.1:{port}/supported"):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the facilitator did not start"
            time.sleep(0.1)
        supported = httpx.get(f"http://127.0.0.1:{port}/supported").json()
        assert [k["network"] for k in supported["kinds"]] == [info["network"]]
        assert signer["address"] in json.dumps(supported["signers"])
    finally:
        proc.terminate()
        proc.wait(10)
    wrong = run("facilitator", "serve", "--rpc-url", info["rpc_url"], "--private-key-env",
                "GAS_KEY", "--network", "eip155:8453", env={**env, "GAS_KEY": "0x" + "11" * 32})
    assert wrong.returncode != 0 and "8453" in wrong.stderr + wrong.stdout  # fmt: skip


def test_demo_tells_the_whole_story(tmp_path: Path) -> None:
    demo = run("demo", env=user_env(tmp_path / "home", COLUMNS="200"))
    assert demo.returncode == 0, demo.stdout + demo.stderr
    out = demo.stdout
    assert "-> 402 payment_required" in out
    assert "-> 200" in out and "Istanbul" in out
    assert "settlement tx 0x" in out
    assert "available $0.00095" in out


def test_dev_prints_one_whole_ready_line(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [CLI, "dev", "--port", "0"],
        env=user_env(tmp_path / "home"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        stdout, stderr = Output(proc.stdout), Output(proc.stderr)
        ready = stdout.until(lambda t: t.decode() if t.endswith(b"\n") else None)
        fields = ready.split()
        assert fields[0] == "ready" and ready.count("\n") == 1, ready
        gateway = fields[fields.index("gateway") + 1]
        assert httpx.get(f"{gateway}/healthz").json() == {"ok": True}
        key = fields[fields.index("key") + 1]  # whole, however narrow the terminal
        assert Account.from_key(key).address == fields[fields.index("payer") + 1]
        token = fields[fields.index("token") + 1]
        hint = f"--asset eip155:31337={token}".encode()
        stderr.until(lambda t: True if hint in t else None)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0 and out == b""  # nothing more on stdout: one ready line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
