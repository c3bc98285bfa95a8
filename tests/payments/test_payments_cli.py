"""The local stack's commands as a new user runs them: `402claw dev --json`, `deploy` into the
running stack, `call` (refused, then paid), `facilitator serve`, Ctrl-C, and `402claw demo`.
Each is its own process, as typed in a terminal; money is read back from the chain.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import stat
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
from procs import run as run_reaped
from procs import running

CLI = str(Path(sys.executable).with_name("402claw"))
PRICE = 1000  # $0.001 in atomic units


def user_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAW402_")}
    return {**env, "CLAW402_HOME": str(home), "COLUMNS": "80", **extra}


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_reaped([CLI, *args], env=env, timeout=120)


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


def read_ready_line(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    """`402claw dev --json` prints its ready object on exactly one line (a line reader's)."""
    text = Output(proc.stdout).until(lambda t: t if b"\n" in t else None)
    assert text.endswith(b"\n") and text.count(b"\n") == 1, text
    return json.loads(text)


def refused(address: str) -> bool:
    try:
        httpx.get(address, timeout=1)
    except httpx.TransportError:
        return True
    return False


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[tuple[dict[str, Any], dict[str, str], subprocess.Popen[bytes]]]:
    env = user_env(tmp_path / "home")
    with running(
        [CLI, "dev", "--json", "--port", "0"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as proc:
        yield read_ready_line(proc), env, proc


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
    # From a folder where no dev stack runs, the local token is not a USDC the official client
    # knows: refused, and told how to allow it.
    elsewhere = {**paying, "CLAW402_HOME": str(tmp_path / "elsewhere")}
    unknown = run("call", url, "--json", env=elsewhere)
    assert unknown.returncode == 1
    error = json.loads(unknown.stdout)
    assert error["error"] == "asset_not_allowed" and f"--asset {allow}" in error["detail"]
    too_dear = run("call", url, "--max-price", "0.0001", "--asset", allow, "--json", env=elsewhere)
    assert too_dear.returncode == 1 and json.loads(too_dear.stdout)["error"] == "price_too_high"
    assert (token.balance_of(payer["address"]), token.balance_of(treasury)) == before

    paid = run("call", url, "--max-price", "0.01", "--asset", allow, "--scheme", "exact",
               env=elsewhere)  # fmt: skip
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
    assert proc.stdout is not None and proc.stdout.read() == b""  # quiet after its one line
    for address in (info["gateway_url"], info["facilitator_url"], info["rpc_url"]):
        assert refused(address), f"{address} still answers after Ctrl-C"


def test_other_terminals_find_the_dev_stack_without_chain_flags(dev, tmp_path: Path) -> None:
    info, env, proc = dev
    home = Path(env["CLAW402_HOME"])
    published = json.loads((home / "dev.json").read_text())
    assert {k: published[k] for k in ("rpc_url", "network", "facilitator_url", "gateway_url")} == {
        k: info[k] for k in ("rpc_url", "network", "facilitator_url", "gateway_url")
    }
    assert (published["token"], published["treasury"]) == (info["asset"], info["treasury_address"])
    key_file = home / "dev-treasury.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert Account.from_key(key_file.read_text().strip()).address == info["treasury_address"]
    second = run("dev", "--port", "0", env=env)  # one stack per home: refused before starting
    assert second.returncode == 1 and f"(pid {proc.pid}) already runs" in second.stderr

    token = Token(connect(info["rpc_url"]), info["asset"])
    data = tmp_path / "data.csv"
    data.write_text("id,city\n1,Tokyo\n2,Paris\n")
    assert run("deploy", str(data), "--tenant", "acme", "--price", "0.001", env=env).returncode == 0
    payer = info["payers"][0]
    url = f"{info['gateway_url']}/t/acme/v1/records"
    paying = {**env, "CLAW402_PAYER_KEY": payer["private_key"]}
    paid = run("call", url, "--scheme", "exact", env=paying)  # no --asset
    assert paid.returncode == 0, paid.stderr
    assert "paid tx 0x" in paid.stderr

    creator = Account.create()
    signing = {**env, "CREATOR_KEY": creator.key.hex()}
    verified = run("wallet", "verify", "--tenant", "acme", "--address", creator.address,
                   "--private-key-env", "CREATOR_KEY", env=signing)  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    withdrawn = run("withdraw", "--tenant", "acme", "--amount", "0.0005", "--json", env=env)
    assert json.loads(withdrawn.stdout)["withdrawal"]["status"] == "pending"

    # Flags and the environment still win over the dev stack's settings.
    named = run("payouts", "run", "--private-key-env", "NOT_SET", "--json", env=env)
    assert json.loads(named.stdout)["error"] == "no_treasury_key" and "NOT_SET" in named.stdout
    wrong_key = run("payouts", "run", "--json",
                    env={**env, "CLAW402_TREASURY_KEY": payer["private_key"]})  # fmt: skip
    assert json.loads(wrong_key.stdout)["error"] == "wrong_treasury_key"
    unreachable = run("reconcile", "--rpc-url", "http://127.0.0.1:9", "--json", env=env)
    assert json.loads(unreachable.stdout)["error"] == "rpc_unreachable"
    assert token.balance_of(creator.address) == 0

    payouts = run("payouts", "run", "--json", env=env)  # no chain flags, no key variable
    assert payouts.returncode == 0, payouts.stdout + payouts.stderr
    assert [r["status"] for r in json.loads(payouts.stdout)["results"]] == ["completed"]
    assert token.balance_of(creator.address) == PRICE // 2
    reconciled = run("reconcile", "--grace-seconds", "0", "--json", env=env)
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    report = json.loads(reconciled.stdout)
    assert report["balanced"] and report["problems"] == []
    balance = json.loads(run("balance", "--tenant", "acme", "--json", env=env).stdout)["balance"]
    assert (balance["withdrawnAtomic"], balance["availableAtomic"]) == ("500", "450")

    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    assert not (home / "dev.json").exists() and not key_file.exists()  # gone with the stack
    stopped = run("reconcile", "--json", env=env)
    assert json.loads(stopped.stdout)["error"] == "chain_not_configured"


def test_dev_call_pays_through_a_channel_claim_settle_and_refund(dev, tmp_path: Path) -> None:
    """The gateway offers a channel first: `call` deposits once, then signs vouchers (no
    transaction); the operator claims and settles; the payer gets the rest back."""
    info, env, _ = dev
    w3 = connect(info["rpc_url"])
    token = Token(w3, info["asset"])
    data = tmp_path / "data.csv"
    data.write_text("id,city\n1,Tokyo\n2,Paris\n")
    assert run("deploy", str(data), "--tenant", "acme", "--price", "0.001", env=env).returncode == 0
    payer, treasury = info["payers"][1], info["treasury_address"]
    paying = {**env, "CLAW402_PAYER_KEY": payer["private_key"]}
    url = f"{info['gateway_url']}/t/acme/v1/records"
    start, height = token.balance_of(payer["address"]), w3.eth.block_number
    held = token.balance_of(treasury)

    receipts = []
    for _ in range(3):  # each its own process: the channel lives in the home folder
        paid = run("call", url, "--json", env=paying)  # no chain flags: the dev stack's
        assert paid.returncode == 0, paid.stdout + paid.stderr
        receipts.append(json.loads(paid.stdout)["channel"])
    assert [r["kind"] for r in receipts] == ["deposit", "voucher", "voucher"]
    assert [r["remaining"] for r in receipts] == [str(9 * PRICE), str(8 * PRICE), str(7 * PRICE)]
    assert w3.eth.block_number == height + 1  # the deposit alone
    assert token.balance_of(payer["address"]) == start - 10 * PRICE

    claimed = run("channels", "claim", "--json", env=env)
    assert claimed.returncode == 0, claimed.stdout + claimed.stderr
    settled = run("channels", "settle", "--json", env=env)
    assert settled.returncode == 0, settled.stdout + settled.stderr
    assert token.balance_of(treasury) == held + 3 * PRICE

    refunded = run("channels", "refund", "--url", url, "--json", env=paying)
    assert refunded.returncode == 0, refunded.stdout + refunded.stderr
    assert json.loads(refunded.stdout)["refunded"] == str(7 * PRICE)
    assert token.balance_of(payer["address"]) == start - 3 * PRICE  # the three calls, exactly
    again = json.loads(run("call", url, "--json", env=paying).stdout)["channel"]
    assert again["kind"] == "deposit" and again["deposited"] == str(10 * PRICE)


def test_facilitator_serve_on_the_dev_chain(dev) -> None:
    info, env, _ = dev
    signer = info["payers"][2]
    port = free_port()
    with running(
        [CLI, "facilitator", "serve", "--rpc-url", info["rpc_url"], "--private-key-env",
         "GAS_KEY", "--network", info["network"], "--port", str(port)],
        env={**env, "GAS_KEY": signer["private_key"]},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:  # fmt: skip
        deadline = time.monotonic() + 30
        while refused(f"http://127.0.0.1:{port}/supported"):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the facilitator did not start"
            time.sleep(0.1)
        supported = httpx.get(f"http://127.0.0.1:{port}/supported").json()
        assert [(k["scheme"], k["network"]) for k in supported["kinds"]] == [
            ("exact", info["network"]),
            ("batch-settlement", info["network"]),
        ]
        assert signer["address"] in json.dumps(supported["signers"])
        listed = httpx.get(f"http://127.0.0.1:{port}/discovery/resources").json()
        assert listed["items"] == []
    assert (Path(env["CLAW402_HOME"]) / "facilitator.sqlite3").is_file()  # the catalogue's home
    bad = run(
        "facilitator",
        "serve",
        "--rpc-url",
        info["rpc_url"],
        "--private-key-env",
        "GAS_KEY",
        "--network",
        info["network"],
        "--database-url",
        "nowhere",
        env={**env, "GAS_KEY": signer["private_key"]},
    )
    assert bad.returncode != 0 and "SQLAlchemy URL" in bad.stdout + bad.stderr  # fmt: skip
    wrong = run(
        "facilitator",
        "serve",
        "--rpc-url",
        info["rpc_url"],
        "--private-key-env",
        "GAS_KEY",
        "--network",
        "eip155:8453",
        env={**env, "GAS_KEY": "0x" + "11" * 32},
    )
    assert wrong.returncode != 0 and "8453" in wrong.stderr + wrong.stdout  # fmt: skip


def test_demo_tells_the_whole_story(tmp_path: Path) -> None:
    demo = run("demo", env=user_env(tmp_path / "home", COLUMNS="200"))
    assert demo.returncode == 0, demo.stdout + demo.stderr
    out = demo.stdout
    assert "-> 402 payment_required" in out
    assert "-> 200" in out and "Istanbul" in out
    assert "settlement tx 0x" in out
    assert "available $0.00095" in out
    assert "deposit $0.2 in tx 0x" in out and "then 99 vouchers: 1 transaction(s) for 100" in out
    assert "100 calls charged $0.1, $0.1 left in the channel" in out
    assert "claim (402claw channels claim) 1 voucher(s) in tx 0x" in out
    assert "settle (402claw channels settle) tx 0x" in out
    assert "refund (402claw channels refund --url ...) $0.1 back in tx 0x" in out
    assert "9. creator balance" in out and "earned $0.101" in out


def test_dev_prints_one_whole_ready_line(tmp_path: Path) -> None:
    with running(
        [CLI, "dev", "--port", "0"],
        env=user_env(tmp_path / "home"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
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
